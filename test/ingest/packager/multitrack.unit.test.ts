// A multitrack publish (Enhanced RTMP v2, as ffmpeg 9 and OBS send it) in
// process: the FLV tags ffmpeg 9 writes for two and three video tracks, fed
// through a run into the real media volume, uploader and local object store.
// Every video track becomes a rendition of the ladder, muxed with audio track
// 0, cut at the same keyframes under the same sequence numbers. Malformed
// tracks change nothing for the source.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseMediaPlaylist, type ParsedMediaPlaylist } from '../../../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../../common/multivariant-playlist.ts';
import { StreamRun } from '../../../ingest/stream-run.ts';
import { readFlvTags, type FlvTag } from '../../../harness/flv-file.ts';
import { FFMPEG9 } from '../../../harness/publisher.ts';
import { ffprobe, tempDir } from '../../fixtures/media.ts';
import { clipTags, publish, REF, rig, settings, storedText, type Rig } from '../run-kit.ts';

const run = promisify(execFile);
type T = Parameters<typeof tempDir>[0];

/** ffmpeg 9 writes one test pattern as `sizes.length` video tracks (track 0 the first size) and AAC audio to FLV, keyframes every `gops[i]` frames. */
async function multitrackFlv(t: T, sizes: string[], gops: number[] = sizes.map(() => 30), seconds = 4): Promise<FlvTag[]> {
  const file = join(tempDir(t, 'tteok-mt-'), 'mt.flv');
  const args = [
    '-hide_banner',
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x360:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
  ];
  args.push('-t', String(seconds));
  for (const _ of sizes) args.push('-map', '0:v');
  args.push('-map', '1:a');
  sizes.forEach((size, i) =>
    args.push(`-filter:v:${i}`, `scale=${size.replace('x', ':')}`, `-g:v:${i}`, String(gops[i]), `-keyint_min:v:${i}`, String(gops[i])),
  );
  args.push('-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-sc_threshold', '0', '-c:a', 'aac', '-f', 'flv', file);
  await run(FFMPEG9, args);
  return readFlvTags(file);
}

async function publishRun(r: Rig, tags: FlvTag[]): Promise<void> {
  const stream = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  const session = stream.beginSession();
  publish(session, tags);
  await stream.endSession(session, true);
  await stream.settled;
}

async function stored(r: Rig, file: string): Promise<ParsedMediaPlaylist> {
  return parseMediaPlaylist((await storedText(r, file))!);
}

interface Probed {
  streams: Array<{ codec_type: string; width?: number; height?: number; nb_read_frames?: string }>;
}

/** ffprobe decodes a rendition as stored: its init segment and every segment it lists, joined. */
async function decode(t: T, r: Rig, list: ParsedMediaPlaylist): Promise<Probed> {
  const folder = join(r.originDir, REF.namespace, REF.name);
  const parts = [list.initUris[0]!, ...list.segments.filter((s) => !s.gap).map((s) => s.uri)];
  const file = join(tempDir(t, 'tteok-mt-probe-'), 'rendition.mp4');
  await writeFile(file, Buffer.concat(await Promise.all(parts.map((p) => readFile(join(folder, p))))));
  return ffprobe<Probed>(['-count_frames', '-show_streams', file]);
}

async function metric(r: Rig, name: string): Promise<string> {
  return r.metrics.registry.getSingleMetricAsString(name);
}

t.test('three video tracks: three renditions, each with the audio, cut at the same keyframes under the same sequence numbers', async (t) => {
  const r = await rig(t);
  await publishRun(r, await multitrackFlv(t, ['640x360', '426x240', '256x144']));
  const index = (await storedText(r, 'index.m3u8'))!;
  t.ok(isMultivariant(index), 'index.m3u8 is a multivariant playlist');
  const variants = parseMultivariantPlaylist(index);
  t.same(
    variants.map((v) => [v.name, v.uri, v.resolution]),
    [
      ['source', 'source.m3u8', { width: 640, height: 360 }],
      ['track1', 'track1.m3u8', { width: 426, height: 240 }],
      ['track2', 'track2.m3u8', { width: 256, height: 144 }],
    ],
    'track 0 is the source, track N is trackN, each with the picture size it was published at',
  );
  for (const v of variants) {
    t.equal(v.frameRate, 30, `${v.name}: FRAME-RATE`);
    t.match(v.codecs, [/^avc1\.64/, 'mp4a.40.2'], `${v.name}: CODECS, audio track 0 muxed in`);
    t.ok(
      v.averageBandwidth! > 0 && v.bandwidth >= v.averageBandwidth!,
      `${v.name}: BANDWIDTH is the peak (${v.bandwidth}), AVERAGE-BANDWIDTH the mean (${v.averageBandwidth})`,
    );
  }
  t.ok(variants[0]!.bandwidth > variants[1]!.bandwidth && variants[1]!.bandwidth > variants[2]!.bandwidth, 'listed highest bandwidth first');
  const source = await stored(r, 'source.m3u8');
  t.ok(source.ended && source.segments.length >= 4, `the source's playlist (${source.segments.length} segments)`);
  for (const name of ['track1', 'track2']) {
    const list = await stored(r, `${name}.m3u8`);
    t.ok(list.ended, `${name} ends with the run`);
    t.same(
      list.segments.map((s) => [s.sequence, s.duration, s.programDateTime, s.gap ?? false]),
      source.segments.map((s) => [s.sequence, s.duration, s.programDateTime, false]),
      `${name}: every segment under the source's sequence number, the same length, no gap`,
    );
    t.ok(
      list.segments.every((s) => s.uri === `${s.uri.split('/')[0]}/${name}/${s.sequence}.m4s`),
      `${name}: segments in the session folder under the rendition`,
    );
  }
  const expected = { source: [640, 360], track1: [426, 240], track2: [256, 144] } as Record<string, [number, number]>;
  for (const v of variants) {
    const probed = await decode(t, r, await stored(r, v.uri));
    const video = probed.streams.find((s) => s.codec_type === 'video')!;
    t.same([video.width, video.height], expected[v.name], `${v.name}: ffprobe decodes it at the size it was published at`);
    t.ok(Number(video.nb_read_frames) >= 110, `${v.name}: every frame decodes (${video.nb_read_frames})`);
    t.ok(
      probed.streams.some((s) => s.codec_type === 'audio'),
      `${v.name}: with audio`,
    );
  }
  t.notMatch(await metric(r, 'tteok_ingest_multitrack_misaligned_segments_total'), /_total\{/, 'nothing misaligned');
});

t.test("a track whose keyframes do not line up: its segments that do not match the source's are left out and counted; the source is whole", async (t) => {
  const r = await rig(t);
  await publishRun(r, await multitrackFlv(t, ['426x240', '256x144'], [30, 45], 6));
  const source = await stored(r, 'source.m3u8');
  t.ok(source.segments.length >= 6, `the source is cut every second (${source.segments.length} segments)`);
  t.match(
    await metric(r, 'tteok_ingest_multitrack_misaligned_segments_total'),
    /tteok_ingest_multitrack_misaligned_segments_total\{rendition="track1"\} [1-9]/,
    'counted',
  );
  const text = await storedText(r, 'track1.m3u8');
  if (text !== undefined) {
    const list = parseMediaPlaylist(text);
    for (const s of list.segments.filter((x) => !x.gap)) {
      const same = source.segments.find((x) => x.sequence === s.sequence)!;
      t.equal(s.duration, same.duration, `track1 lists segment ${s.sequence} only as long as the source's`);
    }
    t.ok(list.segments.some((s) => s.gap) || list.segments.length < source.segments.length, 'the misaligned stretches are not listed as media');
  }
});

t.test('malformed tracks change nothing for the source: a huge configuration, a track with frames only; too many tracks is refused', async (t) => {
  const tags = await clipTags(t);
  const plain = await rig(t);
  await publishRun(plain, tags);
  const config = tags.find((tag) => tag.type === 9 && tag.body[1] === 0)!;
  const avcC = config.body.subarray(5);
  const oneTrack = (frameType: number, packetType: number, trackId: number, payload: Uint8Array): FlvTag => ({
    type: 9,
    timestampMs: config.timestampMs,
    body: Buffer.from([0x80 | (frameType << 4) | 6, packetType, ...Buffer.from('avc1'), trackId, ...payload]),
  });
  const huge = oneTrack(1, 0, 1, new Uint8Array(70 * 1024).fill(1));
  const framesOnly = oneTrack(1, 1, 3, Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 0x65]));
  const at = tags.indexOf(config) + 1;
  const r = await rig(t);
  await publishRun(r, [...tags.slice(0, at), huge, framesOnly, ...tags.slice(at), framesOnly]);
  const index = (await storedText(r, 'index.m3u8'))!;
  t.notOk(isMultivariant(index), 'no ladder: index.m3u8 is the media playlist');
  const expected = parseMediaPlaylist((await storedText(plain, 'index.m3u8'))!);
  t.same(
    parseMediaPlaylist(index).segments.map((s) => s.duration),
    expected.segments.map((s) => s.duration),
    'the same segments as the same publish without them',
  );
  t.equal(await storedText(r, 'track1.m3u8'), undefined);

  const refused = await rig(t);
  const stream = StreamRun.begin(refused.ctx, { ref: REF, settings: settings() });
  const session = stream.beginSession();
  t.throws(
    () => publish(session, [...tags.slice(0, at), oneTrack(1, 0, 8, avcC)]),
    /video track 8: at most 8 video tracks \(ids 0 to 7\) are accepted/,
    'a ninth video track is refused with a sentence the streamer can act on',
  );
  await stream.endSession(session, false);
  await stream.finish();
});
