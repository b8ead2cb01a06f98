// Opus decoder configuration from the Enhanced RTMP sequence start: the
// identification header (RFC 7845 §5.1, "OpusHead") gives the channel count
// and is carried into the init segment's dOps box. Opus always decodes at
// 48 kHz, so that is the track's sample rate whatever the input rate was.
import type { AudioConfig } from './media-config.ts';
import { checkRecordSize } from './record-size.ts';

export interface OpusConfig extends AudioConfig {
  format: 'opus';
  /** Samples (at 48 kHz) the decoder discards at the start. */
  preSkip: number;
  /** The encoder's input sample rate: informational, not the playback rate. */
  inputSampleRate: number;
}

export const OPUS_SAMPLE_RATE = 48000;

export function parseOpusHead(head: Uint8Array): OpusConfig {
  checkRecordSize(head, 'Opus identification header');
  if (head.length < 19 || String.fromCharCode(...head.subarray(0, 8)) !== 'OpusHead') throw new Error('not an Opus identification header (OpusHead)');
  const version = head[8]!;
  if (version >> 4 !== 0) throw new Error(`unsupported OpusHead version ${version}`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const channels = head[9]!;
  if (channels === 0) throw new Error('OpusHead has zero channels');
  const mappingFamily = head[18]!;
  // Family 0 is mono/stereo with no table; others carry stream counts and one mapping byte per channel.
  if (mappingFamily !== 0 && head.length < 21 + channels) throw new Error('truncated channel mapping table in OpusHead');
  return {
    format: 'opus',
    codec: 'opus',
    sampleRate: OPUS_SAMPLE_RATE,
    channels,
    preSkip: view.getUint16(10, true),
    inputSampleRate: view.getUint32(12, true),
    description: head,
  };
}

// Frame durations in 1/48000 s by TOC configuration number (RFC 6716 §3.1):
// SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
const FRAME_SAMPLES = [
  ...Array.from({ length: 12 }, (_, c) => [480, 960, 1920, 2880][c % 4]!),
  ...Array.from({ length: 4 }, (_, c) => [480, 960][c % 2]!),
  ...Array.from({ length: 16 }, (_, c) => [120, 240, 480, 960][c % 4]!),
];

/** Duration of one Opus packet in seconds, from its TOC byte (and frame count byte, for code 3). */
export function opusPacketDuration(packet: Uint8Array): number {
  const toc = packet[0];
  if (toc === undefined) return 0;
  const code = toc & 0x03;
  const frames = code === 0 ? 1 : code === 3 ? (packet[1] ?? 0) & 0x3f : 2;
  return (FRAME_SAMPLES[toc >> 3]! * frames) / OPUS_SAMPLE_RATE;
}
