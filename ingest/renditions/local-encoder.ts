// Renditions and thumbnails encoded by ffmpeg child processes of the ingest
// (TTEOK_TRANSCODER=local, the one-machine mode): the transcoder role's code
// without its HTTP. At most `maxJobs` run at once across streams (one more is
// refused as busy, as the role answers 503), so a machine with many streams
// loses renditions, never the source's CPU.
import { availableParallelism } from 'node:os';
import { FfmpegError } from '../../common/transcode/ffmpeg-process.ts';
import {
  DEFAULT_ENCODING_LIMITS,
  encodeRenditions,
  type EncodingLimits,
  makeThumbnail,
  UnusableMediaError,
} from '../../common/transcode/rendition-encoding.ts';
import { type EncodedRendition, type EncodeInput, RenditionEncoderError, type RenditionEncoder, type ThumbnailInput } from './rendition-encoder.ts';

export class LocalRenditionEncoder implements RenditionEncoder {
  private running = 0;
  private readonly limits: EncodingLimits;
  private readonly maxJobs: number;

  constructor(options: { ffmpeg?: string; timeoutMs?: number; maxInputBytes?: number; maxJobs?: number } = {}) {
    this.limits = {
      ffmpeg: options.ffmpeg ?? DEFAULT_ENCODING_LIMITS.ffmpeg,
      timeoutMs: options.timeoutMs ?? DEFAULT_ENCODING_LIMITS.timeoutMs,
      maxInputBytes: options.maxInputBytes ?? DEFAULT_ENCODING_LIMITS.maxInputBytes,
    };
    // At least two: a stream's thumbnail runs beside its encode.
    this.maxJobs = options.maxJobs ?? Math.max(2, availableParallelism());
  }

  encode(input: EncodeInput, signal?: AbortSignal): Promise<EncodedRendition[]> {
    return this.job((s) => encodeRenditions(input, this.limits, s), signal);
  }

  thumbnail(input: ThumbnailInput, signal?: AbortSignal): Promise<Uint8Array> {
    return this.job((s) => makeThumbnail(input, this.limits, s), signal);
  }

  async close(): Promise<void> {}

  private async job<T>(work: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running >= this.maxJobs) throw new RenditionEncoderError(`${this.maxJobs} ffmpeg jobs are running already`, 'busy');
    this.running++;
    try {
      return await work(signal);
    } catch (error) {
      if (error instanceof UnusableMediaError) throw new RenditionEncoderError(error.message, 'refused');
      if (error instanceof FfmpegError)
        throw new RenditionEncoderError(error.message, error.reason === 'timeout' ? 'timeout' : error.reason === 'aborted' ? 'cancelled' : 'error');
      throw error;
    } finally {
      this.running--;
    }
  }
}
