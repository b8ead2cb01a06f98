// V8's old-generation growth, set for a media server.
//
// V8 sizes the old generation's next collection limit from its own estimate
// of the collector's speed, aiming to spend about 3 % of the main thread on
// garbage collection. For a process like the ingest, whose live heap is small
// (about 25–30 MB at 20 streams) and whose marking runs mostly on helper
// threads that estimate does not see, the factor it picks leaves less room
// than the young generation holds, so incremental marking starts again right
// after each full collection: about 1.5 full (mark-compact) collections a
// second at 20 streams, whatever the stream count's media rate.
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
