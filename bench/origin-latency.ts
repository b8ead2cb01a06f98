// Origin live-edge latency: from the wall-clock time a segment's last frame
// was sent by the publisher to the moment the segment is listed in a
// playlist at the origin. nginx-rtmp writing to local disk versus our ingest
// (the compiled dist/ build) storing into a real S3 server (SeaweedFS). One
// stream each, one after the other, each over BENCH_SECONDS (75 s: about 70
// segments).
//
// The publisher replays a pre-encoded file with `-re`, so the frame at media
// time t is sent at t0 + t, where t0 is when the publisher started; a
// segment's last frame is sent at t0 + (the sum of the durations of the
// segments up to it, counting by media sequence number any that left the
// playlist before a poll saw them). The same clock and the same method for
// both systems; the S3 server has taken a first object before the run.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parsePlaylist } from '../harness/hls.ts';
import { startIngestProcess, writeKeyFile } from '../harness/ingest-process.ts';
import { getObject } from '../harness/s3-objects.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { replay } from './lib/media.ts';
import { startNginxRtmp } from './lib/nginx-rtmp.ts';
import { MediaClock, type LatencySummary } from './lib/origin-report.ts';
import { median, p95 } from './lib/stats.ts';

const KEY = 'bench_key_0123456789abcdefgh';

/** Polls a playlist and records when each segment first appears; returns latencies in ms. */
async function follow(read: () => Promise<string | undefined>, t0: number, seconds: number): Promise<number[]> {
  const seen = new Set<string>();
  const clock = new MediaClock();
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const text = await read().catch(() => undefined);
    const now = Date.now();
    if (text) {
      for (const seg of parsePlaylist(text).segments) {
        if (seen.has(seg.uri)) continue;
        seen.add(seg.uri);
        const mediaEnd = clock.segmentEnds(seg.sequence, seg.duration);
        // The first few segments include the publisher's and server's start-up.
        if (seen.size > 3) latencies.push(now - (t0 + mediaEnd * 1000));
      }
    }
    await sleep(20);
  }
  return latencies;
}

/**
 * SeaweedFS grows its first volume at the first write, which can take
 * seconds: done before the measurement, as a store in use would have it.
 */
async function warmUp(s3: Awaited<ReturnType<typeof startS3Server>>): Promise<void> {
  await waitFor(
    'SeaweedFS to take a first object',
    async () => Boolean(await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'warm-up', Body: 'x' }))),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

export async function originLatency(input: string, seconds = 75): Promise<LatencySummary[]> {
  const results: LatencySummary[] = [];

  const nginx = await startNginxRtmp();
  try {
    const t0 = Date.now();
    const pub = replay(input, `rtmp://127.0.0.1:${nginx.rtmpPort}/live/${KEY}`, 'nginx-publisher', seconds + 2);
    const samples = await follow(async () => readFileSync(join(nginx.hlsDir, `${KEY}.m3u8`), 'utf8'), t0, seconds);
    await pub.stop('SIGKILL');
    results.push({ system: 'nginx-rtmp (local disk)', samples, median: median(samples), p95: p95(samples) });
  } finally {
    await nginx.stop();
  }

  const s3 = await startS3Server('bench');
  const dir = mkdtempSync(join(tmpdir(), 'tteok-bench-'));
  try {
    writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'bench', key: KEY }]);
    const ingest = await startIngestProcess(
      {
        ...s3.ingestEnv,
        TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
        TTEOK_MEDIA_DIR: join(dir, 'media'),
        TTEOK_LOG_LEVEL: 'info',
      },
      undefined,
      { build: BENCH_BUILD },
    );
    await warmUp(s3);
    const t0 = Date.now();
    const pub = replay(input, ingest.rtmpUrl(KEY), 'tteok-publisher', seconds + 2);
    const samples = await follow(async () => (await getObject(s3.client, s3.bucket, 'default/bench/index.m3u8'))?.body.toString('utf8'), t0, seconds);
    await pub.stop('SIGKILL');
    await ingest.proc.stop('SIGTERM', 20_000);
    results.push({ system: 'tteok (SeaweedFS S3)', samples, median: median(samples), p95: p95(samples) });
  } finally {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
