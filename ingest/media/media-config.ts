// What the packager needs to know about a publisher's video and audio,
// whatever the codec: the codec string and picture size or sample rate for
// the init segment, and the decoder configuration record it carries.
import type { AudioFormat, VideoFormat } from './flv-tag.ts';

export interface VideoConfig {
  format: VideoFormat;
  /** RFC 6381 codec string, e.g. avc1.64001f, hvc1.1.6.L93.B0, av01.0.04M.08 */
  codec: string;
  width: number;
  height: number;
  /** The decoder configuration record (avcC, hvcC, av1C), passed through as the decoder description. */
  description: Uint8Array;
}

export interface AudioConfig {
  format: AudioFormat;
  /** RFC 6381 codec string: mp4a.40.2, opus */
  codec: string;
  sampleRate: number;
  channels: number;
  /** AudioSpecificConfig, or the Opus identification header. */
  description: Uint8Array;
}
