// Multitrack in, ladder out, end to end on real parts: ffmpeg 9 publishes two
// and three video tracks of one picture (Enhanced RTMP v2 multitrack, as
// OBS's multitrack video sends them) over RTMP to the real ingest process,
// which stores into a real S3-compatible server (SeaweedFS) through a
// recording proxy. What is checked is what the bucket holds: the
// multivariant index.m3u8, every rendition's playlist and segments decoded by
// ffprobe over HTTP at the size it was published at, the multivariant's
// attributes against the stored media, a kept run's VOD with every
// rendition, and at every playlist PUT that it names only objects already
// stored.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { parseMediaPlaylist, type ParsedMediaPlaylist } from '../../../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist, type Variant } from '../../../common/multivariant-playlist.ts';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { spawnManaged, stopAll } from '../../../harness/process.ts';
import { FFMPEG9 } from '../../../harness/publisher.ts';
import { fixtureTags, mediaMessage, openPublish, receivedText, sendAndDrain } from '../../../harness/rtmp-media.ts';
import { getObject, headObject, listKeys } from '../../../harness/s3-objects.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { startS3Recorder } from '../../../harness/s3-recorder.ts';
import { startS3Server } from '../../../harness/s3-server.ts';
import { waitFor } from '../../../harness/wait.ts';

const run = promisify(execFile);

if (!existsSync(FFMPEG9)) throw new Error(`${FFMPEG9} is missing: run test/tools/install-ffmpeg9.sh (make deps does)`);

const streams = {
  two: { name: 'two-tracks', key: `two_tracks_key_${'1'.repeat(20)}`, spec: { retention: { keepAfterEnd: true } } },
  three: { name: 'three-tracks', key: `three_tracks_key_${'2'.repeat(20)}`, spec: { retention: { keepAfterEnd: true } } },
  malformed: { name: 'malformed-tracks', key: `malformed_tracks_key_${'3'.repeat(20)}`, spec: { retention: { keepAfterEnd: true } } },
  nine: { name: 'nine-tracks', key: `nine_tracks_key_${'4'.repeat(20)}` },
} satisfies Record<string, TestStream>;

const s3 = await startS3Server();
const recorder = await startS3Recorder(s3.endpoint, s3.bucket);
const dir = mkdtempSync(join(tmpdir(), 'tteok-multitrack-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, Object.values(streams));
const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_S3_ENDPOINT: recorder.endpoint,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_DELETE_DELAY_SECONDS: '3600',
  TTEOK_RECONNECT_GRACE_SECONDS: '2',
});

t.teardown(async () => {
  await stopAll();
  await recorder.close();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

const FPS = 15;
const SECONDS = 5;
const key = (s: TestStream, file: string) => `default/${s.name}/${file}`;
const url = (s: TestStream, file: string) => `${s3.endpoint}/${s3.bucket}/${key(s, file)}`;

async function text(s: TestStream, file: string): Promise<string | undefined> {
  return (await getObject(s3.client, s3.bucket, key(s, file)))?.body.toString('utf8');
}

/**
 * ffmpeg 9 publishing one test pattern as one video track per size (track 0
 * the first), x264 with the same keyframe interval on every track, and AAC.
 */
function publishTracks(s: TestStream, sizes: string[]) {
  const args = ['-hide_banner', '-nostats', '-loglevel', 'warning', '-re', '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=${FPS}`];
  args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(SECONDS));
  for (const _ of sizes) args.push('-map', '0:v');
  args.push('-map', '1:a');
  // Each track half the bit rate of the one before: the ladder lists them highest first.
  sizes.forEach((size, i) => args.push(`-filter:v:${i}`, `scale=${size.replace('x', ':')}`, `-b:v:${i}`, `${Math.round(400 / 2 ** i)}k`));
  args.push('-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', String(FPS), '-keyint_min', String(FPS), '-sc_threshold', '0');
  args.push('-c:a', 'aac', '-b:a', '64k', '-f', 'flv', ingest.rtmpUrl(s.key));
  return spawnManaged(`ffmpeg9-${s.name}`, FFMPEG9, args);
}

/** Every playlist PUT of the stream, checked when it began: each object it names had been stored (PUT finished, 200) before. */
function playlistPutsNamingUnstored(s: TestStream): string[] {
  const prefix = `default/${s.name}/`;
  const stored = new Map<string, number>();
  for (const r of recorder.requests)
    if (r.method === 'PUT' && r.status === 200 && r.key.startsWith(prefix)) stored.set(r.key, Math.min(stored.get(r.key) ?? Infinity, r.finishedAt));
  const problems: string[] = [];
  for (const put of recorder.puts((k) => k.startsWith(prefix) && k.endsWith('.m3u8'))) {
    const body = put.body ?? '';
    const names = isMultivariant(body) ? parseMultivariantPlaylist(body).map((v) => v.uri) : parseMediaPlaylist(body).uris;
    for (const name of names) {
      const storedAt = stored.get(prefix + name);
      if (storedAt === undefined || storedAt > put.startedAt) problems.push(`${put.key} named ${name} before it was stored`);
    }
  }
  return problems;
}

interface Probed {
  streams: Array<{ codec_type: string; codec_name: string; width?: number; height?: number; nb_read_frames?: string }>;
}

async function checkLadder(t: Test, s: TestStream, sizes: string[]): Promise<void> {
  const pub = publishTracks(s, sizes);
  t.equal((await pub.exited).code, 0, `ffmpeg 9 published ${sizes.length} video tracks`);
  const ended = await waitFor(
    `${s.name}: the source's playlist ends`,
    async () => {
      const p = await text(s, 'source.m3u8');
      return p !== undefined && parseMediaPlaylist(p).ended ? parseMediaPlaylist(p) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const index = (await text(s, 'index.m3u8'))!;
  t.ok(isMultivariant(index), 'index.m3u8 in the bucket is a multivariant playlist');
  const variants = parseMultivariantPlaylist(index);
  const names = sizes.map((_, i) => (i === 0 ? 'source' : `track${i}`));
  t.same(
    variants.map((v) => v.name),
    names,
    'one rendition per video track: track 0 is source, track N is trackN (highest bandwidth after it)',
  );
  t.match(await text(s, 'source.m3u8'), /#EXT-X-PLAYLIST-TYPE:VOD/, "a kept run's source playlist is a VOD");
  t.ok(ended.segments.length >= SECONDS - 1, `source segments: ${ended.segments.length}`);

  for (const [i, v] of variants.entries()) {
    const list: ParsedMediaPlaylist = parseMediaPlaylist((await text(s, v.uri))!);
    t.ok(list.ended, `${v.name}: its playlist is ended`);
    t.match(await text(s, v.uri), /#EXT-X-PLAYLIST-TYPE:VOD/, `${v.name}: the kept run's VOD has this rendition`);
    t.same(
      list.segments.map((x) => [x.sequence, x.duration, x.discontinuity, x.gap ?? false]),
      ended.segments.map((x) => [x.sequence, x.duration, x.discontinuity, false]),
      `${v.name}: cut at the source's keyframes: the same sequence numbers and durations, no gap`,
    );
    let missing = 0;
    for (const uri of list.uris) if (!(await headObject(s3.client, s3.bucket, key(s, uri)))) missing++;
    t.equal(missing, 0, `${v.name}: every object its playlist names is stored`);

    const probed = JSON.parse(
      (await run('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', url(s, v.uri)], { maxBuffer: 16 * 1024 * 1024 })).stdout,
    ) as Probed;
    const video = probed.streams.find((x) => x.codec_type === 'video')!;
    const [w, h] = sizes[i]!.split('x').map(Number);
    t.same([video.codec_name, video.width, video.height], ['h264', w, h], `${v.name}: ffprobe decodes it over HTTP at the size it was published at`);
    t.ok(Number(video.nb_read_frames) >= (SECONDS - 1) * FPS, `${v.name}: ${video.nb_read_frames} frames decode`);
    t.ok(
      probed.streams.some((x) => x.codec_type === 'audio' && x.codec_name === 'aac'),
      `${v.name}: audio track 0 is muxed in`,
    );
    const decode = await run('ffmpeg', ['-v', 'error', '-i', url(s, v.uri), '-f', 'null', '-']);
    t.equal(decode.stderr.trim(), '', `${v.name}: ffmpeg decodes every segment with no error`);
    await checkAttributes(t, s, v, list, { width: w!, height: h! });
  }
  t.same(playlistPutsNamingUnstored(s), [], 'no playlist PUT (multivariant or media) named an object that was not stored yet');
}

/** The multivariant playlist's attributes against the stored media. */
async function checkAttributes(t: Test, s: TestStream, v: Variant, list: ParsedMediaPlaylist, size: { width: number; height: number }): Promise<void> {
  t.same(v.resolution, size, `${v.name}: RESOLUTION is the published picture size`);
  t.equal(v.frameRate, FPS, `${v.name}: FRAME-RATE`);
  t.match(v.codecs, [/^avc1\.[0-9a-f]{6}$/, 'mp4a.40.2'], `${v.name}: CODECS names H.264 and AAC-LC`);
  const init = (await getObject(s3.client, s3.bucket, key(s, list.initUris[0]!)))!.body;
  const avcC = init.indexOf('avcC', 0, 'latin1');
  const profile = init.subarray(avcC + 5, avcC + 8).toString('hex');
  t.equal(v.codecs[0], `avc1.${profile}`, `${v.name}: the avc1 string is the stored avcC's profile, constraints and level`);
  const rates: number[] = [];
  let bits = 0;
  let seconds = 0;
  for (const segment of list.segments) {
    const head = await headObject(s3.client, s3.bucket, key(s, segment.uri));
    const bytes = head?.size ?? 0;
    // The run's last segment may be a sliver: too short for a rate.
    if (segment.duration >= 0.5) rates.push((bytes * 8) / segment.duration);
    bits += bytes * 8;
    seconds += segment.duration;
  }
  const peak = Math.max(...rates);
  const mean = bits / seconds;
  // Players read it once, so it is rewritten only when a rate moves by a tenth.
  t.ok(v.bandwidth <= peak * 1.01 && v.bandwidth >= peak / 1.1, `${v.name}: BANDWIDTH ${v.bandwidth} is the peak segment rate (${Math.round(peak)})`);
  t.ok(Math.abs(v.averageBandwidth! - mean) <= mean * 0.15, `${v.name}: AVERAGE-BANDWIDTH ${v.averageBandwidth} is the mean rate (${Math.round(mean)})`);
}

t.test('ffmpeg 9 publishing two video tracks: a ladder of two renditions in the bucket', async (t) => {
  await checkLadder(t, streams.two, ['426x240', '256x144']);
});

t.test('ffmpeg 9 publishing three video tracks: a ladder of three renditions in the bucket', async (t) => {
  await checkLadder(t, streams.three, ['640x360', '426x240', '256x144']);
  const metrics = await ingest.metrics();
  t.notMatch(metrics, /^tteok_ingest_multitrack_misaligned_segments_total\{/m, 'no segment misaligned: every track has the same keyframes');
  t.ok(metricValue(metrics, 'tteok_ingest_rendition_segments_total', 'rendition="track2",outcome="listed"') >= SECONDS - 1, 'track2 segments listed, counted');
});

/** HEVC + AAC from ffmpeg 9 (one track, a second of media), with a multitrack message for track `trackId` built around `payload`. */
const hevc = fixtureTags('hevc-aac.flv');
const hvcC = hevc.find((tag) => tag.type === 9 && (tag.body[0]! & 0x0f) === 0)!.body.subarray(5);
/** An Enhanced RTMP v2 multitrack video body carrying one track (OneTrack): frame type, packet type, track id, payload. */
const oneTrack = (frameType: number, packetType: number, trackId: number, payload: Buffer) =>
  Buffer.concat([Buffer.from([0x80 | (frameType << 4) | 6, packetType]), Buffer.from('hvc1', 'latin1'), Buffer.from([trackId]), payload]);

/** Sends the fixture's tags at their own pace, `extra` right after the video sequence header. */
async function sendFixture(conn: Awaited<ReturnType<typeof openPublish>>, extra: Buffer[]): Promise<void> {
  const started = performance.now();
  let sentExtra = false;
  for (const tag of hevc) {
    const wait = tag.timestampMs - (performance.now() - started);
    if (wait > 0) await sleep(wait);
    await sendAndDrain(conn, mediaMessage(tag.type, tag.timestampMs, tag.body));
    if (!sentExtra && tag.type === 9) {
      sentExtra = true;
      for (const body of extra) await sendAndDrain(conn, mediaMessage(9, tag.timestampMs, body));
    }
  }
}

t.test('malformed tracks over RTMP change nothing for the source: a huge configuration on track 1, frames for a track 3 that never sent one', async (t) => {
  const s = streams.malformed;
  const conn = await openPublish(ingest.rtmpPort, s.key);
  const huge = oneTrack(1, 0, 1, Buffer.concat([hvcC, Buffer.alloc(70 * 1024, 0xff)]));
  const framesOnly = oneTrack(1, 3, 3, Buffer.from([0, 0, 0, 2, 0x26, 0x01]));
  await sendFixture(conn, [huge, framesOnly]);
  await sendAndDrain(conn, mediaMessage(9, 1200, framesOnly));
  t.notMatch(receivedText(conn), /NetStream\.Publish\.(Rejected|Failed)/, 'the publish goes on');
  const line = await ingest.proc.waitForLine(/multitrack publish: video track 1 cannot be packaged/, 10_000);
  t.match(line, /at most 64 KiB/, 'the ingest says why track 1 is closed');
  conn.socket.destroy();
  const ended = await waitFor(
    'the run ends after the grace',
    async () => {
      const p = await text(s, 'index.m3u8');
      return p !== undefined && parseMediaPlaylist(p).ended ? p : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  t.notOk(isMultivariant(ended), 'no ladder: index.m3u8 is the media playlist, as for a one-track publish');
  t.ok(parseMediaPlaylist(ended).segments.length >= 1, 'the source is stored');
  const keys = await listKeys(s3.client, s3.bucket, `default/${s.name}/`);
  t.notOk(
    keys.some((k) => /track\d|source\.m3u8/.test(k)),
    `nothing of another track is stored (${keys.length} objects)`,
  );
});

t.test('a ninth video track is refused in RTMP, with a sentence the streamer can act on', async (t) => {
  const s = streams.nine;
  const conn = await openPublish(ingest.rtmpPort, s.key);
  await sendFixture(conn, [oneTrack(1, 0, 8, hvcC)]);
  await waitFor('the refusal', () => /NetStream\.Publish\.Rejected/.test(receivedText(conn)) || undefined, { timeoutMs: 10_000, intervalMs: 20 });
  t.match(receivedText(conn), /Multitrack publish with video track 8: at most 8 video tracks \(ids 0 to 7\) are accepted; send fewer/);
  conn.socket.destroy();
});
