// One publisher's media, from RTMP message bodies to the fragmenter: decodes
// each FLV tag (legacy or Enhanced RTMP), takes the decoder configuration from
// the sequence headers and refuses codecs we cannot package with a message the
// streamer can act on.
import { parseAudioSpecificConfig } from '../media/aac.ts';
import { parseAv1CodecConfigurationRecord, withoutTemporalDelimiters } from '../media/av1.ts';
import { parseAudioTag, parseVideoTag, type AudioFormat, type VideoFormat, type VideoTrackTag } from '../media/flv-tag.ts';
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

/**
 * The most video tracks one multitrack publish may send (ids 0 to 7): each
 * is packaged with its own fragmenter and publish limits, so this bounds
 * what one publish may hold. OBS sends up to five.
 */
export const MAX_VIDEO_TRACKS = 8;

export interface PublishSessionHooks {
  /**
   * An Enhanced RTMP multitrack publish sent tracks besides the default one
   * (track 0, which is packaged) that are not packaged; called once per track id and kind.
   */
  onIgnoredTrack?(kind: 'video' | 'audio', trackId: number): void;
  /**
   * Another video track of a multitrack publish sent its configuration: the
   * fragmenter to package it with (muxed with audio track 0), or undefined
   * to ignore it. Called once per track id.
   */
  openVideoTrack?(trackId: number): Fragmenter | undefined;
  /** A video track other than track 0 cannot be packaged (its codec or configuration, or a publish limit): it is closed; track 0 goes on. */
  onTrackFailed?(trackId: number, error: Error): void;
}

/** Another video track of a multitrack publish: its fragmenter (undefined when ignored) and state. */
interface VideoTrackInput {
  fragmenter: Fragmenter | undefined;
  format: VideoFormat | undefined;
  failed: boolean;
}

export class PublishSession {
  private videoFormat: VideoFormat | undefined;
  private audioFormat: AudioFormat | undefined;
  private audioConfig: AudioConfig | undefined;
  private readonly ignoredTracks = new Set<string>();
  /** The other video tracks of a multitrack publish, by id, from their first configuration on. */
  private readonly videoTracks = new Map<number, VideoTrackInput>();

  constructor(
    readonly id: string,
    private readonly fragmenter: Fragmenter,
    private readonly hooks: PublishSessionHooks = {},
  ) {}

  /** Feeds one RTMP video message. Throws UnsupportedMediaError for media we cannot package. */
  video(timestampMs: number, body: Uint8Array, arrivedAt: number): void {
    const tag = parseVideoTag(body);
    this.videoTrack0(timestampMs, tag, arrivedAt);
    if (tag.trackTags) for (const other of tag.trackTags) this.otherVideoTrack(other.trackId, timestampMs, other.tag, arrivedAt);
  }

  private videoTrack0(timestampMs: number, tag: VideoTrackTag, arrivedAt: number): void {
    // Its fragmenter drops frames before the first keyframe itself, configured or not.
    this.videoFormat = feedVideoTag(this.fragmenter, this.videoFormat, tag, timestampMs, arrivedAt, false);
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
        this.audioConfig = config;
        this.fragmenter.setAudioConfig(config);
        for (const [trackId, track] of this.videoTracks) this.onTrack(trackId, track, (f) => f.setAudioConfig(config));
        return;
      }
      case 'audio-frame':
        if (this.audioFormat !== undefined && tag.codec !== this.audioFormat) return;
        this.fragmenter.audio(timestampMs, tag.data);
        // Audio track 0 is muxed into every rendition.
        for (const [trackId, track] of this.videoTracks) this.onTrack(trackId, track, (f) => f.audio(timestampMs, tag.data));
        return;
      case 'audio-unsupported':
        throw new UnsupportedMediaError(`audio codec ${tag.codecName} is not supported; ${AUDIO_ADVICE}`);
      default:
        return;
    }
  }

  /** Flushes the last segment (of every track). */
  async close(): Promise<void> {
    await Promise.all([this.fragmenter.close(), ...[...this.videoTracks.values()].map((t) => t.fragmenter?.close())]);
  }

  /**
   * A payload of another video track. It is opened by its first
   * configuration (frames of a track that sent none are ignored); what
   * cannot be packaged closes that track alone.
   */
  private otherVideoTrack(trackId: number, timestampMs: number, tag: VideoTrackTag, arrivedAt: number): void {
    let track = this.videoTracks.get(trackId);
    if (!track) {
      if (tag.kind !== 'video-config') return;
      if (trackId >= MAX_VIDEO_TRACKS) {
        throw new UnsupportedMediaError(
          `multitrack publish with video track ${trackId}: at most ${MAX_VIDEO_TRACKS} video tracks (ids 0 to ${MAX_VIDEO_TRACKS - 1}) are accepted; send fewer (OBS: Settings > Stream > Maximum Video Tracks)`,
        );
      }
      // Its configuration is read before the track is opened: a track that cannot be packaged changes nothing.
      let config: VideoConfig;
      try {
        config = VIDEO_PARSERS[tag.codec](tag.record);
      } catch (error) {
        this.videoTracks.set(trackId, { fragmenter: undefined, format: undefined, failed: true });
        this.hooks.onTrackFailed?.(trackId, new UnsupportedMediaError(`unreadable ${VIDEO_NAMES[tag.codec]} sequence header: ${(error as Error).message}`));
        return;
      }
      const fragmenter = this.hooks.openVideoTrack?.(trackId);
      track = { fragmenter, format: tag.codec, failed: false };
      this.videoTracks.set(trackId, track);
      if (!fragmenter) {
        this.noteIgnoredTracks('video', [trackId]);
        return;
      }
      const audio = this.audioConfig;
      this.onTrack(trackId, track, (f) => {
        f.setVideoConfig(config);
        if (audio) f.setAudioConfig(audio);
      });
      return;
    }
    this.onTrack(trackId, track, (fragmenter) => {
      track.format = feedVideoTag(fragmenter, track.format, tag, timestampMs, arrivedAt, true);
    });
  }

  /** Runs `step` on an open track's fragmenter; a failure closes that track (track 0 goes on) and is reported once. */
  private onTrack(trackId: number, track: VideoTrackInput, step: (fragmenter: Fragmenter) => void): void {
    const fragmenter = track.fragmenter;
    if (!fragmenter || track.failed) return;
    try {
      step(fragmenter);
    } catch (error) {
      track.failed = true;
      void fragmenter.close().catch(() => undefined);
      this.hooks.onTrackFailed?.(trackId, error as Error);
    }
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

/**
 * Feeds one track's video tag to its fragmenter and returns the track's codec
 * (the one its configuration set, else the one it had). Frames of another
 * codec than the configuration's cannot be decoded with it and are dropped,
 * as are frames before any configuration when `configFirst`.
 */
function feedVideoTag(
  fragmenter: Fragmenter,
  format: VideoFormat | undefined,
  tag: VideoTrackTag,
  timestampMs: number,
  arrivedAt: number,
  configFirst: boolean,
): VideoFormat | undefined {
  switch (tag.kind) {
    case 'video-config': {
      let config: VideoConfig;
      try {
        config = VIDEO_PARSERS[tag.codec](tag.record);
      } catch (error) {
        throw new UnsupportedMediaError(`unreadable ${VIDEO_NAMES[tag.codec]} sequence header: ${(error as Error).message}`);
      }
      fragmenter.setVideoConfig(config);
      return tag.codec;
    }
    case 'video-frame':
      if (format === undefined ? configFirst : tag.codec !== format) return format;
      fragmenter.video(timestampMs, tag.compositionOffsetMs, tag.keyframe, tag.codec === 'av1' ? withoutTemporalDelimiters(tag.data) : tag.data, arrivedAt);
      return format;
    case 'video-unsupported':
      throw new UnsupportedMediaError(`video codec ${tag.codecName} is not supported; ${VIDEO_ADVICE}`);
    default:
      return format;
  }
}
