// V8's old-generation growth, set for a media server.
//
// V8 sets the old generation's next collection limit at its live size times
// a factor it derives from how fast its collector seems. For the ingest's
// small heap (about 25–30 MB at 20 streams) that factor leaves less room than
// the young generation holds, which is V8's rule for starting to mark again,
// so incremental marking restarted right after each full collection: about
// 1.5 full (mark-compact) collections a second at 20 streams (`--trace-gc`,
// `--trace-incremental-marking`).
//
// A fixed growth factor of 2 (the heap may reach twice its live size before
// the next full collection) brought that down to 4–5 in 15 s and the ingest's
// CPU per stream down by about a quarter, for about 12 MB more resident memory
// per process (README, Performance: "Garbage collection"). Only the roles
// that run the ingest get it: the gateway's memory bound under slow SSE
// readers (test/gateway/events-limits.test.ts) counts garbage not yet
// collected, which the larger factor lets grow past it. V8 reads the factor at
// each collection, so setting it as the process starts takes effect from its
// next collection; a `--heap-growing-percent` given to node on the command
// line wins.
import { setFlagsFromString } from 'node:v8';
import type { RoleName } from './roles.ts';

/** 1 + this / 100 is the factor by which the old generation may grow past its live size. */
export const HEAP_GROWING_PERCENT = 100;

/** The roles whose process packages media: the ingest, and the one-machine mode that runs it. */
const MEDIA_ROLES: readonly RoleName[] = ['ingest', 'local'];

/**
 * Sets V8's heap growing factor for a role that packages media, unless node
 * was started with one. Returns the flag it set, or undefined when it set none.
 */
export function tuneHeapGrowth(role: RoleName, execArgv: readonly string[]): string | undefined {
  if (!MEDIA_ROLES.includes(role)) return undefined;
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg))) return undefined;
  const flag = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  setFlagsFromString(flag);
  return flag;
}
