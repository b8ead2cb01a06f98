// Decodes the body of an RTMP audio or video message (an FLV tag body) into
// what the packager needs. We parse the tag ourselves rather than trusting
// node-media-server's AVPacket fields: FLV's composition time offset is a
// *signed* 24-bit value, which it reads as unsigned, and we need the codec
// identity to refuse what we cannot package with a clear message.

export type VideoTag =
  | { kind: 'video-config'; codec: 'avc'; record: Uint8Array }
  | { kind: 'video-frame'; codec: 'avc'; keyframe: boolean; compositionOffsetMs: number; data: Uint8Array }
  | { kind: 'video-end' }
  | { kind: 'video-unsupported'; codecName: string }
  | { kind: 'ignored' };

export type AudioTag =
  | { kind: 'audio-config'; codec: 'aac'; config: Uint8Array }
  | { kind: 'audio-frame'; codec: 'aac'; data: Uint8Array }
  | { kind: 'audio-unsupported'; codecName: string }
  | { kind: 'ignored' };

const VIDEO_CODEC_NAMES: Record<number, string> = { 2: 'Sorenson H.263', 3: 'Screen video', 4: 'VP6', 5: 'VP6 alpha', 6: 'Screen video v2', 7: 'H.264', 12: 'HEVC (legacy FLV id 12)' };
const AUDIO_CODEC_NAMES: Record<number, string> = { 0: 'PCM', 1: 'ADPCM', 2: 'MP3', 3: 'PCM LE', 4: 'Nellymoser 16 kHz', 5: 'Nellymoser 8 kHz', 6: 'Nellymoser', 7: 'G.711 A-law', 8: 'G.711 mu-law', 9: 'enhanced RTMP audio', 10: 'AAC', 11: 'Speex', 14: 'MP3 8 kHz' };

export function parseVideoTag(body: Uint8Array): VideoTag {
  if (body.length < 1) return { kind: 'ignored' };
  const first = body[0]!;
  if (first & 0x80) {
    // Enhanced RTMP: a FourCC names the codec (hvc1, av01, vp09).
    const fourcc = String.fromCharCode(...body.subarray(1, 5));
    const names: Record<string, string> = { hvc1: 'HEVC (enhanced RTMP)', av01: 'AV1 (enhanced RTMP)', vp09: 'VP9 (enhanced RTMP)', avc1: 'H.264 (enhanced RTMP)' };
    return { kind: 'video-unsupported', codecName: names[fourcc] ?? `enhanced RTMP "${fourcc}"` };
  }
  const frameType = first >> 4;
  const codecId = first & 0x0f;
  if (frameType === 5) return { kind: 'ignored' }; // video info/command frame
  if (codecId !== 7) return { kind: 'video-unsupported', codecName: VIDEO_CODEC_NAMES[codecId] ?? `FLV video codec ${codecId}` };
  if (body.length < 5) return { kind: 'ignored' };
  const packetType = body[1]!;
  if (packetType === 0) return { kind: 'video-config', codec: 'avc', record: body.subarray(5) };
  if (packetType === 2) return { kind: 'video-end' };
  let cts = (body[2]! << 16) | (body[3]! << 8) | body[4]!;
  if (cts & 0x800000) cts -= 0x1000000; // SI24
  return { kind: 'video-frame', codec: 'avc', keyframe: frameType === 1, compositionOffsetMs: cts, data: body.subarray(5) };
}

export function parseAudioTag(body: Uint8Array): AudioTag {
  if (body.length < 2) return { kind: 'ignored' };
  const soundFormat = body[0]! >> 4;
  if (soundFormat !== 10) return { kind: 'audio-unsupported', codecName: AUDIO_CODEC_NAMES[soundFormat] ?? `FLV audio codec ${soundFormat}` };
  if (body[1] === 0) return { kind: 'audio-config', codec: 'aac', config: body.subarray(2) };
  return { kind: 'audio-frame', codec: 'aac', data: body.subarray(2) };
}
