// HEVC, AV1, Opus, audio-only and multitrack publishes through the publish
// session and the fragmenter, from the RTMP message bodies ffmpeg 9 sends
// (the committed fixtures) and Debian's ffmpeg (AAC-only): what comes out
// must be CMAF HLS that ffmpeg decodes without an error, with the right
// sample entries, cut at the target duration.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseInitSegment } from '../../../ingest/media/fmp4.ts';
import { Fragmenter, type DropReason, type SegmentOutput } from '../../../ingest/packager/fragmenter.ts';
import { MediaPlaylist } from '../../../common/media-playlist.ts';
import { PublishSession } from '../../../ingest/packager/publish-session.ts';
import { UnsupportedMediaError } from '../../../ingest/publish-errors.ts';
import { encodeFlv, ffmpeg, ffprobe, tempDir } from '../../fixtures/media.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));

interface Packaged {
  inits: Array<{ init: Uint8Array; generation: number }>;
  segments: SegmentOutput[];
  drops: DropReason[];
  errors: unknown[];
  ignoredTracks: string[];
}

/** Feeds every tag of an FLV file to a publish session, as the RTMP server does. */
async function publishFile(path: string, segmentSeconds: number): Promise<Packaged> {
  const out: Packaged = { inits: [], segments: [], drops: [], errors: [], ignoredTracks: [] };
  const fragmenter = new Fragmenter(segmentSeconds, {
    onInit: (init, generation) => out.inits.push({ init, generation }),
    onSegment: (segment) => out.segments.push(segment),
    onDroppedPacket: (reason) => out.drops.push(reason),
    onMuxerError: (error) => out.errors.push(error),
  });
  const session = new PublishSession('test', fragmenter, { onIgnoredTrack: (kind, id) => out.ignoredTracks.push(`${kind} ${id}`) });
  for (const tag of readFlvTags(path)) {
    if (tag.type === 9) session.video(tag.timestampMs, tag.body, Date.now());
    else if (tag.type === 8) session.audio(tag.timestampMs, tag.body);
  }
  await session.close();
  return out;
}

function writeHls(dir: string, packaged: Packaged, segmentSeconds: number): string {
  mkdirSync(dir, { recursive: true });
  const playlist = new MediaPlaylist(segmentSeconds, 0);
  for (const { init, generation } of packaged.inits) writeFileSync(join(dir, `init-${generation}.mp4`), init);
  packaged.segments.forEach((segment, i) => {
    writeFileSync(join(dir, `${i}.m4s`), segment.data);
    playlist.append({
      uri: `${i}.m4s`,
      duration: segment.duration,
      programDateTime: segment.arrivedAt,
      initUri: `init-${segment.initGeneration}.mp4`,
      discontinuity: false,
    });
  });
  playlist.ended = true;
  writeFileSync(join(dir, 'index.m3u8'), playlist.render());
  return join(dir, 'index.m3u8');
}

interface Probe {
  streams: Array<{
    codec_type: string;
    codec_name: string;
    codec_tag_string: string;
    width?: number;
    height?: number;
    channels?: number;
    sample_rate?: string;
    nb_read_frames?: string;
  }>;
}

/** ffprobe's view of the playlist (frames counted) and ffmpeg's complaints decoding all of it. */
async function play(playlist: string): Promise<{ streams: Probe['streams']; errors: string }> {
  const [probe, errors] = await Promise.all([
    ffprobe<Probe>([
      '-count_frames',
      '-show_entries',
      'stream=codec_type,codec_name,codec_tag_string,width,height,channels,sample_rate,nb_read_frames',
      playlist,
    ]),
    ffmpeg(['-i', playlist, '-f', 'null', '-']),
  ]);
  // ffprobe lists each stream once per program and once on its own.
  const seen = new Set<string>();
  const streams = probe.streams.filter((s) => !seen.has(s.codec_type) && seen.add(s.codec_type));
  return { streams, errors: errors.trim() };
}

const sampleEntries = (init: Uint8Array) => ['avc1', 'hvc1', 'av01', 'mp4a', 'Opus'].filter((fourcc) => Buffer.from(init).includes(fourcc, 0, 'latin1'));

const dir = tempDir(t);

t.test('HEVC + AAC: hvc1 sample entry, cut at keyframes, decodes', async (t) => {
  const packaged = await publishFile(fixture('hevc-aac.flv'), 0.3);
  t.same(packaged.errors, [], 'no muxer error');
  t.same(packaged.drops, [], 'no packet dropped');
  t.equal(packaged.inits.length, 1);
  t.same(sampleEntries(packaged.inits[0]!.init), ['hvc1', 'mp4a'], 'hvc1 and mp4a sample entries');
  t.ok(packaged.segments.length >= 3, `a segment per GOP (${packaged.segments.map((s) => s.duration.toFixed(2)).join(', ')})`);
  const { streams, errors } = await play(writeHls(join(dir, 'hevc'), packaged, 0.3));
  t.equal(errors, '', 'ffmpeg decodes every segment with no error');
  t.match(streams, [
    { codec_type: 'video', codec_name: 'hevc', codec_tag_string: 'hvc1', width: 160, height: 90, nb_read_frames: '15' },
    { codec_type: 'audio', codec_name: 'aac', channels: 2, sample_rate: '48000' },
  ]);
});

t.test('HEVC open GOPs: a segment lasts from its keyframe to the next, leading pictures included', async (t) => {
  // x265 makes open GOPs: each keyframe (CRA) after the first has a leading
  // picture, decoded after it but shown before it. The muxer's durations for a
  // fragment then start at that picture, overlapping the previous fragment,
  // and the playlist would claim more time than the stream has.
  const videoOnly = join(dir, 'hevc-video.flv');
  const flv = readFileSync(fixture('hevc-aac.flv'));
  // The FLV with its audio tags removed (header flags left as they are).
  const parts: Buffer[] = [flv.subarray(0, 13)];
  for (let pos = 13; pos + 11 <= flv.length; ) {
    const size = flv.readUIntBE(pos + 1, 3);
    if (flv[pos] !== 8) parts.push(flv.subarray(pos, pos + 11 + size + 4));
    pos += 11 + size + 4;
  }
  writeFileSync(videoOnly, Buffer.concat(parts));
  const packaged = await publishFile(videoOnly, 0.3);
  t.same(packaged.errors, []);
  const durations = packaged.segments.map((s) => s.duration);
  t.ok(durations.length >= 3, `${durations.length} segments`);
  // Keyframes at frames 0, 4 and 9 (x265 moved one): GOPs of 4 and 5 frames at 15 fps.
  t.ok(
    Math.abs(durations[0]! - 4 / 15) < 0.005 || Math.abs(durations[0]! - 5 / 15) < 0.005,
    `the first GOP lasts whole frames (${durations[0]!.toFixed(3)} s)`,
  );
  t.ok(Math.abs(durations[1]! - 5 / 15) < 0.005, `the second GOP lasts its 5 frames, 0.333 s, not 0.4 (${durations[1]!.toFixed(3)} s)`);
});

t.test('AV1 + Opus: av01 and Opus sample entries, decodes', async (t) => {
  const packaged = await publishFile(fixture('av1-opus.flv'), 0.3);
  t.same(packaged.errors, [], 'no muxer error');
  t.same(packaged.drops, ['before_first_keyframe'], 'only the Opus frame sent 7 ms before the first keyframe is dropped');
  t.same(sampleEntries(packaged.inits[0]!.init), ['av01', 'Opus'], 'av01 and Opus sample entries');
  t.ok(packaged.segments.length >= 3, `a segment per GOP (${packaged.segments.map((s) => s.duration.toFixed(2)).join(', ')})`);
  const { streams, errors } = await play(writeHls(join(dir, 'av1'), packaged, 0.3));
  t.equal(errors, '', 'ffmpeg decodes every segment with no error');
  t.match(streams, [
    { codec_type: 'video', codec_name: 'av1', width: 160, height: 90, nb_read_frames: '15' },
    { codec_type: 'audio', codec_name: 'opus', channels: 2, sample_rate: '48000' },
  ]);
});

t.test('audio-only Opus is packaged and cut on the target duration', async (t) => {
  const packaged = await publishFile(fixture('opus-only.flv'), 1);
  t.same(packaged.errors, []);
  t.same(packaged.drops, [], 'no packet dropped');
  t.equal(packaged.inits.length, 1);
  t.same(
    [...parseInitSegment(packaged.inits[0]!.init).values()].map((tr) => tr.kind),
    ['audio'],
    'one audio track, no video',
  );
  t.same(sampleEntries(packaged.inits[0]!.init), ['Opus']);
  const durations = packaged.segments.map((s) => s.duration);
  // The encoder's padding makes the clip a frame or two longer than 3 s: a short last segment.
  t.equal(durations.filter((d) => d >= 0.98 && d <= 1.02).length, 3, `three 1 s segments (${durations.map((d) => d.toFixed(2)).join(', ')})`);
  durations.slice(0, -1).forEach((d) => t.ok(d >= 0.98 && d <= 1.02, `a segment lasts ${d.toFixed(3)} s, the 1 s target`));
  const total = durations.reduce((a, b) => a + b, 0);
  t.ok(Math.abs(total - 3) < 0.05, `they add up to 3 s (${total.toFixed(3)})`);
  t.ok(
    packaged.segments.every((s, i) => i === 0 || s.arrivedAt >= packaged.segments[i - 1]!.arrivedAt),
    'arrival times do not go back',
  );
  const { streams, errors } = await play(writeHls(join(dir, 'opus'), packaged, 1));
  t.equal(errors, '', 'ffmpeg decodes every segment with no error');
  t.match(streams, [{ codec_type: 'audio', codec_name: 'opus', channels: 1 }]);
  t.equal(streams.length, 1, 'audio only');
});

t.test('audio-only AAC (a radio show from Debian ffmpeg) is packaged and cut on the target duration', async (t) => {
  const source = await encodeFlv(dir, 'aac-only.flv', { seconds: 4, video: false, sampleRate: 48000 });
  const packaged = await publishFile(source, 1);
  t.same(packaged.errors, []);
  t.same(packaged.drops, [], 'no packet dropped');
  const durations = packaged.segments.map((s) => s.duration);
  t.equal(durations.filter((d) => d >= 0.98 && d <= 1.03).length, 4, `four 1 s segments (${durations.map((d) => d.toFixed(2)).join(', ')})`);
  durations.slice(0, -1).forEach((d) => t.ok(d >= 0.98 && d <= 1.03, `a segment lasts ${d.toFixed(3)} s, the 1 s target`));
  const { streams, errors } = await play(writeHls(join(dir, 'aac'), packaged, 1));
  t.equal(errors, '', 'ffmpeg decodes every segment with no error');
  t.match(streams, [{ codec_type: 'audio', codec_name: 'aac', channels: 2, sample_rate: '48000' }]);
  t.equal(streams.length, 1, 'audio only');
});

t.test('video-only H.264 is packaged with no audio track', async (t) => {
  const source = await encodeFlv(dir, 'video-only.flv', { seconds: 2, audio: false, rate: 15, video: ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15'] });
  const packaged = await publishFile(source, 1);
  t.same(packaged.errors, []);
  t.same(packaged.drops, []);
  t.same(sampleEntries(packaged.inits[0]!.init), ['avc1']);
  t.equal(packaged.segments.length, 2);
  const { streams, errors } = await play(writeHls(join(dir, 'video-only'), packaged, 1));
  t.equal(errors, '');
  t.match(streams, [{ codec_type: 'video', codec_name: 'h264', nb_read_frames: '30' }]);
  t.equal(streams.length, 1, 'video only');
});

t.test('multitrack: the default track is packaged, the other is reported as ignored once', async (t) => {
  const packaged = await publishFile(fixture('multitrack.flv'), 1);
  t.same(packaged.errors, []);
  t.same(packaged.ignoredTracks, ['video 1'], 'video track 1 is reported, once');
  const { streams, errors } = await play(writeHls(join(dir, 'multitrack'), packaged, 1));
  t.equal(errors, '');
  t.match(streams, [
    { codec_type: 'video', codec_name: 'h264', width: 160, height: 90, nb_read_frames: '15' },
    { codec_type: 'audio', codec_name: 'aac' },
  ]);
});

t.test('video that starts after an audio-only stream began gets a new init segment with both tracks', async (t) => {
  const tags = readFlvTags(fixture('hevc-aac.flv'));
  const videoConfigAt = tags.findIndex((tag) => tag.type === 9);
  // The video sequence start arrives after 10 audio frames.
  const audioFramesBefore = tags.filter((tag) => tag.type === 8).slice(0, 11);
  const reordered = [...audioFramesBefore, ...tags.filter((tag) => !audioFramesBefore.includes(tag))];
  t.ok(videoConfigAt >= 0);
  const out: Packaged = { inits: [], segments: [], drops: [], errors: [], ignoredTracks: [] };
  const fragmenter = new Fragmenter(0.3, {
    onInit: (init, generation) => out.inits.push({ init, generation }),
    onSegment: (segment) => out.segments.push(segment),
    onDroppedPacket: (reason) => out.drops.push(reason),
    onMuxerError: (error) => out.errors.push(error),
  });
  const session = new PublishSession('late-video', fragmenter);
  for (const tag of reordered) {
    if (tag.type === 9) session.video(tag.timestampMs, tag.body, Date.now());
    else if (tag.type === 8) session.audio(tag.timestampMs, tag.body);
  }
  await session.close();
  t.same(out.errors, []);
  t.same(
    out.inits.map((i) => sampleEntries(i.init)),
    [['mp4a'], ['hvc1', 'mp4a']],
    'audio-only first, then video and audio',
  );
  t.ok(
    out.segments.some((s) => s.initGeneration === 2),
    'segments with video follow',
  );
});

t.test('audio-only: a timeline that jumps back starts over after a discontinuity; a single late frame is dropped', async (t) => {
  const tags = readFlvTags(fixture('opus-only.flv')).filter((tag) => tag.type === 8);
  const resetAt = tags.findIndex((tag) => tag.timestampMs >= 1500);
  // An encoder restarted without reconnecting: from 1.5 s on, time starts again at 0.
  const shifted = tags.map((tag, i) => (i >= resetAt ? { ...tag, timestampMs: tag.timestampMs - tags[resetAt]!.timestampMs } : tag));
  // And one frame 200 ms late, before the reset.
  shifted.splice(20, 0, { ...shifted[19]!, timestampMs: shifted[19]!.timestampMs - 200 });
  const out: Packaged = { inits: [], segments: [], drops: [], errors: [], ignoredTracks: [] };
  const session = new PublishSession(
    'reset',
    new Fragmenter(1, {
      onInit: (init, generation) => out.inits.push({ init, generation }),
      onSegment: (segment) => out.segments.push(segment),
      onDroppedPacket: (reason) => out.drops.push(reason),
      onMuxerError: (error) => out.errors.push(error),
    }),
  );
  for (const tag of shifted) session.audio(tag.timestampMs, tag.body);
  await session.close();
  t.same(out.errors, []);
  t.same(out.drops, ['timestamp_regression'], 'the late frame is dropped');
  t.equal(out.inits.length, 2, 'a second init segment for the new timeline');
  const total = out.segments.reduce((a, s) => a + s.duration, 0);
  t.ok(Math.abs(total - 3) < 0.1, `nothing after the jump is lost (${total.toFixed(2)} s)`);
});

t.test('codecs still unsupported are refused with the codec and what to set in OBS', async (t) => {
  const refusal = (name: string) => {
    const session = new PublishSession('refused', new Fragmenter(1, { onInit() {}, onSegment() {}, onDroppedPacket() {}, onMuxerError() {} }));
    for (const tag of readFlvTags(fixture(name))) {
      try {
        if (tag.type === 9) session.video(tag.timestampMs, tag.body, Date.now());
        else if (tag.type === 8) session.audio(tag.timestampMs, tag.body);
      } catch (error) {
        return error;
      }
    }
    return undefined;
  };
  const vp9 = refusal('vp9-only.flv');
  t.type(vp9, UnsupportedMediaError);
  t.match((vp9 as Error).message, /VP9.*not supported.*Video Encoder to H\.264.*HEVC or AV1/);
  const mp3 = refusal('mp3-only.flv');
  t.type(mp3, UnsupportedMediaError);
  t.match((mp3 as Error).message, /MP3.*not supported.*Audio Encoder to AAC/);
});
