// FLV tag bodies (what an RTMP publisher sends): real x264/AAC output must
// classify the way ffprobe sees the same file, and codecs we cannot package
// must come back as unsupported with a name a streamer can act on.
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAudioTag, parseVideoTag, type AudioTag, type VideoTag } from '../../../ingest/media/flv-tag.ts';
import { encodeFlv, ffprobe, tempDir } from '../../fixtures/media.ts';

interface Packets {
  packets: Array<{ pts: number; dts: number; flags: string }>;
}

const dir = tempDir(t);
const [avc, sorenson, mp3] = await Promise.all([
  // 3 s at 30 fps, 1 s GOP, 2 B-frames: 3 GOPs, composition offsets on most frames.
  encodeFlv(dir, 'avc.flv', { seconds: 3 }),
  encodeFlv(dir, 'sorenson.flv', { seconds: 0.2, video: ['-c:v', 'flv1'], audio: false }),
  encodeFlv(dir, 'mp3.flv', { seconds: 0.2, video: false, audio: ['-c:a', 'libmp3lame'] }),
]);
const [videoProbe, audioProbe] = await Promise.all([
  ffprobe<Packets>(['-select_streams', 'v:0', '-show_entries', 'packet=pts,dts,flags', avc]),
  ffprobe<Packets>(['-select_streams', 'a:0', '-show_entries', 'packet=pts,dts,flags', avc]),
]);

t.test('real H.264 tags classify like ffprobe sees them', async (t) => {
  const tags = readFlvTags(avc).filter((tag) => tag.type === 9);
  const parsed = tags.map((tag) => parseVideoTag(tag.body));
  const configs = parsed.filter((v) => v.kind === 'video-config');
  const frames = parsed.filter((v): v is Extract<VideoTag, { kind: 'video-frame' }> => v.kind === 'video-frame');
  t.equal(configs.length, 1, 'one sequence header');
  t.equal(frames.length, videoProbe.packets.length, 'one frame per video packet');
  t.equal(frames.length, 90, '3 s at 30 fps');
  const keyframes = frames.filter((f) => f.keyframe).length;
  t.equal(keyframes, 3, 'one keyframe per 1 s GOP');
  t.equal(keyframes, videoProbe.packets.filter((p) => p.flags.startsWith('K')).length, 'keyframes are the packets ffprobe flags K');
  t.ok(frames[0]!.keyframe, 'the first frame is a keyframe');
  t.ok(
    frames.every((f) => f.compositionOffsetMs >= 0),
    'composition offsets are non-negative for ffmpeg output',
  );
  t.ok(
    frames.some((f) => f.compositionOffsetMs > 0),
    'B-frames give positive composition offsets',
  );
  t.same(
    frames.map((f) => f.compositionOffsetMs),
    videoProbe.packets.map((p) => p.pts - p.dts),
    'each composition offset is that packet pts - dts (ms)',
  );
  t.ok(
    frames.every((f) => f.codec === 'avc' && f.data.length > 4),
    'frames carry their NAL units',
  );
  t.ok(
    parsed.every((v) => v.kind === 'video-config' || v.kind === 'video-frame' || v.kind === 'video-end'),
    'nothing unsupported or ignored',
  );
});

t.test('real AAC tags classify like ffprobe sees them', async (t) => {
  const parsed = readFlvTags(avc)
    .filter((tag) => tag.type === 8)
    .map((tag) => parseAudioTag(tag.body));
  t.equal(parsed.filter((a) => a.kind === 'audio-config').length, 1, 'one sequence header');
  t.equal(parsed[0]!.kind, 'audio-config', 'the sequence header comes first');
  const frames = parsed.filter((a): a is Extract<AudioTag, { kind: 'audio-frame' }> => a.kind === 'audio-frame');
  t.equal(frames.length, audioProbe.packets.length, 'one frame per audio packet');
  t.ok(frames.every((f) => f.data.length > 0));
});

t.test('a signed 24-bit composition offset decodes with its sign', async (t) => {
  const frame = (b0: number, b1: number, b2: number) => parseVideoTag(Uint8Array.from([0x27, 1, b0, b1, b2, 0, 0, 0, 1, 0x41]));
  t.match(frame(0xff, 0xff, 0xce), { kind: 'video-frame', compositionOffsetMs: -50, keyframe: false });
  t.match(frame(0xff, 0xff, 0xff), { kind: 'video-frame', compositionOffsetMs: -1 });
  t.match(frame(0x80, 0x00, 0x00), { kind: 'video-frame', compositionOffsetMs: -0x800000 });
  t.match(frame(0x7f, 0xff, 0xff), { kind: 'video-frame', compositionOffsetMs: 0x7fffff });
  t.match(frame(0x00, 0x00, 0x43), { kind: 'video-frame', compositionOffsetMs: 67 });
  const key = parseVideoTag(Uint8Array.from([0x17, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x65]));
  t.match(key, { kind: 'video-frame', keyframe: true, compositionOffsetMs: -33 });
  if (key.kind === 'video-frame') t.same([...key.data], [0, 0, 0, 1, 0x65], 'the payload follows the 5-byte header');
});

t.test('sequence end and info frames', async (t) => {
  t.match(parseVideoTag(Uint8Array.from([0x17, 2, 0, 0, 0])), { kind: 'video-end' });
  t.match(parseVideoTag(Uint8Array.from([0x57, 0])), { kind: 'ignored' }, 'video info/command frame');
  t.match(parseVideoTag(new Uint8Array()), { kind: 'ignored' });
  t.match(parseAudioTag(new Uint8Array()), { kind: 'ignored' });
});

t.test('Sorenson H.263 from ffmpeg -c:v flv1 is unsupported, by name', async (t) => {
  const parsed = readFlvTags(sorenson)
    .filter((tag) => tag.type === 9)
    .map((tag) => parseVideoTag(tag.body));
  t.ok(parsed.length > 0, 'the file has video tags');
  for (const v of parsed) t.match(v, { kind: 'video-unsupported', codecName: /Sorenson/ });
});

t.test('MP3 from ffmpeg -c:a libmp3lame is unsupported, by name', async (t) => {
  const parsed = readFlvTags(mp3)
    .filter((tag) => tag.type === 8)
    .map((tag) => parseAudioTag(tag.body));
  t.ok(parsed.length > 0, 'the file has audio tags');
  for (const a of parsed) t.match(a, { kind: 'audio-unsupported', codecName: /MP3/ });
});

t.test('other legacy FLV codec ids are unsupported with a readable name', async (t) => {
  t.match(parseVideoTag(Uint8Array.from([0x14, 0, 0, 0, 0])), { kind: 'video-unsupported', codecName: /VP6/ });
  t.match(parseVideoTag(Uint8Array.from([0x1c, 0, 0, 0, 0])), { kind: 'video-unsupported', codecName: /HEVC/ });
  t.match(parseVideoTag(Uint8Array.from([0x1f, 0, 0, 0, 0])), { kind: 'video-unsupported', codecName: /15/ });
  t.match(parseAudioTag(Uint8Array.from([0xb6, 0])), { kind: 'audio-unsupported', codecName: /Speex/ });
  t.match(parseAudioTag(Uint8Array.from([0x6e, 0])), { kind: 'audio-unsupported', codecName: /Nellymoser/ });
});

t.test('enhanced RTMP headers: HEVC, AV1 and H.264 are read, others are unsupported by their FourCC', async (t) => {
  const ex = (first: number, fourcc: string) => parseVideoTag(Uint8Array.from([first, ...Buffer.from(fourcc, 'latin1'), 0, 0, 0, 0]));
  // IsExHeader | FrameType 1 (key) | PacketType 0 (sequence start), then the FourCC.
  t.match(ex(0x80 | 0x10 | 0, 'hvc1'), { kind: 'video-config', codec: 'hevc' });
  // Coded frames of an inter frame: a 3-byte composition offset, then the data.
  t.match(ex(0x80 | 0x20 | 1, 'hvc1'), { kind: 'video-frame', codec: 'hevc', keyframe: false, compositionOffsetMs: 0 });
  t.match(ex(0x90, 'av01'), { kind: 'video-config', codec: 'av1' });
  t.match(ex(0x90, 'avc1'), { kind: 'video-config', codec: 'avc' });
  t.match(ex(0x90, 'vp09'), { kind: 'video-unsupported', codecName: /VP9/ });
  t.match(ex(0x90, 'xyz1'), { kind: 'video-unsupported', codecName: /xyz1/ });
});
