// One publisher's media, from RTMP message bodies to the fragmenter: decodes
// each FLV tag (legacy or Enhanced RTMP), takes the decoder configuration from
// the sequence headers and refuses codecs we cannot package with a message the
// streamer can act on.
import { parseAudioSpecificConfig } from '../media/aac.ts';
import { parseAv1CodecConfigurationRecord, withoutTemporalDelimiters } from '../media/av1.ts';
import { parseAudioTag, parseVideoTag, type AudioFormat, type VideoFormat } from '../media/flv-tag.ts';
import { parseAvcDecoderConfigurationRecord } from '../media/h264.ts';
import { parseHevcDecoderConfigurationRecord } from '../media/hevc.ts';
import type { AudioConfig, VideoConfig } from '../media/media-config.ts';
import { parseOpusHead } from '../media/opus.ts';
import type { Fragmenter } from './fragmenter.ts';
import { UnsupportedMediaError } from '../publish-errors.ts';

/** What to tell a streamer whose encoder sends something we cannot package (OBS's own setting names). */
const VIDEO_ADVICE = 'set Settings > Output > Video Encoder to H.264 (x264 or a hardware H.264 encoder), HEVC or AV1';
const AUDIO_ADVICE = 'set Settings > Output > Audio Encoder to AAC (or Opus)';

const VIDEO_NAMES: Record<VideoFormat, string> = { avc: 'H.264', hevc: 'HEVC', av1: 'AV1' };
const AUDIO_NAMES: Record<AudioFormat, string> = { aac: 'AAC', opus: 'Opus' };

const VIDEO_PARSERS: Record<VideoFormat, (record: Uint8Array) => VideoConfig> = {
  avc: parseAvcDecoderConfigurationRecord,
  hevc: parseHevcDecoderConfigurationRecord,
  av1: parseAv1CodecConfigurationRecord,
};
const AUDIO_PARSERS: Record<AudioFormat, (config: Uint8Array) => AudioConfig> = {
  aac: parseAudioSpecificConfig,
  opus: parseOpusHead,
};

export interface PublishSessionHooks {
  /**
   * An Enhanced RTMP multitrack publish sent tracks besides the default one
   * (track 0, which is packaged); called once per track id and kind.
   */
  onIgnoredTrack?(kind: 'video' | 'audio', trackId: number): void;
}

export class PublishSession {
  private videoFormat: VideoFormat | undefined;
  private audioFormat: AudioFormat | undefined;
  private readonly ignoredTracks = new Set<string>();

  constructor(
    readonly id: string,
    private readonly fragmenter: Fragmenter,
    private readonly hooks: PublishSessionHooks = {},
  ) {}

  /** Feeds one RTMP video message. Throws UnsupportedMediaError for media we cannot package. */
  video(timestampMs: number, body: Uint8Array, arrivedAt: number): void {
    const tag = parseVideoTag(body);
    this.noteIgnoredTracks('video', tag.otherTracks);
    switch (tag.kind) {
      case 'video-config': {
        let config: VideoConfig;
        try {
          config = VIDEO_PARSERS[tag.codec](tag.record);
        } catch (error) {
          throw new UnsupportedMediaError(`unreadable ${VIDEO_NAMES[tag.codec]} sequence header: ${(error as Error).message}`);
        }
        this.videoFormat = tag.codec;
        this.fragmenter.setVideoConfig(config);
        return;
      }
      case 'video-frame':
        // Frames of another codec than the sequence header's cannot be decoded with it.
        if (this.videoFormat !== undefined && tag.codec !== this.videoFormat) return;
        this.fragmenter.video(
          timestampMs,
          tag.compositionOffsetMs,
          tag.keyframe,
          tag.codec === 'av1' ? withoutTemporalDelimiters(tag.data) : tag.data,
          arrivedAt,
        );
        return;
      case 'video-unsupported':
        throw new UnsupportedMediaError(`video codec ${tag.codecName} is not supported; ${VIDEO_ADVICE}`);
      default:
        return;
    }
  }

  audio(timestampMs: number, body: Uint8Array): void {
    const tag = parseAudioTag(body);
    this.noteIgnoredTracks('audio', tag.otherTracks);
    switch (tag.kind) {
      case 'audio-config': {
        let config: AudioConfig;
        try {
          config = AUDIO_PARSERS[tag.codec](tag.config);
        } catch (error) {
          throw new UnsupportedMediaError(`unreadable ${AUDIO_NAMES[tag.codec]} sequence header: ${(error as Error).message}`);
        }
        this.audioFormat = tag.codec;
        this.fragmenter.setAudioConfig(config);
        return;
      }
      case 'audio-frame':
        if (this.audioFormat !== undefined && tag.codec !== this.audioFormat) return;
        this.fragmenter.audio(timestampMs, tag.data);
        return;
      case 'audio-unsupported':
        throw new UnsupportedMediaError(`audio codec ${tag.codecName} is not supported; ${AUDIO_ADVICE}`);
      default:
        return;
    }
  }

  /** Flushes the last segment. */
  close(): Promise<void> {
    return this.fragmenter.close();
  }

  private noteIgnoredTracks(kind: 'video' | 'audio', trackIds: number[] | undefined): void {
    if (trackIds === undefined) return; // nearly every message: nothing to allocate
    for (const trackId of trackIds) {
      const key = `${kind}:${trackId}`;
      if (this.ignoredTracks.has(key)) continue;
      this.ignoredTracks.add(key);
      this.hooks.onIgnoredTrack?.(kind, trackId);
    }
  }
}
