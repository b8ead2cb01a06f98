// What one admitted publish may make the ingest hold and produce, whatever
// its timestamps say. A publisher holds a valid key but is not trusted: on a
// pod shared by many streams, one must never be able to fill the memory of
// all (a fragment that never ends) or the object store's request budget
// (segments faster than real time).
//
// - The open fragment: media is held until the fragment is cut at a keyframe,
//   so its bytes and the time since the last video keyframe (the GOP) are
//   bounded. Timestamps that never advance never reach a cut: the byte bound
//   ends those.
// - Pacing: a real encoder produces media as time passes, so its media time
//   cannot run ahead of the wall clock by more than its start-up burst (the
//   frames it encoded while the publish was being admitted; the clock starts
//   at the publish command). Media time counts only forward steps of each
//   track's timestamps, so a timeline that jumps back and forth gains nothing.
// - Segments: every segment is a PUT and a playlist PUT. One that comes with
//   at least half a target duration of media time since the last is paced by
//   the rule above (a publisher catching up after a stall has all the
//   segments it fell behind by); any other (an init segment, a timeline that
//   restarts at every keyframe, composition offsets that leap while decode
//   times stand still) spends from a small bucket refilled at two per target
//   duration of wall-clock time.
//
// Each bound ends the publish with a PublishLimitError, whose message the
// RTMP layer sends to the streamer as the onStatus description.
import { PublishLimitError } from '../publish-errors.ts';

export interface PublishLimitSettings {
  /** Longest media time from one video keyframe to the next (or, audio-only, within a fragment). */
  maxGopSeconds: number;
  /** Most media bytes held for the fragment not yet cut. */
  maxFragmentBytes: number;
  /** How many of the stream's target durations media time may run ahead of the wall clock. */
  maxAheadSegments: number;
}

export const DEFAULT_PUBLISH_LIMITS: PublishLimitSettings = {
  // Above OBS's automatic keyframe interval (0 = 250 frames: 10.4 s at 24 fps).
  maxGopSeconds: 12,
  // 20 s of a 25 Mbps 4K stream; a 2 s GOP at any bitrate a streaming service takes.
  maxFragmentBytes: 64 * 1024 * 1024,
  maxAheadSegments: 3,
};

/** Segments without their media time (and init segments) per target duration, sustained; and the burst above it. */
const SEGMENTS_PER_TARGET = 2;
const SEGMENT_BURST = 10;

const KEYFRAME_ADVICE = 'In OBS set Settings > Output > Keyframe Interval to 2 s (not 0, "auto"), then reconnect.';
const PACE_ADVICE = 'Send media at its real pace (ffmpeg: -re before the input), then reconnect.';

interface TrackClock {
  /** Sum of the forward steps of the track's timestamps, in ms. */
  elapsedMs: number;
  lastDtsMs: number | undefined;
}

export class PublishLimits {
  private readonly clocks = { video: newClock(), audio: newClock() };
  private fragmentBytes = 0;
  /** The dts (ms) the current GOP began at: the last video keyframe, or an audio-only fragment's start. */
  private gopStartMs: number | undefined;
  private tokens = SEGMENT_BURST;
  private refilledAt: number;
  /** Media time (the furthest track's) when the last segment began. */
  private mediaAtLastSegmentMs = 0;

  constructor(
    private readonly settings: PublishLimitSettings,
    private readonly segmentSeconds: number,
    /** performance.now() when the publish was asked for: the wall clock media time is held to. */
    private readonly startedAt: number = performance.now(),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.refilledAt = startedAt;
  }

  /** Every audio or video packet, kept or not: media time may not run ahead of the wall clock. */
  pace(track: 'video' | 'audio', dtsMs: number): void {
    const clock = this.clocks[track];
    if (clock.lastDtsMs !== undefined && dtsMs > clock.lastDtsMs) clock.elapsedMs += dtsMs - clock.lastDtsMs;
    clock.lastDtsMs = dtsMs;
    const aheadMs = clock.elapsedMs - (this.now() - this.startedAt);
    const allowedMs = this.settings.maxAheadSegments * this.segmentSeconds * 1000;
    if (aheadMs > allowedMs) {
      throw new PublishLimitError(
        'ahead_of_real_time',
        `The stream's timestamps ran ${(aheadMs / 1000).toFixed(1)} s ahead of real time (at most ${allowedMs / 1000} s is allowed). ${PACE_ADVICE}`,
      );
    }
  }

  /** A video keyframe the fragmenter keeps: a new GOP begins. */
  keyframe(dtsMs: number): void {
    this.gopStartMs = dtsMs;
  }

  /** The fragmenter begins a new fragment (or, with `init`, a new init segment too). */
  fragmentStarted(dtsMs: number, options: { audioOnly?: boolean; init?: boolean } = {}): void {
    this.fragmentBytes = 0;
    if (options.audioOnly) this.gopStartMs = dtsMs;
    const mediaMs = Math.max(this.clocks.video.elapsedMs, this.clocks.audio.elapsedMs);
    const paced = mediaMs - this.mediaAtLastSegmentMs >= (this.segmentSeconds * 1000) / 2;
    this.mediaAtLastSegmentMs = mediaMs;
    if (options.init) this.take(2);
    else if (!paced) this.take(1);
  }

  /** A packet the fragmenter keeps in the open fragment. */
  hold(bytes: number, dtsMs: number): void {
    this.fragmentBytes += bytes;
    if (this.fragmentBytes > this.settings.maxFragmentBytes) {
      throw new PublishLimitError(
        'fragment_too_large',
        `More than ${Math.round(this.settings.maxFragmentBytes / 2 ** 20)} MiB of media arrived without a keyframe to cut a segment at (or with timestamps that do not advance). ${KEYFRAME_ADVICE}`,
      );
    }
    if (this.gopStartMs !== undefined && dtsMs - this.gopStartMs > this.settings.maxGopSeconds * 1000) {
      throw new PublishLimitError('gop_too_long', `No keyframe for more than ${this.settings.maxGopSeconds} s, so no segment can be cut. ${KEYFRAME_ADVICE}`);
    }
  }

  private take(count: number): void {
    const now = this.now();
    const perMs = SEGMENTS_PER_TARGET / (this.segmentSeconds * 1000);
    this.tokens = Math.min(SEGMENT_BURST, this.tokens + (now - this.refilledAt) * perMs);
    this.refilledAt = now;
    this.tokens -= count;
    if (this.tokens < 0) {
      throw new PublishLimitError(
        'segment_rate',
        `The stream makes segments faster than real time (more than ${SEGMENTS_PER_TARGET} per ${this.segmentSeconds} s segment target). ${PACE_ADVICE}`,
      );
    }
  }
}

function newClock(): TrackClock {
  return { elapsedMs: 0, lastDtsMs: undefined };
}
