// Density: what each concurrent stream costs in CPU and memory, for our
// ingest process (the compiled dist/ build) storing into SeaweedFS versus the
// nginx-rtmp worker, at 20 and 50 publishers (the targets) replaying
// the 720p 2.5 Mbps input in copy mode; at the smallest count also our ingest
// with the local store, so that S3's share is visible, and, as a reference,
// one `ffmpeg -c copy` HLS process per stream (the design we did not take).
// A stream stalls when its playlist stops advancing; the largest count at
// which no stream stalled is reported.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePlaylist } from '../harness/hls.ts';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../harness/ingest-process.ts';
import { spawnManaged, type ManagedProcess } from '../harness/process.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { ConfigError, envList, type Env } from '../common/env-config.ts';
import { readMainThreadCpuProfile, summarizeCpuProfile, type ProfileSummary } from './lib/cpu-profile.ts';
import type { DensityKind, DensityRow } from './lib/density-report.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { enhancedBenchInput, replay } from './lib/media.ts';
import { startNginxRtmp } from './lib/nginx-rtmp.ts';
import { cpuSeconds, measure, rssMiB } from './lib/proc-stats.ts';

export interface DensityResult extends DensityRow {
  /** Where the ingest's busy time went during the window (the profiled run only). */
  profile?: ProfileSummary;
}

/** BENCH_DENSITY_COUNTS: the stream counts to measure, e.g. "4" for a short run (default 20,50: the targets are at both). */
export function densityCounts(env: Env): number[] {
  const counts = envList(env, 'BENCH_DENSITY_COUNTS', ['20', '50']).map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 500)) {
    throw new ConfigError(`BENCH_DENSITY_COUNTS must be a comma-separated list of stream counts between 1 and 500, got "${env.BENCH_DENSITY_COUNTS}"`);
  }
  return counts;
}

/**
 * Another configuration of the ingest measured in the same run
 * (BENCH_DENSITY_COMPARE): another compiled build (e.g. main's, to see a
 * change's effect beside the noise of a shared machine), or ours with other
 * environment (e.g. LL-HLS off, to see what it costs).
 */
export interface DensityVariant {
  system: string;
  /** A compiled dist/bin/tteok.js; absent: ours. */
  main?: string;
  env: Record<string, string>;
}

/** BENCH_DENSITY_COMPARE=label=<dist/bin/tteok.js or "ours">[|NAME=value,…];… */
export function densityVariants(env: Env): DensityVariant[] {
  const text = env.BENCH_DENSITY_COMPARE?.trim();
  if (!text) return [];
  return text.split(';').map((item) => {
    const at = item.indexOf('=');
    const system = item.slice(0, at).trim();
    const [build = '', settings = ''] = item.slice(at + 1).split('|');
    const main = build.trim();
    const bad = () => new ConfigError(`BENCH_DENSITY_COMPARE must be label=<dist/bin/tteok.js or ours>[|NAME=value,…];…, got "${item}"`);
    if (at < 1 || !main) throw bad();
    if (main !== 'ours' && !existsSync(main)) throw new ConfigError(`BENCH_DENSITY_COMPARE: ${main} does not exist`);
    const vars: Record<string, string> = {};
    for (const pair of settings.split(',').filter((p) => p.trim())) {
      const eq = pair.indexOf('=');
      if (eq < 1) throw bad();
      vars[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
    return { system, ...(main === 'ours' ? {} : { main }), env: vars };
  });
}

const WARMUP_MS = 10_000;
const WINDOW_MS = 30_000;

function keyOf(i: number): string {
  return `density_key_${String(i).padStart(4, '0')}_abcdefgh`;
}

/** Counts the segments each stream produced during the window, read from its playlist files. */
function segmentsSeen(playlistPath: (i: number) => string, n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const path = playlistPath(i);
    if (!existsSync(path)) return 0;
    const p = parsePlaylist(readFileSync(path, 'utf8'));
    return p.mediaSequence + p.segments.length;
  });
}

async function run(
  system: string,
  kind: DensityKind,
  n: number,
  baselinePids: () => number[],
  start: (i: number) => ManagedProcess,
  playlistPath: (i: number) => string,
  fullGcCount?: () => Promise<number>,
): Promise<DensityResult> {
  const baseline = baselinePids().reduce((a, p) => a + rssMiB(p), 0);
  const publishers = Array.from({ length: n }, (_, i) => start(i));
  await sleep(WARMUP_MS);
  const before = segmentsSeen(playlistPath, n);
  const gcBefore = await fullGcCount?.();
  const usage = await measure(baselinePids, WINDOW_MS);
  const gcAfter = await fullGcCount?.();
  const after = segmentsSeen(playlistPath, n);
  await Promise.all(publishers.map((p) => p.stop('SIGKILL')));
  // A stream that produced fewer than 80 % of the 1 s segments the window holds stalled.
  const expected = WINDOW_MS / 1000;
  const stalled = after.filter((a, i) => a - before[i]! < expected * 0.8).length;
  return {
    system,
    kind,
    streams: n,
    cpuPerStream: usage.cpuPercent / n,
    memPerStreamMiB: Math.max(0, usage.rssMiB - baseline) / n,
    stalledStreams: stalled,
    ...(gcBefore !== undefined && gcAfter !== undefined ? { fullGcPerSecond: (gcAfter - gcBefore) / (WINDOW_MS / 1000) } : {}),
  };
}

/**
 * One stack sample every 2 ms: over the 30 s window that is thousands of busy
 * samples (shares good to about a percentage point) at a fraction of the
 * sampler's cost at V8's default 1 ms, a cost the profiled run's CPU figure includes.
 */
export const PROFILE_INTERVAL_US = 2000;

/** The monotonic clock in µs: on Linux the clock V8 stamps a CPU profile's samples with. */
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Our ingest, from the compiled build, with n publishers replaying `input`:
 * storing into SeaweedFS, or with `store: 'local'` into a directory (the
 * one-machine origin; no S3 server is started). With `profile`, the ingest
 * runs under `node --cpu-prof`, which writes its profile when the process
 * exits (on SIGTERM the ingest drains and calls process.exit); only the
 * samples of the measurement window are summarized.
 */
async function tteokIngest(
  system: string,
  input: string,
  n: number,
  options: { profile?: boolean; store?: 's3' | 'local'; main?: string | undefined; env?: Record<string, string> } = {},
): Promise<DensityResult> {
  const { profile = false, store = 's3', main, env = {} } = options;
  const s3 = store === 's3' ? await startS3Server('density') : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'tteok-density-'));
  try {
    const streams: TestStream[] = Array.from({ length: n }, (_, i) => ({ name: `s${i}`, key: keyOf(i) }));
    writeKeyFile(join(dir, 'keys.yaml'), streams);
    const mediaDir = join(dir, 'media');
    const profileDir = join(dir, 'cpu-profile');
    const profileEnv: Record<string, string> = profile
      ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-interval=${PROFILE_INTERVAL_US} --cpu-prof-dir=${profileDir}`.trim() }
      : {};
    const storeEnv = s3 ? s3.ingestEnv : { TTEOK_STORAGE: 'local', TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin') };
    const ingest = await startIngestProcess(
      {
        ...storeEnv,
        TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
        TTEOK_MEDIA_DIR: mediaDir,
        TTEOK_LOG_LEVEL: 'info',
        // Every publisher here comes from 127.0.0.1; the default cap of 10 per address would refuse the rest.
        TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: String(Math.max(10, n)),
        ...profileEnv,
        ...env,
      },
      undefined,
      { build: main ? { main } : BENCH_BUILD },
    );
    const pid = ingest.proc.child.pid!;
    // run() starts the publishers at once and measures after WARMUP_MS, until it returns.
    const fromUs = monotonicMicros() + WARMUP_MS * 1000;
    const r = await run(
      system,
      s3 ? (profile ? 'tteok-s3-profiled' : main || Object.keys(env).length > 0 ? 'tteok-s3-variant' : 'tteok-s3') : 'tteok-local',
      n,
      () => [pid],
      (i) => replay(input, ingest.rtmpUrl(keyOf(i)), `pub-${i}`),
      (i) => join(mediaDir, 'default', `s${i}`, 'index.m3u8'),
      async () => metricValue(await ingest.metrics(), 'tteok_ingest_nodejs_gc_duration_seconds_count', 'kind="major"'),
    );
    const toUs = monotonicMicros();
    const backlog = metricValue(await ingest.metrics(), 'tteok_ingest_upload_backlog_segments');
    if (backlog > n) r.stalledStreams = Math.max(r.stalledStreams, 1);
    await ingest.proc.stop('SIGTERM', 30_000);
    if (profile) {
      const written = existsSync(profileDir) ? readMainThreadCpuProfile(profileDir) : undefined;
      // The project root: the compiled dist/ingest, dist/common… count as ours, listed at their TypeScript lines.
      if (written) r.profile = summarizeCpuProfile(written, { root: join(import.meta.dirname, '..'), fromUs, toUs });
      else process.stderr.write(`density: the ingest wrote no CPU profile of its main thread (did it exit cleanly on SIGTERM?)\n`);
    }
    return r;
  } finally {
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * HEVC and AV1 publishers over Enhanced RTMP (nginx-rtmp takes neither), at
 * the smallest count, beside H.264 in the same run as the reference.
 */
export async function enhancedDensity(h264Input: string, n = 10): Promise<DensityResult[]> {
  const results: DensityResult[] = [await tteokIngest('tteok ingest (to S3), H.264 + AAC', h264Input, n)];
  await sleep(2000);
  for (const codec of ['hevc', 'av1'] as const) {
    results.push(await tteokIngest(`tteok ingest (to S3), ${codec === 'hevc' ? 'HEVC' : 'AV1'} + AAC`, enhancedBenchInput(codec), n));
    await sleep(2000);
  }
  return results;
}

/**
 * The benchmark at each count. `variants`: other builds, measured right after
 * ours at each count. `quick` (BENCH_DENSITY_QUICK=1) leaves out the local
 * store's run and the ffmpeg reference: the peer, ours, and ours profiled.
 */
export async function density(
  input: string,
  counts = densityCounts(process.env),
  variants = densityVariants(process.env),
  quick = process.env.BENCH_DENSITY_QUICK === '1',
): Promise<DensityResult[]> {
  const results: DensityResult[] = [];

  for (const n of counts) {
    const nginx = await startNginxRtmp();
    try {
      results.push(
        await run(
          'nginx-rtmp worker',
          'nginx-rtmp',
          n,
          nginx.workerPids,
          (i) => replay(input, `rtmp://127.0.0.1:${nginx.rtmpPort}/live/${keyOf(i)}`, `pub-${i}`),
          (i) => join(nginx.hlsDir, `${keyOf(i)}.m3u8`),
        ),
      );
    } finally {
      await nginx.stop();
    }
    await sleep(2000);

    // The target's figures come from a run without the profiler: the sampler costs CPU itself.
    results.push(await tteokIngest('tteok ingest (to S3)', input, n));
    await sleep(2000);
    for (const v of variants) {
      results.push(await tteokIngest(`tteok ingest (to S3), ${v.system}`, input, n, { main: v.main, env: v.env }));
      await sleep(2000);
    }
    // At the smallest count, the same again under the profiler, to show where the time goes, and
    // with the local store, profiled too, so that the difference (what storing into S3 costs) is
    // like for like and its profile shows our path without S3.
    if (n === Math.min(...counts)) {
      results.push(await tteokIngest('tteok ingest (to S3), profiled', input, n, { profile: true }));
      await sleep(2000);
      if (!quick) {
        results.push(await tteokIngest('tteok ingest (local store), profiled', input, n, { profile: true, store: 'local' }));
        await sleep(2000);
      }
    }
  }
  if (quick) return results;

  // Reference: one ffmpeg per stream, remuxing to HLS itself (no RTMP hop), at the smallest count.
  const n = Math.min(...counts);
  const dir = mkdtempSync(join(tmpdir(), 'tteok-ffmpeg-hls-'));
  try {
    const procs: ManagedProcess[] = [];
    const startOne = (i: number) => {
      const out = join(dir, `s${i}`);
      mkdirSync(out);
      const p = spawnManaged(`ffmpeg-hls-${i}`, 'ffmpeg', [
        '-hide_banner',
        '-nostats',
        '-loglevel',
        'error',
        '-re',
        '-stream_loop',
        '-1',
        '-i',
        input,
        '-c',
        'copy',
        '-f',
        'hls',
        '-hls_time',
        '1',
        '-hls_list_size',
        '6',
        '-hls_flags',
        'delete_segments',
        join(out, 'index.m3u8'),
      ]);
      procs.push(p);
      return p;
    };
    const r = await run(
      'ffmpeg -c copy per stream',
      'reference',
      n,
      () =>
        procs
          .map((p) => p.child.pid!)
          .filter((pid) => {
            try {
              cpuSeconds(pid);
              return true;
            } catch {
              return false;
            }
          }),
      startOne,
      (i) => join(dir, `s${i}`, 'index.m3u8'),
    );
    // Its baseline is zero processes: the per-stream memory is the whole RSS.
    results.push(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
