// Summarizes a V8 CPU profile (the `.cpuprofile` JSON that `node --cpu-prof`
// writes) into where the busy time went: by package (ours, mediabunny, the
// AWS SDK, other npm packages), by kind of Node internal (fs, net/stream/http,
// the rest), garbage collection and `(program)`; and the functions with the
// most self time. The density benchmark prints it so that the next
// optimisation target is visible beside the figures it would move.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
  scriptId?: string;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

/** The shape of a `.cpuprofile`; times are µs on the monotonic clock (`process.hrtime`'s on Linux). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface BucketShare {
  bucket: string;
  ms: number;
  /** Share of busy time, 0–1. */
  share: number;
}

export interface NodeRowShare extends BucketShare {
  /**
   * For Node's rows: the code that made the calls (the nearest caller outside
   * Node: a package, ours, or the event loop itself), share of this row, largest first.
   */
  calledFrom?: Array<{ caller: string; share: number }>;
}

export const EVENT_LOOP = '(event loop)';

export interface FunctionShare extends BucketShare {
  functionName: string;
  /**
   * Where it is defined: a path relative to the project, a `node:` module or a
   * package file, with line. Our compiled files (dist/…/x.js) are shown at
   * their TypeScript source line when the build wrote a source map beside them.
   */
  location: string;
}

export interface ProfileSummary {
  /** Sampled time that was not `(idle)`, in the window. */
  busyMs: number;
  idleMs: number;
  /** True when the window asked for lay outside the profile and every sample was used. */
  wholeProfile: boolean;
  buckets: NodeRowShare[];
  /** The functions with the most self time, without (garbage collector) and (program). */
  top: FunctionShare[];
}

export interface SummaryOptions {
  /**
   * The project's root directory: files under it outside node_modules are
   * "ours", the TypeScript sources (ingest/, common/, bin/…) as tsx runs them
   * and the compiled dist/ingest, dist/common, dist/bin… as node runs the build.
   */
  root: string;
  /** Only samples taken in [fromUs, toUs] (same clock as the profile's startTime) count. */
  fromUs?: number;
  toUs?: number;
  /** How many functions to list by self time (default 10). */
  top?: number;
}

export const OURS = 'ours (tteok)';
export const AWS_SDK = 'AWS SDK (@aws-sdk, @smithy)';
export const NODE_FS = 'Node fs';
export const NODE_NET = 'Node net/stream/http';
export const NODE_CRYPTO = 'Node crypto';
export const NODE_BUFFER = 'Node buffer';
export const NODE_OTHER = 'Node, other internals';
export const GC = '(garbage collector)';
export const PROGRAM = '(program)';
export const OTHER = 'other';

const IDLE = '(idle)';
const NET_MODULES =
  /^node:(internal\/)?(net|tls|_tls_\w+|http\w*|_http_\w+|https|stream|streams\/.*|internal\/streams\/.*|stream_base_commons|dns|dgram|socket_list|js_stream_socket|http2\/.*)$/;
const FS_MODULES = /^node:(fs|fs\/promises|internal\/fs\/.*|internal\/fs)$/;
const CRYPTO_MODULES = /^node:(crypto|internal\/crypto\/.*)$/;
const BUFFER_MODULES = /^node:(buffer|internal\/buffer)$/;

/** The bucket a script URL belongs to; undefined for a frame without a script (native code, V8 builtins). */
export function bucketOfUrl(url: string, root: string): string | undefined {
  if (url === '') return undefined;
  if (url.startsWith('node:')) {
    if (FS_MODULES.test(url)) return NODE_FS;
    if (NET_MODULES.test(url)) return NODE_NET;
    // Hashing (S3 checksums and request signing) and buffer allocation stood out on their own in the first profiles.
    if (CRYPTO_MODULES.test(url)) return NODE_CRYPTO;
    if (BUFFER_MODULES.test(url)) return NODE_BUFFER;
    return NODE_OTHER;
  }
  let path: string;
  try {
    path = url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch {
    return OTHER;
  }
  if (!path.startsWith('/')) return OTHER;
  const parts = path.split(sep);
  const nm = parts.lastIndexOf('node_modules');
  if (nm >= 0) {
    const name = parts[nm + 1]?.startsWith('@') ? `${parts[nm + 1]}/${parts[nm + 2]}` : parts[nm + 1];
    if (!name) return OTHER;
    if (name.startsWith('@aws-sdk/') || name.startsWith('@aws-crypto/') || name.startsWith('@smithy/')) return AWS_SDK;
    return name;
  }
  const rel = relative(root, path);
  if (rel !== '' && !rel.startsWith('..') && !rel.startsWith('/')) return OURS;
  return OTHER;
}

/** Source maps of our compiled files by path (null: the file has none), read once per summary. */
type SourceMaps = Map<string, SourceMap | null>;

/**
 * Where a position in one of our compiled files comes from in its TypeScript
 * source, through the `.js.map` the build writes beside it (tsconfig's
 * sourceMap): tsc drops type-only lines, so dist line numbers drift from the
 * source's. Undefined when there is no usable map.
 */
function originalLocation(path: string, frame: CallFrame, root: string, maps: SourceMaps): string | undefined {
  if (!path.endsWith('.js') || frame.lineNumber < 0) return undefined;
  let map = maps.get(path);
  if (map === undefined) {
    map = null;
    try {
      if (existsSync(`${path}.map`)) map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, 'utf8')));
    } catch {
      // an unreadable map: the compiled position is shown instead
    }
    maps.set(path, map);
  }
  if (!map) return undefined;
  const entry = map.findEntry(frame.lineNumber, Math.max(0, frame.columnNumber));
  if (!('originalSource' in entry) || !entry.originalSource) return undefined;
  // tsc writes sources relative to the map's directory (and an empty sourceRoot).
  const source = entry.originalSource.startsWith('file:')
    ? fileURLToPath(entry.originalSource)
    : resolve(dirname(path), map.payload.sourceRoot ?? '', entry.originalSource);
  return `${relative(root, source)}:${entry.originalLine + 1}`;
}

function locationOf(frame: CallFrame, root: string, maps: SourceMaps): string {
  const line = frame.lineNumber >= 0 ? `:${frame.lineNumber + 1}` : '';
  if (frame.url === '') return '(native)';
  if (frame.url.startsWith('file:')) {
    try {
      const path = fileURLToPath(frame.url);
      const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
      if (nm >= 0) return path.slice(nm + '/node_modules/'.length) + line;
      return originalLocation(path, frame, root, maps) ?? relative(root, path) + line;
    } catch {
      // fall through: an odd URL is shown as it is
    }
  }
  return frame.url + line;
}

/**
 * Busy time by bucket and the top functions by self time. A sample's weight is
 * the time until the next sample (the last one: until endTime), as Chrome's
 * DevTools counts it, so a late sampler tick on a loaded machine is not lost.
 * A frame without a script (a V8 builtin or a native binding such as a
 * syscall wrapper) is counted in the bucket of its nearest caller that has
 * one: the time belongs to whoever asked for the work.
 */
export function summarizeCpuProfile(profile: CpuProfile, options: SummaryOptions): ProfileSummary {
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

  const bucketCache = new Map<number, string>();
  const bucketOfNode = (id: number): string => {
    const cached = bucketCache.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id);
    let bucket: string;
    if (!node) bucket = OTHER;
    else if (node.callFrame.functionName === '(garbage collector)') bucket = GC;
    else if (node.callFrame.functionName === '(program)') bucket = PROGRAM;
    else if (node.callFrame.functionName === IDLE) bucket = IDLE;
    else {
      const own = bucketOfUrl(node.callFrame.url, options.root);
      const parent = parentOf.get(id);
      bucket = own ?? (parent !== undefined && byId.get(parent)?.callFrame.functionName !== '(root)' ? bucketOfNode(parent) : OTHER);
    }
    bucketCache.set(id, bucket);
    return bucket;
  };

  const isNodeRow = (bucket: string) => bucket.startsWith('Node');
  // Who made the call that a Node-internal sample is in: the nearest ancestor with a script outside Node.
  const callerCache = new Map<number, string>();
  const callerOf = (id: number): string => {
    const cached = callerCache.get(id);
    if (cached !== undefined) return cached;
    const parent = parentOf.get(id);
    const parentNode = parent === undefined ? undefined : byId.get(parent);
    let caller: string;
    if (parent === undefined || !parentNode || parentNode.callFrame.functionName === '(root)') caller = EVENT_LOOP;
    else {
      const own = bucketOfUrl(parentNode.callFrame.url, options.root);
      caller = own !== undefined && !isNodeRow(own) ? own : callerOf(parent);
    }
    callerCache.set(id, caller);
    return caller;
  };

  // Sample i is taken at startTime + deltas[0..i]; it stands for the time until sample i+1.
  const times: number[] = [];
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    times.push(t);
  }
  const from = options.fromUs ?? -Infinity;
  const to = options.toUs ?? Infinity;
  const overlaps = times.some((x) => x >= from && x <= to);
  const inWindow = (x: number) => !overlaps || (x >= from && x <= to);

  const bucketUs = new Map<string, number>();
  const callerUs = new Map<string, Map<string, number>>();
  const functionUs = new Map<string, { frame: CallFrame; bucket: string; us: number }>();
  for (let i = 0; i < samples.length; i++) {
    if (!inWindow(times[i]!)) continue;
    const weight = Math.max(0, (i + 1 < times.length ? times[i + 1]! : profile.endTime) - times[i]!);
    const id = samples[i]!;
    const bucket = bucketOfNode(id);
    bucketUs.set(bucket, (bucketUs.get(bucket) ?? 0) + weight);
    if (isNodeRow(bucket)) {
      const callers = callerUs.get(bucket) ?? new Map<string, number>();
      const caller = callerOf(id);
      callers.set(caller, (callers.get(caller) ?? 0) + weight);
      callerUs.set(bucket, callers);
    }
    // Idle is not busy; GC and (program) are whole rows of the bucket table already.
    if (bucket === IDLE || bucket === GC || bucket === PROGRAM) continue;
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}\u0000${bucket}`;
    const entry = functionUs.get(key) ?? { frame, bucket, us: 0 };
    entry.us += weight;
    functionUs.set(key, entry);
  }

  const idleUs = bucketUs.get(IDLE) ?? 0;
  bucketUs.delete(IDLE);
  const busyUs = [...bucketUs.values()].reduce((a, b) => a + b, 0);
  const share = (us: number) => (busyUs > 0 ? us / busyUs : 0);
  const buckets = [...bucketUs.entries()]
    .map(([bucket, us]): NodeRowShare => {
      const callers = callerUs.get(bucket);
      const row: NodeRowShare = { bucket, ms: us / 1000, share: share(us) };
      if (callers) {
        row.calledFrom = [...callers.entries()]
          .map(([caller, cus]) => ({ caller, share: us > 0 ? cus / us : 0 }))
          .sort((a, b) => b.share - a.share || a.caller.localeCompare(b.caller));
      }
      return row;
    })
    .sort((a, b) => b.ms - a.ms || a.bucket.localeCompare(b.bucket));
  const sourceMaps: SourceMaps = new Map();
  const top = [...functionUs.values()]
    .sort((a, b) => b.us - a.us || a.frame.functionName.localeCompare(b.frame.functionName))
    .slice(0, options.top ?? 10)
    .map(({ frame, bucket, us }) => ({
      functionName: frame.functionName || '(anonymous)',
      location: locationOf(frame, options.root, sourceMaps),
      bucket,
      ms: us / 1000,
      share: share(us),
    }));
  return {
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    wholeProfile: !overlaps && (options.fromUs !== undefined || options.toUs !== undefined),
    buckets,
    top,
  };
}

/**
 * The main thread's profile in dir, or undefined. `--cpu-prof` writes one file
 * per thread, named CPU.<date>.<time>.<pid>.<thread id>.<sequence>.cpuprofile;
 * the main thread is thread 0. The others matter less but are not nothing:
 * under tsx, for one, the module loader runs on a worker thread (the
 * benchmarks run the compiled build, without it).
 */
export function readMainThreadCpuProfile(dir: string): CpuProfile | undefined {
  const main = readdirSync(dir)
    .filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  return main ? (JSON.parse(readFileSync(main, 'utf8')) as CpuProfile) : undefined;
}
