// The decoder configuration records of HEVC, AV1 and Opus, and the Enhanced
// RTMP tags that carry them, as a real encoder sends them: the fixtures are
// FLV files written by ffmpeg 9 (libx265, SVT-AV1, libopus; see
// fixtures/make-codec-fixtures.sh), byte for byte what it publishes over RTMP.
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAv1CodecConfigurationRecord, parseAv1SequenceHeaderSize, withoutTemporalDelimiters } from '../../../ingest/media/av1.ts';
import { parseAudioTag, parseVideoTag, type AudioTag, type VideoTag } from '../../../ingest/media/flv-tag.ts';
import { parseHevcDecoderConfigurationRecord } from '../../../ingest/media/hevc.ts';
import { opusPacketDuration, parseOpusHead } from '../../../ingest/media/opus.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));
const videoTags = (name: string): VideoTag[] =>
  readFlvTags(fixture(name))
    .filter((tag) => tag.type === 9)
    .map((tag) => parseVideoTag(tag.body));
const audioTags = (name: string): AudioTag[] =>
  readFlvTags(fixture(name))
    .filter((tag) => tag.type === 8)
    .map((tag) => parseAudioTag(tag.body));
type Frame = Extract<VideoTag, { kind: 'video-frame' }>;

t.test('HEVC from x265 over Enhanced RTMP (hvc1): record, size after the conformance window, frames', async (t) => {
  const tags = videoTags('hevc-aac.flv');
  const configs = tags.filter((v) => v.kind === 'video-config');
  t.equal(configs.length, 1, 'one sequence start');
  t.match(configs[0], { codec: 'hevc' });
  const config = parseHevcDecoderConfigurationRecord((configs[0] as Extract<VideoTag, { kind: 'video-config' }>).record);
  // x265 codes 90 lines as 96 (8-pixel CUs) and crops 6 with the conformance window.
  t.same({ width: config.width, height: config.height }, { width: 160, height: 90 }, 'the picture size ffmpeg reports');
  t.match(config.codec, /^hvc1\.1\.6\.L30\.90$/, `Main profile, level 1 (30), progressive frame-only constraints (${config.codec})`);
  const frames = tags.filter((v): v is Frame => v.kind === 'video-frame');
  t.equal(frames.length, 15, '1 s at 15 fps');
  t.equal(frames.filter((f) => f.keyframe).length, 3, 'a keyframe every 5 frames');
  t.ok(frames[0]!.keyframe, 'the first frame is a keyframe');
  t.ok(
    frames.some((f) => f.compositionOffsetMs > 0),
    'B-frames give composition offsets',
  );
  // Length-prefixed NAL units (4-byte lengths) that add up to the frame.
  for (const f of frames) {
    let pos = 0;
    while (pos + 4 <= f.data.length) pos += 4 + new DataView(f.data.buffer, f.data.byteOffset + pos).getUint32(0);
    t.equal(pos, f.data.length, 'a frame is whole length-prefixed NAL units');
  }
  t.ok(
    tags.some((v) => v.kind === 'ignored'),
    'the colour-info metadata frame is ignored',
  );
  t.notOk(tags.some((v) => v.kind === 'video-unsupported'));
});

t.test('AV1 from SVT-AV1 over Enhanced RTMP (av01): record, sequence header size, frames', async (t) => {
  const tags = videoTags('av1-opus.flv');
  const configs = tags.filter((v): v is Extract<VideoTag, { kind: 'video-config' }> => v.kind === 'video-config');
  t.equal(configs.length, 1, 'one sequence start');
  const config = parseAv1CodecConfigurationRecord(configs[0]!.record);
  t.same({ width: config.width, height: config.height }, { width: 160, height: 90 }, 'the picture size ffmpeg reports');
  t.match(config.codec, /^av01\.0\.\d\dM\.08$/, `Main profile, 8-bit (${config.codec})`);
  const frames = tags.filter((v): v is Frame => v.kind === 'video-frame');
  t.equal(frames.length, 15, '1 s at 15 fps');
  t.equal(frames.filter((f) => f.keyframe).length, 3, 'a keyframe every 5 frames');
  t.ok(
    frames.every((f) => f.codec === 'av1' && f.compositionOffsetMs === 0),
    'AV1 frames have no composition offset',
  );
  // ffmpeg leaves the temporal delimiter in; the sample must not carry it.
  t.equal(frames[0]!.data[0], 0x12, 'the first OBU is a temporal delimiter');
  const stripped = withoutTemporalDelimiters(frames[0]!.data);
  t.equal(stripped.length, frames[0]!.data.length - 2, 'the 2-byte temporal delimiter is removed');
  t.equal((stripped[0]! >> 3) & 0x0f, 1, 'the keyframe then starts with its sequence header OBU');
  t.same(withoutTemporalDelimiters(stripped), stripped, 'nothing else is removed');
});

t.test('AV1 sequence header with timing and decoder model info', async (t) => {
  // seq_profile 0, timing_info_present, decoder_model_info_present, one
  // operating point with its parameters, then a 12-bit 1920x1080.
  const bits =
    '000' +
    '0' +
    '0' +
    '1' +
    '0'.repeat(31) +
    '1' +
    '0'.repeat(31) +
    '1' +
    '0' +
    '1' +
    '00011' +
    '0'.repeat(31) +
    '1' +
    '00000' +
    '00000' +
    '0' +
    '00000' +
    '000000000000' +
    '01000' +
    '1' +
    '1' +
    '0000' +
    '0000' +
    '0' +
    '1011' +
    '1011' +
    (1919).toString(2).padStart(12, '0') +
    (1079).toString(2).padStart(12, '0');
  const bytes = new Uint8Array(Math.ceil(bits.length / 8));
  for (let i = 0; i < bits.length; i++) if (bits[i] === '1') bytes[i >> 3]! |= 0x80 >> (i & 7);
  t.same(parseAv1SequenceHeaderSize(bytes), { width: 1920, height: 1080 });
});

t.test('Opus over Enhanced RTMP: OpusHead, channels, 48 kHz, packet durations', async (t) => {
  for (const [name, channels] of [
    ['av1-opus.flv', 2],
    ['opus-only.flv', 1],
  ] as const) {
    const tags = audioTags(name);
    const configs = tags.filter((a): a is Extract<AudioTag, { kind: 'audio-config' }> => a.kind === 'audio-config');
    t.equal(configs.length, 1, `${name}: one sequence start`);
    const config = parseOpusHead(configs[0]!.config);
    t.match(config, { format: 'opus', codec: 'opus', sampleRate: 48000, channels, inputSampleRate: 48000 }, `${name}: ${channels} channel(s)`);
    t.ok(config.preSkip > 0, `${name}: pre-skip ${config.preSkip}`);
    const frames = tags.filter((a): a is Extract<AudioTag, { kind: 'audio-frame' }> => a.kind === 'audio-frame');
    t.ok(frames.every((f) => f.codec === 'opus'));
    t.ok(
      frames.every((f) => opusPacketDuration(f.data) === 0.02),
      `${name}: libopus sends 20 ms packets`,
    );
    t.ok(
      tags.some((a) => a.kind === 'ignored'),
      `${name}: the multichannel-config message is ignored`,
    );
  }
  const total = audioTags('opus-only.flv').filter((a) => a.kind === 'audio-frame').length * 0.02;
  t.ok(total >= 2.98 && total <= 3.04, `3 s of audio-only Opus (${total.toFixed(2)} s)`);
});

t.test('Opus packet durations from the TOC byte (RFC 6716 §3.1)', async (t) => {
  t.equal(opusPacketDuration(Uint8Array.from([(31 << 3) | 0])), 0.02, 'CELT 20 ms, one frame');
  t.equal(opusPacketDuration(Uint8Array.from([(28 << 3) | 1])), 0.005, 'CELT 2.5 ms, two frames');
  t.equal(opusPacketDuration(Uint8Array.from([(3 << 3) | 3, 3])), 0.18, 'SILK 60 ms, three frames (code 3)');
  t.equal(opusPacketDuration(Uint8Array.from([(13 << 3) | 2])), 0.04, 'hybrid 20 ms, two frames');
  t.equal(opusPacketDuration(new Uint8Array()), 0);
});

t.test('malformed records are refused with a reason', async (t) => {
  t.throws(() => parseHevcDecoderConfigurationRecord(Uint8Array.from([1, 2, 3])), /not an HEVCDecoderConfigurationRecord/);
  const hvcC = (videoTags('hevc-aac.flv').find((v) => v.kind === 'video-config') as Extract<VideoTag, { kind: 'video-config' }>).record;
  t.throws(() => parseHevcDecoderConfigurationRecord(hvcC.subarray(0, 40)), /truncated/);
  t.throws(() => parseAv1CodecConfigurationRecord(Uint8Array.from([0x81, 0, 0x0c, 0])), /no sequence header/);
  t.throws(() => parseAv1CodecConfigurationRecord(Uint8Array.from([1, 0, 0, 0])), /not an AV1CodecConfigurationRecord/);
  t.throws(() => parseOpusHead(new TextEncoder().encode('OpusTags and more bytes')), /not an Opus identification header/);
  const head = Uint8Array.from([...new TextEncoder().encode('OpusHead'), 1, 6, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 1]);
  t.throws(() => parseOpusHead(head), /truncated channel mapping/, 'family 1 needs its mapping table');
});

t.test('multitrack (Enhanced RTMP v2): track 0 is the default, the others are named', async (t) => {
  const tags = videoTags('multitrack.flv');
  const configs = tags.filter((v) => v.kind === 'video-config');
  t.equal(configs.length, 1, 'only the default track sequence header');
  t.match(configs[0], { codec: 'avc' });
  const others = tags.filter((v) => v.otherTracks !== undefined);
  t.ok(others.length > 10, 'the second track comes as multitrack messages');
  t.ok(
    others.every((v) => v.kind === 'ignored' && v.otherTracks?.join() === '1'),
    'track 1 is ignored, by id',
  );
  // A ManyTracks message whose track 0 is HEVC and track 2 AV1-less: built by hand from the spec's layout.
  const frame = Uint8Array.from([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x26]); // cts 0, then a NAL of length 1
  const track = (id: number, payload: Uint8Array) => [id, payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff, ...payload];
  const many = Uint8Array.from([0x80 | 0x20 | 6, (1 << 4) | 1, ...Buffer.from('hvc1'), ...track(2, frame), ...track(0, frame)]);
  t.match(parseVideoTag(many), { kind: 'video-frame', codec: 'hevc', keyframe: false, otherTracks: [2] });
  t.same([...(parseVideoTag(many) as Frame).data], [0, 0, 0, 1, 0x26], 'track 0 payload after its composition offset');
  // ManyTracksManyCodecs: a FourCC per track; an unsupported codec on an ignored track does not matter.
  const manyCodecs = Uint8Array.from([
    0x80 | 0x10 | 6,
    (2 << 4) | 0,
    ...Buffer.from('vp09'),
    ...track(1, Uint8Array.from([1, 2])),
    ...Buffer.from('av01'),
    ...track(0, Uint8Array.from([0x81, 0, 0x0c, 0])),
  ]);
  t.match(parseVideoTag(manyCodecs), { kind: 'video-config', codec: 'av1', otherTracks: [1] });
  const audio = Uint8Array.from([0x90 | 5, (0 << 4) | 1, ...Buffer.from('Opus'), 3, 0xf8, 0xff]);
  t.match(parseAudioTag(audio), { kind: 'ignored', otherTracks: [3] }, 'a OneTrack audio message for track 3 only');
});

t.test('ModEx prefixes and truncated enhanced headers', async (t) => {
  // ModEx (7) with 3 bytes of modifier data, wrapping coded frames X (3) of AV1.
  const modEx = Uint8Array.from([0x80 | 0x20 | 7, 2, 0xaa, 0xbb, 0xcc, (1 << 4) | 3, ...Buffer.from('av01'), 0x32, 0x00]);
  t.match(parseVideoTag(modEx), { kind: 'video-frame', codec: 'av1', keyframe: false, compositionOffsetMs: 0 });
  t.match(parseVideoTag(Uint8Array.from([0x90, 0x68, 0x76])), { kind: 'ignored' }, 'a FourCC cut short');
  t.match(parseVideoTag(Uint8Array.from([0x96, 0x10, ...Buffer.from('hvc1'), 0, 0, 0, 9, 1])), { kind: 'ignored' }, 'a track shorter than its size');
  t.match(parseAudioTag(Uint8Array.from([0x97, 5])), { kind: 'ignored' });
});

t.test('codecs still unsupported are named: VP9 and MP3 from ffmpeg 9, Enhanced RTMP FourCCs', async (t) => {
  const vp9 = videoTags('vp9-only.flv');
  t.ok(vp9.length > 0);
  t.ok(
    vp9.every((v) => v.kind === 'video-unsupported' && /VP9/.test(v.codecName)),
    'every VP9 tag is unsupported, by name',
  );
  const mp3 = audioTags('mp3-only.flv');
  t.ok(mp3.length > 0 && mp3.every((a) => a.kind === 'audio-unsupported' && /MP3/.test(a.codecName)), 'MP3 is unsupported, by name');
  t.match(parseAudioTag(Uint8Array.from([0x90, ...Buffer.from('fLaC'), 0])), { kind: 'audio-unsupported', codecName: /FLAC/ });
  t.match(parseAudioTag(Uint8Array.from([0x91, ...Buffer.from('ac-3'), 0])), { kind: 'audio-unsupported', codecName: /AC-3/ });
  t.match(parseVideoTag(Uint8Array.from([0x90, ...Buffer.from('xyz1'), 0])), { kind: 'video-unsupported', codecName: /xyz1/ });
});
