// Each rendition's origin latency against the source's (issue 19 item 6): a
// 1080p30 source (6 Mbit/s, 2 s keyframe interval) published in real time to
// the ingest (the compiled dist/ build) with `renditions` 720p/480p/360p
// encoded by its own ffmpeg child processes (TTEOK_TRANSCODER=local, the
// one-machine mode's transcoder), everything stored into a real S3 server
// (SeaweedFS). One follower polls the stored playlists (source.m3u8 and each
// rendition's) and notes when each segment is first listed with media (a gap
// is a missing segment, counted apart). A segment's latency: from its arrival
// at the ingest (its EXT-X-PROGRAM-DATE-TIME, when its first frame arrived,
// plus its duration: when its last frame had arrived) to that first listing.
// The source's figure is the ingest's packaging and upload; a rendition's
// adds the wait for the transcoder and its encode.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parseMediaPlaylist } from '../common/media-playlist.ts';
import { startIngestProcess, writeKeyFile } from '../harness/ingest-process.ts';
import { getObject } from '../harness/s3-objects.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { replay } from './lib/media.ts';
import { median, p95 } from './lib/stats.ts';
import { ladderSource } from './transcoder.ts';

const KEY = 'bench_ladder_key_0123456789abcdefgh';
/** Segments skipped at the start: the publisher's, the ingest's and ffmpeg's start-up. */
const WARM_UP_SEGMENTS = 3;
const POLL_MS = 50;

export interface RenditionLatency {
  /** `source` or a preset name. */
  rendition: string;
  /** Latencies (ms) of the segments listed with media. */
  samples: number[];
  median: number;
  p95: number;
  /** Segments of the measured stretch listed as gaps (the transcoder missed them). */
  gaps: number;
  /** Mean seconds from a source segment written to this rendition's segment handed to the packager (the ingest's histogram; whole run). */
  encodeSeconds: number;
  /** Why segments are missing, from the ingest's counters over the whole run: "superseded 12, late 3". */
  missing: string;
}

/** Per rendition: the ingest's own account of its encodes (tteok_ingest_rendition_* counters). */
function ingestAccount(metrics: string, rendition: string): { encodeSeconds: number; missing: string } {
  const samples = metrics
    .split('\n')
    .filter((l) => l.startsWith('tteok_ingest_rendition_') && l.includes(`rendition="${rendition}"`))
    .map((l) => ({ line: l, value: Number(l.split(' ').at(-1)) }));
  const value = (prefix: string) => samples.find((s) => s.line.startsWith(prefix))?.value ?? 0;
  const sum = value('tteok_ingest_rendition_segment_latency_seconds_sum');
  const count = value('tteok_ingest_rendition_segment_latency_seconds_count');
  const missing = samples
    .filter((s) => s.value > 0 && (s.line.startsWith('tteok_ingest_rendition_segments_missing_total') || /outcome="(late|skipped)"/.test(s.line)))
    .map((s) => `${/(?:reason|outcome)="([^"]+)"/.exec(s.line)?.[1]} ${s.value}`);
  return { encodeSeconds: count > 0 ? sum / count : Number.NaN, missing: missing.join(', ') || 'none' };
}

export async function renditionLatency(presets = ['720p', '480p', '360p'], seconds = 60): Promise<RenditionLatency[]> {
  // The source file is one pass of the cached 1080p input, looped by the publisher for `seconds`.
  const input = ladderSource(30);
  const s3 = await startS3Server('bench');
  const dir = mkdtempSync(join(tmpdir(), 'tteok-bench-ladder-'));
  try {
    writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'ladder', key: KEY, spec: { renditions: presets } }]);
    const ingest = await startIngestProcess(
      {
        ...s3.ingestEnv,
        TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
        TTEOK_MEDIA_DIR: join(dir, 'media'),
        TTEOK_TRANSCODER: 'local',
        TTEOK_THUMBNAIL_SECONDS: '0',
        TTEOK_LOG_LEVEL: 'info',
      },
      undefined,
      { build: BENCH_BUILD },
    );
    // SeaweedFS grows its first volume at the first write: done before the measurement, as a store in use would have it.
    await waitFor(
      'SeaweedFS to take a first object',
      async () => Boolean(await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'warm-up', Body: 'x' }))),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const names = ['source', ...presets];
    /** Per rendition: sequence → latency (ms) at its first listing with media; and the sequences listed as gaps. */
    const listed = new Map(names.map((n) => [n, new Map<number, number>()]));
    const gaps = new Map(names.map((n) => [n, new Set<number>()]));
    const pub = replay(input, ingest.rtmpUrl(KEY), 'ladder-publisher', seconds + 2);
    const deadline = Date.now() + (seconds + 8) * 1000;
    while (Date.now() < deadline) {
      for (const name of names) {
        const text = (await getObject(s3.client, s3.bucket, `default/ladder/${name}.m3u8`).catch(() => undefined))?.body.toString('utf8');
        const now = Date.now();
        if (!text) continue;
        for (const seg of parseMediaPlaylist(text).segments) {
          if (seg.gap) {
            gaps.get(name)!.add(seg.sequence);
            continue;
          }
          const seen = listed.get(name)!;
          if (seen.has(seg.sequence) || seg.programDateTime === undefined) continue;
          seen.set(seg.sequence, now - (seg.programDateTime + seg.duration * 1000));
        }
      }
      await sleep(POLL_MS);
    }
    await pub.stop('SIGKILL');
    const metrics = await ingest.metrics();
    await ingest.proc.stop('SIGTERM', 20_000);
    // The measured stretch: the source's segments after the warm-up, the same sequence numbers for every rendition.
    const measured = [...listed.get('source')!.keys()].sort((a, b) => a - b).slice(WARM_UP_SEGMENTS);
    return names.map((name) => {
      const samples = measured.flatMap((s) => (listed.get(name)!.has(s) ? [listed.get(name)!.get(s)!] : []));
      const account = name === 'source' ? { encodeSeconds: Number.NaN, missing: '' } : ingestAccount(metrics, name);
      return { rendition: name, samples, median: median(samples), p95: p95(samples), gaps: measured.filter((s) => gaps.get(name)!.has(s)).length, ...account };
    });
  } finally {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await renditionLatency());
  const { stopAll } = await import('../harness/process.ts');
  await stopAll();
}
