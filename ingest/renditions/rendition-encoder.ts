// What the ingest asks of whoever encodes renditions: the transcoder role
// over HTTP (remote-encoder.ts) or ffmpeg child processes of the ingest
// itself (local-encoder.ts, the one-machine mode). Both run the same
// encoding code (common/transcode/rendition-encoding.ts), so a segment gives
// the same renditions either way.
import type { EncodedRendition, EncodeInput, ThumbnailInput } from '../../common/transcode/rendition-encoding.ts';

export type { EncodedRendition, EncodeInput, ThumbnailInput };

export interface RenditionEncoder {
  /** The asked presets of one source segment; presets the source cannot give (at or above its height) are left out. */
  encode(input: EncodeInput, signal?: AbortSignal): Promise<EncodedRendition[]>;
  /** A JPEG of the segment's first keyframe. */
  thumbnail(input: ThumbnailInput, signal?: AbortSignal): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Why an encode gave nothing: the label of the missing-segment and request metrics. */
export type EncodeFailure = 'busy' | 'timeout' | 'refused' | 'unreachable' | 'cancelled' | 'error';

export class RenditionEncoderError extends Error {
  override name = 'RenditionEncoderError';
  constructor(
    message: string,
    readonly reason: EncodeFailure,
  ) {
    super(message);
  }
}
