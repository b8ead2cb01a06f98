// LL-HLS parts (issue 20): real FLVs (x264 with and without B-frames, with
// and without AAC, audio alone) go through the Fragmenter with parts on, and
// what comes out must hold together: a segment is exactly its parts back to
// back, no part is longer than the part target, a part flagged independent
// decodes with its init segment alone, and the segments play as they do
// without parts.
import { execFile } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAudioSpecificConfig } from '../../../ingest/media/aac.ts';
import { parseAudioTag, parseVideoTag } from '../../../ingest/media/flv-tag.ts';
import { parseAvcDecoderConfigurationRecord } from '../../../ingest/media/h264.ts';
import { Fragmenter, type DropReason, type PartOutput, type SegmentOutput } from '../../../ingest/packager/fragmenter.ts';
import { MediaPlaylist } from '../../../common/media-playlist.ts';
import { encodeFlv, ffmpeg, ffprobe, tempDir, type ClipOptions } from '../../fixtures/media.ts';

const run = promisify(execFile);
const PART_SECONDS = 0.333;
const SEGMENT_SECONDS = 2;

interface Packaged {
  inits: Uint8Array[];
  /** Parts as handed over, and the segment they belong to (the count of segments before them). */
  parts: Array<PartOutput & { segment: number }>;
  segments: SegmentOutput[];
  drops: DropReason[];
  errors: unknown[];
  videoFrames: number;
  audioFrames: number;
}

/** Feeds the FLV's tags to a fragmenter with parts on, as the publish session does. */
async function packageFlv(path: string, options: { partSink?: boolean } = {}): Promise<Packaged> {
  const out: Packaged = { inits: [], parts: [], segments: [], drops: [], errors: [], videoFrames: 0, audioFrames: 0 };
  const fragmenter = new Fragmenter(
    SEGMENT_SECONDS,
    {
      onInit: (init) => out.inits.push(init),
      // Without it, as a multitrack rendition's sink: parts are cut, nobody takes them, segments still come.
      ...(options.partSink === false ? {} : { onPart: (part: PartOutput) => out.parts.push({ ...part, segment: out.segments.length }) }),
      onSegment: (segment) => out.segments.push(segment),
      onDroppedPacket: (reason) => out.drops.push(reason),
      onMuxerError: (error) => out.errors.push(error),
    },
    undefined,
    undefined,
    PART_SECONDS,
  );
  for (const tag of readFlvTags(path)) {
    if (tag.type === 9) {
      const v = parseVideoTag(tag.body);
      if (v.kind === 'video-config') fragmenter.setVideoConfig(parseAvcDecoderConfigurationRecord(v.record));
      else if (v.kind === 'video-frame') {
        out.videoFrames++;
        fragmenter.video(tag.timestampMs, v.compositionOffsetMs, v.keyframe, v.data, Date.now());
      }
    } else if (tag.type === 8) {
      const a = parseAudioTag(tag.body);
      if (a.kind === 'audio-config') fragmenter.setAudioConfig(parseAudioSpecificConfig(a.config));
      else if (a.kind === 'audio-frame') {
        out.audioFrames++;
        fragmenter.audio(tag.timestampMs, a.data);
      }
    }
  }
  await fragmenter.close();
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

interface Probe {
  streams: Array<{ codec_type: string; nb_read_frames?: string; nb_read_packets?: string }>;
}

async function countFrames(path: string, kind: 'v' | 'a'): Promise<number> {
  const probe = await ffprobe<Probe>(
    kind === 'v'
      ? ['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_type,nb_read_frames', path]
      : ['-count_packets', '-select_streams', 'a:0', '-show_entries', 'stream=codec_type,nb_read_packets', path],
  );
  return Number(probe.streams[0]?.nb_read_frames ?? probe.streams[0]?.nb_read_packets ?? 0);
}

const dir = tempDir(t);

const cases: Array<{ name: string; clip: ClipOptions; video: boolean; audio: boolean }> = [
  { name: 'H.264 with 2 B-frames and AAC', clip: { seconds: 6 }, video: true, audio: true },
  {
    name: 'H.264 with 3 B-frames (pyramid) and AAC',
    clip: { seconds: 6, video: ['-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-b-pyramid', 'normal', '-g', '30', '-sc_threshold', '0'] },
    video: true,
    audio: true,
  },
  {
    name: 'H.264 without B-frames, no audio',
    clip: { seconds: 6, audio: false, video: ['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '60', '-sc_threshold', '0'] },
    video: true,
    audio: false,
  },
  { name: 'AAC alone', clip: { seconds: 6, video: false }, video: false, audio: true },
];

for (const c of cases) {
  t.test(`parts: ${c.name}`, async (t) => {
    const folder = join(dir, c.name.replace(/[^a-z0-9]+/gi, '-'));
    mkdirSync(folder, { recursive: true });
    const packaged = await packageFlv(await encodeFlv(folder, 'clip.flv', c.clip));
    t.same(packaged.errors, [], 'no muxer error');
    t.same(packaged.drops, [], 'no packet dropped');
    t.equal(packaged.inits.length, 1, 'one init segment');
    t.ok(packaged.segments.length >= 3, `${packaged.segments.length} segments`);
    const init = packaged.inits[0]!;

    for (const [i, segment] of packaged.segments.entries()) {
      const parts = packaged.parts.filter((p) => p.segment === i);
      t.ok(parts.length >= 1, `segment ${i} has ${parts.length} parts`);
      t.same(
        parts.map((p) => p.index),
        parts.map((_, k) => k),
        `segment ${i}: parts numbered from 0`,
      );
      t.ok(Buffer.from(concat(parts.map((p) => p.data))).equals(Buffer.from(segment.data)), `segment ${i} is its parts back to back`);
      t.equal(parts[0]?.independent, true, `segment ${i}'s first part is independent`);
      const partTotal = parts.reduce((n, p) => n + p.duration, 0);
      // The last segment, cut by the end of the stream, also carries the audio past the last frame.
      if (c.video && i < packaged.segments.length - 1)
        t.ok(Math.abs(partTotal - segment.duration) < 0.05, `segment ${i}: parts last ${partTotal.toFixed(3)} s, the segment ${segment.duration.toFixed(3)} s`);
    }
    t.equal(packaged.parts.filter((p) => p.segment >= packaged.segments.length).length, 0, 'no part is left over after the last segment');

    // As the playlist renders it (three decimals), against PART-TARGET.
    const long = packaged.parts.filter((p) => Number(p.duration.toFixed(3)) > PART_SECONDS);
    t.same(
      long.map((p) => `${p.segment}.${p.index}: ${p.duration.toFixed(4)} s`),
      [],
      `no part is longer than the part target (${PART_SECONDS} s)`,
    );
    const full = packaged.parts.filter((p, i) => packaged.parts[i + 1]?.segment === p.segment);
    t.ok(
      full.every((p) => p.duration >= 0.5 * PART_SECONDS),
      `parts other than a segment's last are at least half the target (shortest ${Math.min(...full.map((p) => p.duration)).toFixed(3)} s)`,
    );
    if (!c.video)
      t.ok(
        packaged.parts.every((p) => p.independent),
        'every audio-only part is independent',
      );
    else
      t.ok(
        packaged.parts.some((p) => !p.independent),
        'parts inside a GOP are not flagged independent',
      );

    // Each independent part decodes with its init segment alone, every frame of it.
    const independent = packaged.parts.filter((p) => p.independent);
    for (const [n, part] of independent.entries()) {
      const path = join(folder, `independent-${n}.mp4`);
      writeFileSync(path, concat([init, part.data]));
      // ffprobe decodes every frame and reports decoder errors; ffmpeg would also
      // re-time frames for its output, whose complaints about RTMP's whole
      // milliseconds are not the part's.
      const { stdout, stderr } = await run('ffprobe', [
        '-v',
        'error',
        '-count_frames',
        '-show_entries',
        'stream=codec_type,nb_read_frames',
        '-of',
        'json',
        path,
      ]);
      t.equal(stderr.trim(), '', `independent part ${part.segment}.${part.index} decodes without an error`);
      const streams = (JSON.parse(stdout) as Probe).streams;
      for (const stream of streams) t.ok(Number(stream.nb_read_frames) > 0, `independent part ${part.segment}.${part.index}: its ${stream.codec_type} decodes`);
    }

    // The segments (each its parts) play as a playlist, every frame.
    const playlist = new MediaPlaylist(SEGMENT_SECONDS, 0);
    writeFileSync(join(folder, 'init.mp4'), init);
    for (const [i, segment] of packaged.segments.entries()) {
      writeFileSync(join(folder, `${i}.m4s`), segment.data);
      playlist.append({ uri: `${i}.m4s`, duration: segment.duration, programDateTime: segment.arrivedAt, initUri: 'init.mp4', discontinuity: false });
    }
    playlist.ended = true;
    writeFileSync(join(folder, 'all.m3u8'), playlist.render());
    t.equal((await ffmpeg(['-i', join(folder, 'all.m3u8'), '-f', 'null', '-'])).trim(), '', 'ffmpeg plays the segments without an error');
    if (c.video) {
      const frames = await countFrames(join(folder, 'all.m3u8'), 'v');
      t.ok(Math.abs(frames - packaged.videoFrames) <= 2, `${frames} video frames decoded of ${packaged.videoFrames}`);
    }
    if (c.audio) {
      const frames = await countFrames(join(folder, 'all.m3u8'), 'a');
      t.ok(Math.abs(frames - packaged.audioFrames) <= 2, `${frames} audio packets read of ${packaged.audioFrames}`);
    }
  });
}

t.test('a sink that takes no parts (a multitrack rendition) gets the same segments, byte for byte', async (t) => {
  const folder = join(dir, 'no-part-sink');
  mkdirSync(folder, { recursive: true });
  const flv = await encodeFlv(folder, 'clip.flv', { seconds: 6 });
  const withParts = await packageFlv(flv);
  const without = await packageFlv(flv, { partSink: false });
  t.ok(withParts.segments.length >= 3, `${withParts.segments.length} segments with a part sink`);
  t.equal(without.segments.length, withParts.segments.length, 'as many without one');
  t.same(
    without.segments.map((s) => Buffer.from(s.data).toString('base64')),
    withParts.segments.map((s) => Buffer.from(s.data).toString('base64')),
    'the same bytes',
  );
});
