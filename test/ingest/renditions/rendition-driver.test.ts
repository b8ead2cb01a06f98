// The per-stream rendition driver with real encoders: local ffmpeg child
// processes, and the transcoder role as its own process (up, and down). Fed
// the segments the ingest's own packager writes; what it hands back is
// recorded by a sink standing where the packager's addRenditionSegment goes
// (the lead wires the two together once the packager has it), and thumbnails
// go into the real local object store.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { decodeStarts, initTracks } from '../../../common/fmp4-boxes.ts';
import { createLogger } from '../../../common/log.ts';
import type { StreamRef } from '../../../common/livestream.ts';
import { LocalDirectoryStore } from '../../../common/storage/local-store.ts';
import type { ObjectStore, PutOptions } from '../../../common/storage/object-store.ts';
import { LocalRenditionEncoder } from '../../../ingest/renditions/local-encoder.ts';
import { RemoteRenditionEncoder } from '../../../ingest/renditions/remote-encoder.ts';
import { RenditionDriver, type RenditionSink, type SourceSegmentEvent } from '../../../ingest/renditions/rendition-driver.ts';
import { RenditionMetrics } from '../../../ingest/renditions/rendition-metrics.ts';
import type { RenditionEncoder } from '../../../ingest/renditions/rendition-encoder.ts';
import { ThumbnailStore } from '../../../ingest/renditions/thumbnail-store.ts';
import { freePort } from '../../../harness/ports.ts';
import { stopAll } from '../../../harness/process.ts';
import { startTranscoderProcess } from '../../../harness/transcoder-process.ts';
import { tempDir } from '../../fixtures/media.ts';
import { sourceSegments, type SourceSegment } from '../../transcoder/source-segments.ts';

t.teardown(stopAll);

const REF: StreamRef = { namespace: 'default', name: 'room' };
const log = createLogger('driver-test', 'error');

class RecordingSink implements RenditionSink {
  readonly added: Array<{ rendition: string; sequence: number; init: Uint8Array; data: Uint8Array }> = [];
  addRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): void {
    this.added.push({ rendition, sequence, init, data });
  }
}

function event(s: SourceSegment): SourceSegmentEvent {
  return { sessionFolder: 's1', sequence: s.sequence, initUri: 's1/init-1.mp4', init: s.init, data: s.data, startSeconds: 0, duration: s.duration };
}

/** The local store, with every put's options kept (the headers S3 would get). */
function recordingStore(dir: string): ObjectStore & { puts: Array<{ key: string; options: PutOptions }> } {
  const store = new LocalDirectoryStore(dir);
  const puts: Array<{ key: string; options: PutOptions }> = [];
  return Object.assign(Object.create(store) as ObjectStore, {
    puts,
    put: (key: string, body: Uint8Array, options: PutOptions) => {
      puts.push({ key, options });
      return store.put(key, body, options);
    },
  });
}

async function sampleValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const sample = (metric?.values ?? []).find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return sample?.value ?? 0;
}

function driverWith(encoder: RenditionEncoder, renditions: string[], thumbnails?: { intervalMs: number; store: ObjectStore; access?: 'public' | 'private' }) {
  const registry = new Registry();
  const metrics = new RenditionMetrics(registry);
  const sink = new RecordingSink();
  const driver = new RenditionDriver({
    ref: REF,
    renditions,
    encoder,
    sink,
    metrics,
    log,
    ...(thumbnails
      ? { thumbnails: { intervalMs: thumbnails.intervalMs, sink: new ThumbnailStore(thumbnails.store, 'pfx', () => thumbnails.access ?? 'public') } }
      : {}),
  });
  return { driver, sink, registry };
}

t.test('local ffmpeg: every source segment gets its renditions under its own sequence number, at its decode time', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 4 });
  const encoder = new LocalRenditionEncoder();
  const { driver, sink, registry } = driverWith(encoder, ['720p', '360p', 'audio']);
  for (const s of segments.slice(0, 3)) {
    driver.onSourceSegment(event(s));
    await driver.idle();
  }
  t.same(
    sink.added.map((a) => `${a.sequence}:${a.rendition}`),
    segments.slice(0, 3).flatMap((s) => [`${s.sequence}:360p`, `${s.sequence}:audio`]),
    'each segment in order, 720p skipped (the source is 480p)',
  );
  for (const a of sink.added.filter((x) => x.rendition === '360p')) {
    const source = segments.find((s) => s.sequence === a.sequence)!;
    t.equal(
      decodeStarts(a.data, initTracks(a.init)).get('video')!.toFixed(4),
      decodeStarts(source.data, initTracks(source.init)).get('video')!.toFixed(4),
      `segment ${a.sequence}: the rendition starts where the source does`,
    );
  }
  t.equal(await sampleValue(registry, 'tteok_ingest_transcoder_requests_total', { kind: 'renditions', outcome: 'ok' }), 3);
  const latency = (await registry.getMetricsAsJSON()).find((m) => m.name === 'tteok_ingest_rendition_segment_latency_seconds');
  t.equal(
    latency?.values.find((v) => v.labels.rendition === '360p' && (v as { metricName?: string }).metricName?.endsWith('_count'))?.value,
    3,
    'a latency per rendition segment',
  );
  await driver.close();
});

t.test('a burst of segments: one encode in flight, one waiting, a newer one replaces the waiting one (counted superseded)', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 6 });
  const burst = segments.slice(0, 5);
  const { driver, sink, registry } = driverWith(new LocalRenditionEncoder(), ['360p', '160p']);
  for (const s of burst) driver.onSourceSegment(event(s));
  await driver.idle();
  t.same(
    [...new Set(sink.added.map((a) => a.sequence))],
    [burst[0]!.sequence, burst.at(-1)!.sequence],
    'the first (in flight) and the newest (waiting) are encoded',
  );
  for (const rendition of ['360p', '160p'])
    t.equal(await sampleValue(registry, 'tteok_ingest_rendition_segments_missing_total', { rendition, reason: 'superseded' }), 3, `${rendition}: 3 superseded`);
  await driver.close();
});

t.test('thumbnails: every interval, stored as thumbnail.jpg beside the playlist with a short cache, under _private for a private stream', async (t) => {
  const segments = await sourceSegments(t, { size: '1280x720', seconds: 3 });
  const dir = tempDir(t);
  const store = recordingStore(dir);
  const { driver } = driverWith(new LocalRenditionEncoder(), [], { intervalMs: 60_000, store, access: 'private' });
  for (const s of segments.slice(0, 3)) {
    driver.onSourceSegment(event(s));
    await driver.idle();
  }
  t.same(
    store.puts.map((p) => p.key),
    ['pfx/_private/default/room/thumbnail.jpg'],
    'one thumbnail in the interval, under the private root',
  );
  t.same(store.puts[0]!.options, { contentType: 'image/jpeg', cacheControl: 'public, max-age=5' });
  const jpeg = readFileSync(join(dir, 'pfx/_private/default/room/thumbnail.jpg'));
  t.same([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
  await driver.close();
});

t.test('an audio-only stream gets no thumbnail and no error', async (t) => {
  const segments = await sourceSegments(t, { video: false, seconds: 3 });
  const dir = tempDir(t);
  const store = recordingStore(dir);
  const { driver, sink, registry } = driverWith(new LocalRenditionEncoder(), ['audio', '360p'], { intervalMs: 0, store });
  driver.onSourceSegment(event(segments[0]!));
  await driver.idle();
  t.same(store.puts, []);
  t.same(
    sink.added.map((a) => a.rendition),
    ['audio'],
    'the audio rendition only',
  );
  t.equal(await sampleValue(registry, 'tteok_ingest_transcoder_requests_total', { kind: 'thumbnail', outcome: 'ok' }), 0);
  await driver.close();
});

t.test('remote: the transcoder process encodes; with it down, segments are counted missing (unreachable) and nothing throws', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 3 });
  const tc = await startTranscoderProcess();
  const up = new RemoteRenditionEncoder({ url: tc.url, timeoutMs: 30_000 });
  t.teardown(() => up.close());
  const live = driverWith(up, ['360p', 'audio']);
  live.driver.onSourceSegment(event(segments[0]!));
  await live.driver.idle();
  t.same(
    live.sink.added.map((a) => a.rendition),
    ['360p', 'audio'],
  );
  await tc.proc.stop('SIGKILL');
  const down = driverWith(new RemoteRenditionEncoder({ url: `http://127.0.0.1:${await freePort()}` }), ['360p', 'audio']);
  down.driver.onSourceSegment(event(segments[1]!));
  await down.driver.idle();
  t.same(down.sink.added, []);
  t.equal(await sampleValue(down.registry, 'tteok_ingest_rendition_segments_missing_total', { rendition: '360p', reason: 'unreachable' }), 1);
  t.equal(await sampleValue(down.registry, 'tteok_ingest_transcoder_requests_total', { kind: 'renditions', outcome: 'unreachable' }), 1);
  // The same pool, its transcoder killed: the next request fails too, counted, not thrown.
  live.driver.onSourceSegment(event(segments[1]!));
  await live.driver.idle();
  t.equal(live.sink.added.length, 2, 'nothing more arrived');
  t.equal(
    await sampleValue(live.registry, 'tteok_ingest_rendition_segments_missing_total', { rendition: '360p', reason: 'unreachable' }),
    1,
    'counted missing',
  );
});

t.test('local ffmpeg busy: beyond its job limit an encode is refused as busy and counted', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 3 });
  const encoder = new LocalRenditionEncoder({ maxJobs: 1 });
  const a = driverWith(encoder, ['360p']);
  const b = driverWith(encoder, ['360p']);
  a.driver.onSourceSegment(event(segments[0]!));
  b.driver.onSourceSegment(event(segments[1]!));
  await Promise.all([a.driver.idle(), b.driver.idle()]);
  t.equal(a.sink.added.length, 1, 'the first stream got its rendition');
  t.equal(
    await sampleValue(b.registry, 'tteok_ingest_rendition_segments_missing_total', { rendition: '360p', reason: 'busy' }),
    1,
    'the second is counted busy',
  );
});
