// AV1 decoder configuration from the Enhanced RTMP sequence start: the
// AV1CodecConfigurationRecord (av1C, AV1-ISOBMFF §2.3) gives profile, level,
// tier and bit depth for the codec string, and the sequence header OBU it
// carries gives the picture size mediabunny needs for the init segment.
import { BitReader } from './bit-reader.ts';
import type { VideoConfig } from './media-config.ts';
import { checkRecordSize } from './record-size.ts';

const OBU_SEQUENCE_HEADER = 1;
const OBU_TEMPORAL_DELIMITER = 2;

export interface Av1Config extends VideoConfig {
  format: 'av1';
}

export function parseAv1CodecConfigurationRecord(av1C: Uint8Array): Av1Config {
  checkRecordSize(av1C, 'AV1CodecConfigurationRecord');
  if (av1C.length < 4 || av1C[0] !== 0x81) throw new Error('not an AV1CodecConfigurationRecord (version 1)');
  const profile = av1C[1]! >> 5;
  const level = av1C[1]! & 0x1f;
  const tier = av1C[2]! >> 7;
  const highBitDepth = (av1C[2]! >> 6) & 1;
  const twelveBit = (av1C[2]! >> 5) & 1;
  const bitDepth = highBitDepth ? (twelveBit ? 12 : 10) : 8;
  const sequenceHeader = firstObu(av1C.subarray(4), OBU_SEQUENCE_HEADER);
  if (!sequenceHeader) throw new Error('AV1CodecConfigurationRecord carries no sequence header OBU');
  const { width, height } = parseAv1SequenceHeaderSize(sequenceHeader.payload);
  const codec = `av01.${profile}.${String(level).padStart(2, '0')}${tier ? 'H' : 'M'}.${String(bitDepth).padStart(2, '0')}`;
  return { format: 'av1', codec, width, height, description: av1C };
}

interface Obu {
  type: number;
  /** The whole OBU, header included. */
  data: Uint8Array;
  payload: Uint8Array;
}

/**
 * The first OBU of a type, after checking that every OBU is whole (a record
 * with a broken tail would reach the init segment). Nothing is collected on
 * the way, whatever the number of OBUs.
 */
function firstObu(data: Uint8Array, type: number): Obu | undefined {
  let first: Obu | undefined;
  for (const obu of obus(data)) if (first === undefined && obu.type === type) first = obu;
  return first;
}

/** The OBUs of a low-overhead bitstream (each with obu_has_size_field set, as AV1-ISOBMFF requires). */
function* obus(data: Uint8Array): Generator<Obu> {
  let pos = 0;
  while (pos < data.length) {
    const header = data[pos]!;
    const type = (header >> 3) & 0x0f;
    const hasExtension = (header >> 2) & 1;
    const hasSize = (header >> 1) & 1;
    let p = pos + 1 + hasExtension;
    let size = data.length - p;
    if (hasSize) {
      size = 0;
      for (let i = 0; ; i++) {
        if (i === 8 || p >= data.length) throw new Error('malformed OBU size');
        const byte = data[p++]!;
        size += (byte & 0x7f) * 2 ** (7 * i);
        if (!(byte & 0x80)) break;
      }
    }
    if (p + size > data.length) throw new Error('truncated OBU');
    yield { type, data: data.subarray(pos, p + size), payload: data.subarray(p, p + size) };
    pos = p + size;
  }
}

/**
 * A temporal unit without its temporal delimiter OBU: AV1-ISOBMFF §2.4 says
 * samples should not carry one (ffmpeg's FLV muxer leaves it in). Anything
 * that does not parse as OBUs is passed through untouched.
 */
export function withoutTemporalDelimiters(temporalUnit: Uint8Array): Uint8Array {
  try {
    const first = obus(temporalUnit).next();
    if (first.done || first.value.type !== OBU_TEMPORAL_DELIMITER) return temporalUnit;
    return temporalUnit.subarray(first.value.data.length);
  } catch {
    return temporalUnit;
  }
}

/** max_frame_width/height from a sequence header OBU payload (AV1 spec §5.5). */
export function parseAv1SequenceHeaderSize(payload: Uint8Array): { width: number; height: number } {
  const r = new BitReader(payload);
  r.readBits(3); // seq_profile
  r.readBit(); // still_picture
  const reducedStillPictureHeader = r.readBit();
  if (reducedStillPictureHeader) {
    r.readBits(5); // seq_level_idx[0]
  } else {
    const timingInfoPresent = r.readBit();
    let decoderModelInfoPresent = 0;
    let bufferDelayLength = 0;
    if (timingInfoPresent) {
      r.readBits(32); // num_units_in_display_tick
      r.readBits(32); // time_scale
      if (r.readBit()) readUvlc(r); // equal_picture_interval → num_ticks_per_picture_minus_1
      decoderModelInfoPresent = r.readBit();
      if (decoderModelInfoPresent) {
        bufferDelayLength = r.readBits(5) + 1;
        r.readBits(32); // num_units_in_decoding_tick
        r.readBits(5); // buffer_removal_time_length_minus_1
        r.readBits(5); // frame_presentation_time_length_minus_1
      }
    }
    const initialDisplayDelayPresent = r.readBit();
    const operatingPoints = r.readBits(5) + 1;
    for (let i = 0; i < operatingPoints; i++) {
      r.readBits(12); // operating_point_idc
      const levelIdx = r.readBits(5);
      if (levelIdx > 7) r.readBit(); // seq_tier
      if (decoderModelInfoPresent && r.readBit()) {
        r.readBits(bufferDelayLength); // decoder_buffer_delay
        r.readBits(bufferDelayLength); // encoder_buffer_delay
        r.readBit(); // low_delay_mode_flag
      }
      if (initialDisplayDelayPresent && r.readBit()) r.readBits(4);
    }
  }
  const widthBits = r.readBits(4) + 1;
  const heightBits = r.readBits(4) + 1;
  const width = r.readBits(widthBits) + 1;
  const height = r.readBits(heightBits) + 1;
  return { width, height };
}

function readUvlc(r: BitReader): number {
  let leadingZeros = 0;
  while (!r.readBit()) {
    if (++leadingZeros >= 32) return 2 ** 32 - 1;
  }
  return r.readBits(leadingZeros) + 2 ** leadingZeros - 1;
}
