// One publisher's media, from RTMP message bodies to the fragmenter: decodes
// each FLV tag, takes the decoder configuration from the sequence headers and
// refuses codecs we cannot package with a message the streamer can act on.
import { parseAudioSpecificConfig } from '../media/aac.ts';
import { parseAudioTag, parseVideoTag } from '../media/flv-tag.ts';
import { parseAvcDecoderConfigurationRecord } from '../media/h264.ts';
import type { Fragmenter } from './fragmenter.ts';

export class UnsupportedMediaError extends Error {
  override name = 'UnsupportedMediaError';
}

export class PublishSession {
  constructor(
    readonly id: string,
    private readonly fragmenter: Fragmenter,
  ) {}

  /** Feeds one RTMP video message. Throws UnsupportedMediaError for media we cannot package. */
  video(timestampMs: number, body: Uint8Array, arrivedAt: number): void {
    const tag = parseVideoTag(body);
    switch (tag.kind) {
      case 'video-config': {
        let config;
        try {
          config = parseAvcDecoderConfigurationRecord(tag.record);
        } catch (error) {
          throw new UnsupportedMediaError(`unreadable H.264 sequence header: ${(error as Error).message}`);
        }
        this.fragmenter.setVideoConfig(config);
        return;
      }
      case 'video-frame':
        this.fragmenter.video(timestampMs, tag.compositionOffsetMs, tag.keyframe, tag.data, arrivedAt);
        return;
      case 'video-unsupported':
        throw new UnsupportedMediaError(`video codec ${tag.codecName} is not supported; set the encoder to H.264 (x264 or a hardware H.264 encoder)`);
      default:
        return;
    }
  }

  audio(timestampMs: number, body: Uint8Array): void {
    const tag = parseAudioTag(body);
    switch (tag.kind) {
      case 'audio-config': {
        let config;
        try {
          config = parseAudioSpecificConfig(tag.config);
        } catch (error) {
          throw new UnsupportedMediaError(`unreadable AAC sequence header: ${(error as Error).message}`);
        }
        this.fragmenter.setAudioConfig(config);
        return;
      }
      case 'audio-frame':
        this.fragmenter.audio(timestampMs, tag.data);
        return;
      case 'audio-unsupported':
        throw new UnsupportedMediaError(`audio codec ${tag.codecName} is not supported; set the audio encoder to AAC`);
      default:
        return;
    }
  }

  /** Flushes the last segment. */
  close(): Promise<void> {
    return this.fragmenter.close();
  }
}
