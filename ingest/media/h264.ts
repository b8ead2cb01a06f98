// H.264 decoder configuration from the RTMP sequence header: the
// AVCDecoderConfigurationRecord (avcC) gives the codec string, and the SPS
// inside it gives the picture size. We take the size from the SPS rather than
// from the publisher's optional onMetaData, which OBS and others fill in
// inconsistently; mediabunny needs it for the init segment.
import { BitReader, toRbsp } from './bit-reader.ts';
import type { VideoConfig } from './media-config.ts';
import { checkRecordSize } from './record-size.ts';

export interface AvcConfig extends VideoConfig {
  format: 'avc';
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

export function parseAvcDecoderConfigurationRecord(avcC: Uint8Array): AvcConfig {
  checkRecordSize(avcC, 'AVCDecoderConfigurationRecord');
  if (avcC.length < 7 || avcC[0] !== 1) throw new Error('not an AVCDecoderConfigurationRecord');
  const spsCount = avcC[5]! & 0x1f;
  if (spsCount < 1) throw new Error('AVCDecoderConfigurationRecord has no SPS');
  const spsLength = (avcC[6]! << 8) | avcC[7]!;
  const sps = avcC.subarray(8, 8 + spsLength);
  if (sps.length !== spsLength) throw new Error('truncated SPS in AVCDecoderConfigurationRecord');
  validateParameterSetLists(avcC);
  const hex = (b: number) => b.toString(16).padStart(2, '0');
  const { width, height } = parseSpsPictureSize(sps);
  return { format: 'avc', codec: `avc1.${hex(avcC[1]!)}${hex(avcC[2]!)}${hex(avcC[3]!)}`, width, height, description: avcC };
}

/**
 * Walks the whole record: every SPS and PPS must be there whole, or the init
 * segment would carry a record no player can decode a frame with.
 */
function validateParameterSetLists(avcC: Uint8Array): void {
  let pos = 6;
  const readSets = (count: number, what: string) => {
    for (let i = 0; i < count; i++) {
      if (pos + 2 > avcC.length) throw new Error(`truncated ${what} list in AVCDecoderConfigurationRecord`);
      const length = (avcC[pos]! << 8) | avcC[pos + 1]!;
      pos += 2 + length;
      if (pos > avcC.length) throw new Error(`truncated ${what} in AVCDecoderConfigurationRecord`);
    }
  };
  readSets(avcC[5]! & 0x1f, 'SPS');
  if (pos >= avcC.length) throw new Error('AVCDecoderConfigurationRecord has no PPS list');
  const ppsCount = avcC[pos++]!;
  if (ppsCount < 1) throw new Error('AVCDecoderConfigurationRecord has no PPS');
  readSets(ppsCount, 'PPS');
  // High profiles may carry 4 more bytes and SPS extensions; present means whole.
  if (pos < avcC.length && HIGH_PROFILES.has(avcC[1]!)) {
    if (pos + 4 > avcC.length) throw new Error('truncated high-profile extension in AVCDecoderConfigurationRecord');
    const extCount = avcC[pos + 3]!;
    pos += 4;
    readSets(extCount, 'SPS extension');
  }
}

/** Picture size after cropping, from an SPS NAL unit (with its one-byte NAL header). */
export function parseSpsPictureSize(spsNal: Uint8Array): { width: number; height: number } {
  const r = new BitReader(toRbsp(spsNal.subarray(1)));
  const profileIdc = r.readBits(8);
  r.readBits(16); // constraint flags, level_idc
  r.readUE(); // seq_parameter_set_id
  let chromaFormatIdc = 1;
  let separateColourPlane = 0;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.readUE();
    if (chromaFormatIdc === 3) separateColourPlane = r.readBit();
    r.readUE(); // bit_depth_luma_minus8
    r.readUE(); // bit_depth_chroma_minus8
    r.readBit(); // qpprime_y_zero_transform_bypass_flag
    if (r.readBit()) {
      const lists = chromaFormatIdc !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) {
        if (r.readBit()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.readUE(); // log2_max_frame_num_minus4
  const pocType = r.readUE();
  if (pocType === 0) {
    r.readUE();
  } else if (pocType === 1) {
    r.readBit();
    r.readSE();
    r.readSE();
    const cycle = r.readUE();
    for (let i = 0; i < cycle; i++) r.readSE();
  }
  r.readUE(); // max_num_ref_frames
  r.readBit(); // gaps_in_frame_num_value_allowed_flag
  const widthInMbs = r.readUE() + 1;
  const heightInMapUnits = r.readUE() + 1;
  const frameMbsOnly = r.readBit();
  if (!frameMbsOnly) r.readBit(); // mb_adaptive_frame_field_flag
  r.readBit(); // direct_8x8_inference_flag
  let crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (r.readBit()) crop = { left: r.readUE(), right: r.readUE(), top: r.readUE(), bottom: r.readUE() };

  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (2 - frameMbsOnly);
  const width = widthInMbs * 16 - cropUnitX * (crop.left + crop.right);
  const height = (2 - frameMbsOnly) * heightInMapUnits * 16 - cropUnitY * (crop.top + crop.bottom);
  if (width <= 0 || height <= 0) throw new Error(`SPS gives an impossible picture size ${width}x${height}`);
  return { width, height };
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.readSE() + 256) % 256;
    last = next === 0 ? last : next;
  }
}
