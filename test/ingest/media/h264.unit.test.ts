// The H.264 sequence header: the codec string and picture size the init
// segment is built from. Checked against real x264 output, with ffprobe as the
// reference for what a player will see.
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseVideoTag } from '../../../ingest/media/flv-tag.ts';
import { parseAvcDecoderConfigurationRecord, parseSpsPictureSize } from '../../../ingest/media/h264.ts';
import { encodeFlv, ffprobe, tempDir } from '../../fixtures/media.ts';

/** profile_idc for each profile name ffprobe prints. */
const PROFILE_IDC: Record<string, number> = {
  'Constrained Baseline': 66,
  Baseline: 66,
  Main: 77,
  Extended: 88,
  High: 100,
  'High 10': 110,
  'High 4:2:2': 122,
  'High 4:4:4 Predictive': 244,
};

interface Case {
  label: string;
  size: string;
  x264: string[];
  /** The profile ffprobe must report, so each case covers the syntax it claims to. */
  profile: string;
  interlaced?: boolean;
}

const CASES: Case[] = [
  // 240 and 480 lines are whole macroblocks, but 426 and 854 columns are not: they need right cropping.
  { label: '426x240 High', size: '426x240', x264: ['-preset', 'veryfast'], profile: 'High' },
  { label: '854x480 High', size: '854x480', x264: ['-preset', 'veryfast'], profile: 'High' },
  { label: '1280x720 Main', size: '1280x720', x264: ['-preset', 'veryfast', '-profile:v', 'main'], profile: 'Main' },
  // 1080 lines are coded as 1088 and cropped by 8.
  { label: '1920x1080 Constrained Baseline', size: '1920x1080', x264: ['-preset', 'ultrafast'], profile: 'Constrained Baseline' },
  { label: '1920x1080 High', size: '1920x1080', x264: ['-preset', 'veryfast'], profile: 'High' },
  // Interlaced: frame_mbs_only_flag = 0, so heights are in pairs of macroblock rows.
  {
    label: '1920x1080 interlaced',
    size: '1920x1080',
    x264: ['-preset', 'veryfast', '-flags', '+ildct+ilme', '-x264-params', 'interlaced=1'],
    profile: 'High',
    interlaced: true,
  },
  // 4:4:4 crops in single pixels, so odd sizes are possible.
  { label: '425x239 High 4:4:4', size: '425x239', x264: ['-preset', 'veryfast', '-pix_fmt', 'yuv444p'], profile: 'High 4:4:4 Predictive' },
  // 4:2:2 crops in pairs of columns but single lines.
  { label: '426x239 High 4:2:2', size: '426x239', x264: ['-preset', 'veryfast', '-pix_fmt', 'yuv422p'], profile: 'High 4:2:2' },
  { label: '854x480 High 10', size: '854x480', x264: ['-preset', 'veryfast', '-pix_fmt', 'yuv420p10le'], profile: 'High 10' },
  // Monochrome (chroma_format_idc 0) also crops in single pixels.
  { label: '425x239 monochrome', size: '425x239', x264: ['-preset', 'veryfast', '-pix_fmt', 'gray'], profile: 'High' },
];

function sequenceHeader(path: string): Uint8Array {
  for (const tag of readFlvTags(path)) {
    if (tag.type !== 9) continue;
    const video = parseVideoTag(tag.body);
    if (video.kind === 'video-config') return video.record;
  }
  throw new Error(`${path} has no H.264 sequence header`);
}

interface ProbeStreams {
  streams: Array<{ profile: string; level: number; width: number; height: number; field_order?: string }>;
}

const dir = tempDir(t);
const encoded = await Promise.all(
  CASES.map(async (c, i) => {
    const path = await encodeFlv(dir, `case-${i}.flv`, {
      size: c.size,
      frames: 1,
      audio: false,
      video: ['-c:v', 'libx264', ...c.x264],
    });
    const probe = await ffprobe<ProbeStreams>(['-show_entries', 'stream=profile,level,width,height,field_order', path]);
    return { path, probe: probe.streams[0]! };
  }),
);

t.test('picture size and codec string from real x264 streams', async (t) => {
  CASES.forEach((c, i) => {
    const { path, probe } = encoded[i]!;
    t.test(c.label, async (t) => {
      t.equal(probe.profile, c.profile, 'x264 produced the profile this case is about');
      if (c.interlaced) t.not(probe.field_order, 'progressive', 'x264 produced an interlaced stream');
      const record = sequenceHeader(path);
      const config = parseAvcDecoderConfigurationRecord(record);
      const [w, h] = c.size.split('x').map(Number);
      t.same({ width: config.width, height: config.height }, { width: w, height: h }, 'size after cropping is the encoded size');
      t.same({ width: config.width, height: config.height }, { width: probe.width, height: probe.height }, 'size matches what ffprobe reports');
      const m = /^avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(config.codec);
      t.ok(m, `codec string ${config.codec} has the RFC 6381 avc1.PPCCLL form`);
      if (!m) return;
      t.equal(parseInt(m[1]!, 16), PROFILE_IDC[probe.profile], `profile_idc matches ffprobe's "${probe.profile}"`);
      t.equal(parseInt(m[3]!, 16), probe.level, `level_idc matches ffprobe's level ${probe.level}`);
      if (probe.profile === 'Constrained Baseline') t.ok(parseInt(m[2]!, 16) & 0x40, 'constraint_set1_flag is carried for Constrained Baseline');
      t.equal(config.description, record, 'the record itself is passed through as the decoder description');
    });
  });
});

t.test('parseSpsPictureSize reads the SPS NAL unit of a real record', async (t) => {
  const record = sequenceHeader(encoded[1]!.path);
  const spsLength = (record[6]! << 8) | record[7]!;
  const sps = record.subarray(8, 8 + spsLength);
  t.equal(sps[0]! & 0x1f, 7, 'the first NAL unit of the record is an SPS');
  t.same(parseSpsPictureSize(sps), { width: 854, height: 480 });
});

// ---------------------------------------------------------------------------
// Synthetic SPS: syntax x264 never writes, built bit by bit from the spec.

class BitWriter {
  private readonly bits: number[] = [];
  u(n: number, value: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(value / 2 ** i) % 2);
    return this;
  }
  ue(value: number): this {
    const x = value + 1;
    const len = Math.floor(Math.log2(x));
    return this.u(len, 0).u(len + 1, x);
  }
  se(value: number): this {
    return this.ue(value <= 0 ? -2 * value : 2 * value - 1);
  }
  /** RBSP bytes with the stop bit and alignment. */
  rbsp(): Uint8Array {
    const bits = [...this.bits, 1];
    while (bits.length % 8) bits.push(0);
    const out = new Uint8Array(bits.length / 8);
    bits.forEach((b, i) => (out[i >> 3]! |= b << (7 - (i & 7))));
    return out;
  }
}

/** Inserts emulation-prevention bytes, as an encoder must, and prefixes the SPS NAL header. */
function spsNal(rbsp: Uint8Array): Uint8Array {
  const out = [0x67];
  let zeros = 0;
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

interface SpsFields {
  profile?: number;
  chromaFormatIdc?: number;
  separateColourPlane?: number;
  /** seq_scaling_list: per list, the delta_scale values to write, or null for an absent list. */
  scalingLists?: Array<number[] | null>;
  pocType?: 0 | 1 | 2;
  log2MaxPocLsbMinus4?: number;
  widthMbs: number;
  heightMapUnits: number;
  frameMbsOnly?: number;
  crop?: [number, number, number, number];
}

function buildSps(f: SpsFields): Uint8Array {
  const w = new BitWriter();
  const profile = f.profile ?? 66;
  w.u(8, profile).u(8, 0).u(8, 31).ue(0);
  if (profile === 100 || profile === 244) {
    w.ue(f.chromaFormatIdc ?? 1);
    if ((f.chromaFormatIdc ?? 1) === 3) w.u(1, f.separateColourPlane ?? 0);
    w.ue(0).ue(0).u(1, 0); // bit depths, transform bypass
    w.u(1, f.scalingLists ? 1 : 0);
    for (const list of f.scalingLists ?? []) {
      w.u(1, list ? 1 : 0);
      for (const delta of list ?? []) w.se(delta);
    }
  }
  w.ue(0); // log2_max_frame_num_minus4
  const pocType = f.pocType ?? 0;
  w.ue(pocType);
  if (pocType === 0) w.ue(f.log2MaxPocLsbMinus4 ?? 0);
  if (pocType === 1) w.u(1, 0).se(-3).se(5).ue(2).se(1).se(-1);
  w.ue(1).u(1, 0); // max_num_ref_frames, gaps
  w.ue(f.widthMbs - 1).ue(f.heightMapUnits - 1);
  const frameMbsOnly = f.frameMbsOnly ?? 1;
  w.u(1, frameMbsOnly);
  if (!frameMbsOnly) w.u(1, 0);
  w.u(1, 1); // direct_8x8_inference_flag
  if (f.crop) {
    w.u(1, 1);
    for (const c of f.crop) w.ue(c);
  } else w.u(1, 0);
  w.u(1, 0); // no VUI
  return spsNal(w.rbsp());
}

function record(sps: Uint8Array): Uint8Array {
  const pps = [0x68, 0xce, 0x3c, 0x80];
  return Uint8Array.from([1, sps[1]!, sps[2]!, sps[3]!, 0xff, 0xe1, sps.length >> 8, sps.length & 0xff, ...sps, 1, 0, pps.length, ...pps]);
}

t.test('emulation-prevention bytes are removed before the size is read', async (t) => {
  // A long Exp-Golomb code before the size fields makes runs of zero bytes,
  // which the encoder must break up with 0x03 bytes.
  const sps = buildSps({ log2MaxPocLsbMinus4: 2 ** 30 - 1, widthMbs: 80, heightMapUnits: 45 });
  const hex = Buffer.from(sps).toString('hex');
  t.match(hex, /000003/, 'the SPS really contains an emulation-prevention byte');
  t.same(parseSpsPictureSize(sps), { width: 1280, height: 720 });
  t.equal(parseAvcDecoderConfigurationRecord(record(sps)).codec, 'avc1.42001f');
});

t.test('scaling lists in the SPS are skipped correctly', async (t) => {
  // x264 always puts its matrices in the PPS, so these are synthetic: a full
  // 4x4 list, one that ends early (delta to 0), one that asks for the default.
  const full4x4 = Array.from({ length: 16 }, () => 1);
  const endsEarly = [2, 3, -13]; // 10, 13, then 0: the rest repeat 13
  const useDefault8x8 = [-8]; // 0 at j = 0
  const sps420 = buildSps({
    profile: 100,
    scalingLists: [full4x4, null, endsEarly, null, null, null, useDefault8x8, null],
    widthMbs: 80,
    heightMapUnits: 45,
  });
  t.same(parseSpsPictureSize(sps420), { width: 1280, height: 720 }, '4:2:0: 8 lists');
  // 4:4:4 has 12 lists; a full 8x8 list is 64 deltas.
  const full8x8 = Array.from({ length: 64 }, (_, i) => (i % 2 ? -1 : 1));
  const sps444 = buildSps({
    profile: 244,
    chromaFormatIdc: 3,
    scalingLists: [null, full4x4, null, null, null, null, null, null, full8x8, null, endsEarly, useDefault8x8],
    widthMbs: 27,
    heightMapUnits: 15,
    crop: [0, 7, 0, 1],
  });
  t.same(parseSpsPictureSize(sps444), { width: 425, height: 239 }, '4:4:4: 12 lists');
});

t.test('pic_order_cnt_type 1 is skipped correctly', async (t) => {
  t.same(parseSpsPictureSize(buildSps({ pocType: 1, widthMbs: 40, heightMapUnits: 30 })), { width: 640, height: 480 });
});

t.test('separate colour planes crop in single pixels', async (t) => {
  // 4:4:4 with separate_colour_plane_flag: ChromaArrayType 0, crop unit 1.
  const sps = buildSps({ profile: 244, chromaFormatIdc: 3, separateColourPlane: 1, widthMbs: 27, heightMapUnits: 15, crop: [0, 7, 0, 1] });
  t.same(parseSpsPictureSize(sps), { width: 425, height: 239 });
});

t.test('interlaced 4:2:0 crops in units of four lines', async (t) => {
  // 1080i: 34 map units of 32 lines = 1088, cropped by 2 units of 4 lines.
  const sps = buildSps({ profile: 100, widthMbs: 120, heightMapUnits: 34, frameMbsOnly: 0, crop: [0, 0, 0, 2] });
  t.same(parseSpsPictureSize(sps), { width: 1920, height: 1080 });
});

t.test('malformed sequence headers throw an Error with a message', async (t) => {
  const real = sequenceHeader(encoded[0]!.path);
  const spsEnd = 8 + ((real[6]! << 8) | real[7]!);
  const throwsClearly = (input: Uint8Array, what: string, pattern?: RegExp) => {
    let error: unknown;
    try {
      parseAvcDecoderConfigurationRecord(input);
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof Error, `${what}: throws an Error`);
    if (error instanceof Error) {
      t.ok(error.message.length > 0, `${what}: with a message`);
      if (pattern) t.match(error.message, pattern, what);
    }
  };
  throwsClearly(new Uint8Array(), 'empty record', /AVCDecoderConfigurationRecord/);
  throwsClearly(Uint8Array.from([0, ...real.subarray(1)]), 'configurationVersion 0', /AVCDecoderConfigurationRecord/);
  // Annex B bytes where avcC belongs (a publisher sending raw NAL units).
  throwsClearly(Uint8Array.from([0, 0, 0, 1, ...real.subarray(8, spsEnd)]), 'Annex B start code');
  const noSps = real.slice();
  noSps[5] = 0xe0;
  throwsClearly(noSps, 'numOfSequenceParameterSets 0', /no SPS/);
  for (let n = 0; n < spsEnd; n++) throwsClearly(real.subarray(0, n), `record truncated to ${n} bytes`);
  // A size that crops away the whole picture.
  throwsClearly(record(buildSps({ widthMbs: 2, heightMapUnits: 2, crop: [8, 8, 0, 0] })), 'crop larger than the picture', /picture size/);
  // An SPS so short its fields run off the end.
  throwsClearly(record(Uint8Array.from([0x67, 0x42, 0x00, 0x1f])), 'SPS without size fields');
});

t.test('a record cut short inside its PPS list is refused', async (t) => {
  // The record becomes the avcC of the init segment: without its PPS no
  // player can decode a single frame, so it must be refused at publish time.
  const real = sequenceHeader(encoded[0]!.path);
  const spsEnd = 8 + ((real[6]! << 8) | real[7]!);
  t.ok(real.length > spsEnd + 3, 'the real record has a PPS after its SPS');
  for (const n of [spsEnd, spsEnd + 1, spsEnd + 3, real.length - 1]) {
    t.throws(() => parseAvcDecoderConfigurationRecord(real.subarray(0, n)), Error, `record truncated to ${n} of ${real.length} bytes`);
  }
});
