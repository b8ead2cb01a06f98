// HEVC decoder configuration from the Enhanced RTMP sequence start: the
// HEVCDecoderConfigurationRecord (hvcC, ISO/IEC 14496-15 §8.3.3) gives the
// codec string, and the SPS inside it gives the picture size after the
// conformance window (x265 codes 180 lines as 184 and crops), which
// mediabunny needs for the init segment.
import { BitReader, toRbsp } from './bit-reader.ts';
import type { VideoConfig } from './media-config.ts';
import { checkRecordSize } from './record-size.ts';

const NAL_SPS = 33;

export interface HevcConfig extends VideoConfig {
  format: 'hevc';
}

export function parseHevcDecoderConfigurationRecord(hvcC: Uint8Array): HevcConfig {
  checkRecordSize(hvcC, 'HEVCDecoderConfigurationRecord');
  if (hvcC.length < 23 || hvcC[0] !== 1) throw new Error('not an HEVCDecoderConfigurationRecord');
  const sps = firstSps(hvcC);
  if (!sps) throw new Error('HEVCDecoderConfigurationRecord has no SPS');
  const { width, height } = parseHevcSpsPictureSize(sps);
  return { format: 'hevc', codec: hevcCodecString(hvcC), width, height, description: hvcC };
}

/**
 * The record's first SPS, after checking that every NAL unit array is whole
 * (a record cut short is refused). Only the SPS is kept: the walk allocates
 * nothing per NAL unit, whatever counts the record declares.
 */
function firstSps(hvcC: Uint8Array): Uint8Array | undefined {
  let sps: Uint8Array | undefined;
  const numArrays = hvcC[22]!;
  let pos = 23;
  for (let a = 0; a < numArrays; a++) {
    if (pos + 3 > hvcC.length) throw new Error('truncated NAL unit array in HEVCDecoderConfigurationRecord');
    const type = hvcC[pos]! & 0x3f;
    const count = (hvcC[pos + 1]! << 8) | hvcC[pos + 2]!;
    pos += 3;
    for (let i = 0; i < count; i++) {
      if (pos + 2 > hvcC.length) throw new Error('truncated NAL unit in HEVCDecoderConfigurationRecord');
      const length = (hvcC[pos]! << 8) | hvcC[pos + 1]!;
      if (pos + 2 + length > hvcC.length) throw new Error('truncated NAL unit in HEVCDecoderConfigurationRecord');
      if (type === NAL_SPS && sps === undefined) sps = hvcC.subarray(pos + 2, pos + 2 + length);
      pos += 2 + length;
    }
  }
  return sps;
}

/**
 * RFC 6381 / ISO 14496-15 Annex E codec string, e.g. hvc1.1.6.L93.B0: profile
 * space and profile, the compatibility flags bit-reversed, tier and level,
 * then the constraint bytes without trailing zero bytes.
 */
function hevcCodecString(hvcC: Uint8Array): string {
  const profileSpace = hvcC[1]! >> 6;
  const tier = (hvcC[1]! >> 5) & 1;
  const profileIdc = hvcC[1]! & 0x1f;
  const compatibility = ((hvcC[2]! << 24) | (hvcC[3]! << 16) | (hvcC[4]! << 8) | hvcC[5]!) >>> 0;
  let reversed = 0;
  for (let i = 0; i < 32; i++) if (compatibility & (1 << i)) reversed |= 1 << (31 - i);
  const constraints = [...hvcC.subarray(6, 12)];
  while (constraints.length > 0 && constraints.at(-1) === 0) constraints.pop();
  const level = hvcC[12]!;
  return [
    'hvc1',
    `${['', 'A', 'B', 'C'][profileSpace]}${profileIdc}`,
    (reversed >>> 0).toString(16).toUpperCase(),
    `${tier ? 'H' : 'L'}${level}`,
    ...constraints.map((b) => b.toString(16).toUpperCase().padStart(2, '0')),
  ].join('.');
}

/** Picture size after the conformance window, from an SPS NAL unit (with its two-byte NAL header). */
export function parseHevcSpsPictureSize(spsNal: Uint8Array): { width: number; height: number } {
  const r = new BitReader(toRbsp(spsNal.subarray(2)));
  r.readBits(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.readBits(3);
  r.readBit(); // sps_temporal_id_nesting_flag
  skipProfileTierLevel(r, maxSubLayersMinus1);
  r.readUE(); // sps_seq_parameter_set_id
  const chromaFormatIdc = r.readUE();
  const separateColourPlane = chromaFormatIdc === 3 ? r.readBit() : 0;
  const codedWidth = r.readUE();
  const codedHeight = r.readUE();
  let window = { left: 0, right: 0, top: 0, bottom: 0 };
  if (r.readBit()) window = { left: r.readUE(), right: r.readUE(), top: r.readUE(), bottom: r.readUE() };
  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const width = codedWidth - subWidthC * (window.left + window.right);
  const height = codedHeight - subHeightC * (window.top + window.bottom);
  if (width <= 0 || height <= 0) throw new Error(`HEVC SPS gives an impossible picture size ${width}x${height}`);
  return { width, height };
}

function skipProfileTierLevel(r: BitReader, maxSubLayersMinus1: number): void {
  // general profile space, tier, profile idc (8), compatibility flags (32),
  // 4 source flags + 43 constraint bits + 1 (48), level idc (8).
  r.readBits(8);
  r.readBits(32);
  r.readBits(24);
  r.readBits(24);
  r.readBits(8);
  const profilePresent: number[] = [];
  const levelPresent: number[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    profilePresent.push(r.readBit());
    levelPresent.push(r.readBit());
  }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.readBits(2);
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profilePresent[i]) {
      r.readBits(32);
      r.readBits(32);
      r.readBits(24); // 88 bits of sub-layer profile
    }
    if (levelPresent[i]) r.readBits(8);
  }
}
