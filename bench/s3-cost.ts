// S3 cost per stream-hour (issue 20): every request the ingest (the compiled
// dist/ build) sends to a real S3 server (SeaweedFS) is counted by a
// recording proxy in front of it (harness/s3-recorder.ts), over a steady
// window after start-up, and scaled to an hour of one stream. Modes:
//   - plain: the 720p 2.5 Mbps input with a 1 s keyframe interval (the other
//     benchmarks' input), source only;
//   - plain and ladder on the same 1080p30 6 Mbps source with a 2 s keyframe
//     interval, the ladder with 720p/480p/360p renditions made by the
//     ingest's own ffmpeg children (TTEOK_TRANSCODER=local);
// thumbnails included (one every TTEOK_THUMBNAIL_SECONDS, 10 s by default).
// LL-HLS parts are served from the ingest's memory and never PUT, so LL costs
// what plain costs; its row comes once LL is on main (see README).
// Price basis: S3 Standard, us-east-1, December 2026 list prices: PUT, COPY,
// POST, LIST $0.005 per 1,000 requests; storage $0.023 per GB-month; data in free.
//
//   BENCH_S3_COST_SECONDS=40   steady window per mode (after 6 s of start-up)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { startIngestProcess, writeKeyFile } from '../harness/ingest-process.ts';
import { startS3Recorder, type RecordedRequest } from '../harness/s3-recorder.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { replay } from './lib/media.ts';
import { RENDITION_PRESETS } from '../common/renditions.ts';
import { fmt } from './lib/stats.ts';
import { ladderSource } from './transcoder.ts';

export const PUT_DOLLARS_PER_1000 = 0.005;
export const STORAGE_DOLLARS_PER_GB_MONTH = 0.023;
const KEY = 'bench_cost_key_0123456789abcdefgh';
const WARM_UP_SECONDS = 6;

export interface CostMode {
  mode: string;
  input: string;
  renditions: string[];
}

export interface CostResult {
  mode: string;
  windowSeconds: number;
  /** Per stream-hour. */
  puts: { segments: number; playlists: number; other: number; total: number };
  gigabytes: number;
  otherRequests: number;
  /** Per stream-hour: segment PUTs of the source (`<ns>/<name>/<run>/<n>.m4s`) and of the renditions (one folder deeper). */
  sourceSegments: number;
  renditionSegments: number;
}

/** Scales the requests started inside the window to one stream-hour. */
export function perStreamHour(mode: string, requests: RecordedRequest[], from: number, to: number): CostResult {
  const inWindow = requests.filter((r) => r.startedAt >= from && r.startedAt < to && r.status >= 200 && r.status < 300);
  const scale = 3_600_000 / (to - from);
  const puts = inWindow.filter((r) => r.method === 'PUT');
  const count = (f: (key: string) => boolean) => puts.filter((r) => f(r.key)).length * scale;
  const segments = count((k) => k.endsWith('.m4s') || k.endsWith('.mp4'));
  const sourceSegments = count((k) => k.endsWith('.m4s') && k.split('/').length === 4);
  const playlists = count((k) => k.endsWith('.m3u8'));
  return {
    mode,
    windowSeconds: (to - from) / 1000,
    puts: { segments, playlists, other: puts.length * scale - segments - playlists, total: puts.length * scale },
    gigabytes: (puts.reduce((sum, r) => sum + r.bytes, 0) * scale) / 1e9,
    otherRequests: (inWindow.length - puts.length) * scale,
    sourceSegments,
    renditionSegments: count((k) => k.endsWith('.m4s') && k.split('/').length === 5),
  };
}

/**
 * A ladder whose transcoder fell behind (a shared machine): the row it would
 * have given had it kept up, each rendition storing a segment per source
 * segment at its preset's video bit rate plus 128 kbit/s of audio. Undefined
 * when the measured renditions have 90 % or more of that.
 */
export function keptUpLadder(r: CostResult, renditions: string[]): { row: CostResult; stored: number; expected: number } | undefined {
  const expected = r.sourceSegments * renditions.length;
  if (renditions.length === 0 || r.renditionSegments >= 0.9 * expected) return undefined;
  const missing = expected - r.renditionSegments;
  const kbps = renditions.reduce((sum, name) => sum + (RENDITION_PRESETS.find((p) => p.name === name)?.videoKbps ?? 0) + 128, 0);
  const missingShare = missing / expected;
  const gigabytes = r.gigabytes + (kbps * 1000 * 3600 * missingShare) / 8 / 1e9;
  return {
    row: {
      ...r,
      mode: `${r.mode}, derived: transcoder keeping up`,
      puts: { ...r.puts, segments: r.puts.segments + missing, total: r.puts.total + missing },
      gigabytes,
      renditionSegments: expected,
    },
    stored: r.renditionSegments,
    expected,
  };
}

export function costModes(): CostMode[] {
  return [
    { mode: 'plain, 720p, 1 s keyframes', input: '', renditions: [] },
    { mode: 'plain, 1080p, 2 s keyframes', input: ladderSource(30), renditions: [] },
    { mode: 'ladder 720p/480p/360p, 1080p source, 2 s keyframes', input: ladderSource(30), renditions: ['720p', '480p', '360p'] },
  ];
}

export async function s3Cost(input720p: string, seconds: number, modes = costModes()): Promise<CostResult[]> {
  const results: CostResult[] = [];
  for (const m of modes) {
    const s3 = await startS3Server('bench');
    const recorder = await startS3Recorder(s3.endpoint, s3.bucket);
    const dir = mkdtempSync(join(tmpdir(), 'tteok-bench-cost-'));
    try {
      // SeaweedFS grows its first volume at the first write: done before the measurement.
      await waitFor(
        'SeaweedFS to take a first object',
        async () => Boolean(await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'warm-up', Body: 'x' }))),
        {
          timeoutMs: 60_000,
          intervalMs: 500,
        },
      );
      writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'cost', key: KEY, ...(m.renditions.length ? { spec: { renditions: m.renditions } } : {}) }]);
      const ingest = await startIngestProcess(
        {
          ...s3.ingestEnv,
          TTEOK_S3_ENDPOINT: recorder.endpoint,
          TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
          TTEOK_MEDIA_DIR: join(dir, 'media'),
          TTEOK_TRANSCODER: 'local',
          TTEOK_LOG_LEVEL: 'info',
        },
        undefined,
        { build: BENCH_BUILD },
      );
      const pub = replay(m.input || input720p, ingest.rtmpUrl(KEY), 'cost-publisher');
      await sleep(WARM_UP_SECONDS * 1000);
      const from = Date.now();
      await sleep(seconds * 1000);
      const to = Date.now();
      results.push(perStreamHour(m.mode, recorder.requests, from, to));
      await pub.stop('SIGKILL');
      await ingest.proc.stop('SIGTERM', 20_000);
    } finally {
      await recorder.close();
      await s3.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return results;
}

export const COST_HEADER = [
  'mode',
  'PUTs / stream-hour',
  'segments',
  'playlists',
  'other',
  'GB written / stream-hour',
  'PUT $ / stream-hour',
  'storage $ / stream-hour kept a month',
];

export function costRow(r: CostResult): string[] {
  return [
    r.mode,
    fmt(r.puts.total),
    fmt(r.puts.segments),
    fmt(r.puts.playlists),
    fmt(r.puts.other),
    fmt(r.gigabytes, 2),
    `$${fmt((r.puts.total / 1000) * PUT_DOLLARS_PER_1000, 3)}`,
    `$${fmt(r.gigabytes * STORAGE_DOLLARS_PER_GB_MONTH, 3)}`,
  ];
}
