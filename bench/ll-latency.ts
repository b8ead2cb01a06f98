// Viewer glass latency with LL-HLS through the Kubernetes-shaped path (issue
// 20): a real ingest process (the dist/ build) publishes segments to
// SeaweedFS and holds its LL playlists and parts; the gateway is the LL
// origin, asking the ingest over HTTP as it does in Kubernetes (the holder
// named directly, as a claim Lease's tteok.dev/ll-origin names it); in front
// a CloudFront-shaped router (harness/cdn-front.ts: the CloudFormation
// template's origin groups, no cache). The project's player page plays the
// front's URL in headless Chromium, sampled once a second.
// For each keyframe interval, LL on (TTEOK_LL_PART_SECONDS=0.333) and off
// (0: the ingest holds no LL playlists, the front falls back to the bucket's
// plain playlist, the path non-LL deployments take).
// The gateway runs in this process from the TypeScript sources: its LL origin
// reads holders from claim Leases only in the Kubernetes view, and it is not
// what is measured here (it passes bytes on).
// nginx-rtmp is not run here: bench/keyframe-latency.ts (BENCH=keyframes)
// measures it with the same player and keyframe intervals.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../common/log.ts';
import { createGateway } from '../gateway/gateway.ts';
import { HttpLowLatencySource } from '../gateway/low-latency/http-source.ts';
import { LocalStreamView } from '../gateway/views/local-stream-view.ts';
import { launchBrowser } from '../harness/browser.ts';
import { type CdnFront, startCdnFront } from '../harness/cdn-front.ts';
import { startIngestProcess, writeKeyFile } from '../harness/ingest-process.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { replay } from './lib/media.ts';
import { fmt, median, p95 } from './lib/stats.ts';

// BENCH_LL_PART_SECONDS: the ingest's TTEOK_LL_PART_SECONDS with LL-HLS on (default: the ingest's default).
const PART_SECONDS = process.env.BENCH_LL_PART_SECONDS ?? '0.333';

export interface LlResult {
  keyframeSeconds: number;
  ll: boolean;
  /** now − playingDate, seconds, once a second. */
  endToEnd: number[];
  /** hls.latency: how far behind the playlist's live edge hls.js plays, seconds, once a second. */
  edge: number[];
  /** hls.js's target latency (PART-HOLD-BACK or the page's liveSyncDuration), seconds, at the end. */
  target: number | null;
  stalls: number;
  /** Seconds the video element waited for data within the sampling window. */
  stalledSeconds: number;
  /** Requests the front answered during the sampling: blocking playlist reloads, parts. */
  blockingReloads: number;
  parts: number;
}

export const LL_HEADER = [
  'keyframe interval',
  'LL-HLS',
  'now−playingDate median',
  'p95',
  'behind live edge median',
  'stalls',
  'stalled s',
  'hls.js target',
  'blocking reloads/s',
  'parts/s',
];

export function llRow(r: LlResult, seconds: number): string[] {
  const s = (f: (v: number[]) => number) => (r.endToEnd.length ? fmt(f(r.endToEnd), 2, ' s') : 'n/a');
  return [
    `${r.keyframeSeconds} s`,
    r.ll ? `on (${PART_SECONDS} s parts)` : 'off',
    s(median),
    s(p95),
    r.edge.length ? fmt(median(r.edge), 2, ' s') : 'n/a',
    String(r.stalls),
    fmt(r.stalledSeconds, 1),
    r.target === null ? 'n/a' : fmt(r.target, 2, ' s'),
    fmt(r.blockingReloads / seconds, 1),
    fmt(r.parts / seconds, 1),
  ];
}

/** BENCH_LL_KEYFRAME_INTERVALS="1,2,4" (default "2", to keep `make bench` short). */
export function llKeyframeIntervals(env: NodeJS.ProcessEnv): number[] {
  return (env.BENCH_LL_KEYFRAME_INTERVALS ?? '2').split(',').map((text) => {
    const seconds = Number(text.trim());
    if (!(seconds >= 0.5 && seconds <= 10)) throw new Error(`BENCH_LL_KEYFRAME_INTERVALS: ${text.trim()} is not a keyframe interval in seconds (0.5–10)`);
    return seconds;
  });
}

/**
 * 60 s of 720p30 2.5 Mbps x264 veryfast zerolatency (no B-frames, as low-latency
 * encoders send) with the given keyframe interval, encoded once and cached:
 * publishers replay it in copy mode, so no encode competes with the measurement.
 */
export function zerolatencyInput(keyframeSeconds: number): string {
  const dir = join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bench');
  const path = join(dir, `720p-2500k-zerolatency-gop${keyframeSeconds}s-60s.flv`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`bench: encoding the 720p input with a ${keyframeSeconds} s keyframe interval once (about a minute)\n`);
  const gop = String(Math.round(keyframeSeconds * 30));
  execFileSync('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '60'],
    ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'high', '-pix_fmt', 'yuv420p'],
    ...['-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '2500k', '-g', gop, '-keyint_min', gop, '-sc_threshold', '0'],
    ...['-c:a', 'aac', '-b:a', '128k', '-ac', '2', '-f', 'flv', `${path}.tmp`],
  ]);
  execFileSync('mv', [`${path}.tmp`, path]);
  return path;
}

interface PageStats {
  playing: boolean;
  bufferAhead: number;
  playbackRate: number;
  catchUp: string;
  playingSeconds: number;
  latency: number | null;
  edgeDistance: number | null;
  targetLatency: number | null;
  stalls: number;
  waits: Array<{ start: number; end: number | null }>;
  errors: string[];
}

/** Seconds of the waits that fall inside [from, to] (ms). */
export function stalledWithin(waits: PageStats['waits'], from: number, to: number): number {
  let ms = 0;
  for (const w of waits) ms += Math.max(0, Math.min(w.end ?? to, to) - Math.max(w.start, from));
  return ms / 1000;
}

async function run(keyframeSeconds: number, ll: boolean, seconds: number, s3: Awaited<ReturnType<typeof startS3Server>>): Promise<LlResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-bench-'));
  const name = `ll${keyframeSeconds * 10}${ll ? 'on' : 'off'}`;
  const key = `${name}_bench_key_0123456789abcdef`;
  const keysFile = join(dir, 'keys.yaml');
  writeKeyFile(keysFile, [{ name, key }]);
  const log = createLogger('gateway', 'silent');
  const view = LocalStreamView.fromFile(keysFile, log);
  const ingest = await startIngestProcess(
    {
      ...s3.ingestEnv,
      TTEOK_KEYS_FILE: keysFile,
      TTEOK_MEDIA_DIR: join(dir, 'media'),
      TTEOK_LOG_LEVEL: 'info',
      TTEOK_LL_PART_SECONDS: ll ? PART_SECONDS : '0',
    },
    undefined,
    { build: BENCH_BUILD },
  );
  const upstream = `http://127.0.0.1:${ingest.httpPort}`;
  // The gateway needs the front's address (the page may play it), the front the gateway's: the front first.
  const front = await startCdnFront(`${s3.endpoint}/${s3.bucket}`);
  const app = await createGateway({
    view,
    log,
    followIntervalMs: 0,
    playbackBaseUrl: front.url,
    playerSrcOrigins: [front.url],
    lowLatency: {
      holders: { holderOf: () => ({ id: upstream, source: new HttpLowLatencySource(upstream) }), close: async () => undefined },
      upstreamTimeoutMs: 10_000,
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const gatewayUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  front.gateway = `${gatewayUrl}/origin`;
  const publisher = replay(zerolatencyInput(keyframeSeconds), ingest.rtmpUrl(key), `ll-publisher-${name}`);
  const browser = await launchBrowser();
  try {
    const playlist = `${front.url}/default/${name}/index.m3u8`;
    await waitFor('the first playlist at the front', async () => ((await fetch(playlist)).ok ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 });
    // The viewer joins a stream that is already running, as most do (BENCH_LL_JOIN_SECONDS, default 10; 0: at its first playlist).
    await sleep(JOIN_SECONDS * 1000);
    const { page } = browser;
    const stats = () => page.evaluate(() => (window as unknown as { tteokStats: PageStats }).tteokStats);
    await page.goto(`${gatewayUrl}/?src=${encodeURIComponent(playlist)}`);
    if (process.env.BENCH_LL_TRACE) void traceStartUp(name, stats, front);
    // Start-up sits further back and catches up at ≤ 1.15×: measured from 8 s of playback on.
    await waitFor('8 s of playback', async () => ((await stats()).playingSeconds >= 8 ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 }).catch(
      (error: Error) => {
        throw new Error(`${error.message} at ${playlist}\nconsole:\n${browser.console.slice(-15).join('\n')}`);
      },
    );
    const from = Date.now();
    const answersFrom = front.answers.length;
    const endToEnd: number[] = [];
    const edge: number[] = [];
    for (let i = 0; i < seconds; i++) {
      await sleep(1000);
      const s = await stats();
      if (s.latency !== null && s.playing) endToEnd.push(s.latency);
      if (s.edgeDistance !== null && s.playing) edge.push(s.edgeDistance);
      if (process.env.BENCH_LL_TRACE)
        process.stderr.write(`${name} ${i}: ${JSON.stringify({ latency: s.latency, edge: s.edgeDistance, target: s.targetLatency, stalls: s.stalls })}\n`);
    }
    const to = Date.now();
    const last = await stats();
    const answers = front.answers.slice(answersFrom);
    return {
      keyframeSeconds,
      ll,
      endToEnd,
      edge,
      target: last.targetLatency,
      stalls: last.stalls,
      stalledSeconds: stalledWithin(last.waits, from, to),
      blockingReloads: answers.filter((a) => a.blocking && a.by === 'gateway' && a.status === 200).length,
      parts: answers.filter((a) => a.part && a.status === 200).length,
    };
  } finally {
    await browser.close();
    await publisher.stop('SIGKILL');
    await app.close();
    await view.close();
    await front.close();
    await ingest.proc.stop('SIGTERM', 20_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** BENCH_LL_TRACE: the first 6 s of the page, every 250 ms, and the front's requests meanwhile, on stderr (where start-up loses its time). */
async function traceStartUp(name: string, stats: () => Promise<PageStats>, front: CdnFront): Promise<void> {
  const start = Date.now();
  const answersFrom = front.answers.length;
  for (let i = 0; i < 24; i++) {
    await sleep(250);
    const s = await stats().catch(() => undefined);
    if (!s) break;
    const t = ((Date.now() - start) / 1000).toFixed(2);
    process.stderr.write(
      `${name} start ${t}s: ${JSON.stringify({ played: s.playingSeconds.toFixed(2), latency: s.latency?.toFixed(2), edge: s.edgeDistance?.toFixed(2), target: s.targetLatency, ahead: s.bufferAhead.toFixed(2), rate: s.playbackRate, catchUp: s.catchUp, stalls: s.stalls, waits: s.waits.map((w) => [(w.start - start) / 1000, w.end === null ? null : (w.end - start) / 1000]) })}\n`,
    );
  }
  for (const a of front.answers.slice(answersFrom, answersFrom + 60))
    process.stderr.write(
      `${name} request ${((a.at - a.ms - start) / 1000).toFixed(2)}s +${a.ms.toFixed(0)} ms: ${a.by} ${a.status} ${a.path}${a.blocking ? ' (blocking)' : ''}\n`,
    );
}

const JOIN_SECONDS = Number(process.env.BENCH_LL_JOIN_SECONDS ?? 10);

/** For each keyframe interval, LL on then off, one SeaweedFS for all. */
export async function llLatency(intervals: number[], seconds = 60): Promise<LlResult[]> {
  for (const i of intervals) zerolatencyInput(i);
  const s3 = await startS3Server('ll-latency');
  const results: LlResult[] = [];
  try {
    for (const keyframeSeconds of intervals) for (const ll of [true, false]) results.push(await run(keyframeSeconds, ll, seconds, s3));
  } finally {
    await s3.stop();
  }
  return results;
}
