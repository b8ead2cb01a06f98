// Lines up the segments of a multitrack publish's other video tracks with the
// source's (track 0's). Each track is cut by a fragmenter of its own at its
// own keyframes, on the source's timeline (fragmenter.ts `timelineOf`); an
// encoder that puts every track's keyframes at the same times (OBS does; with
// ffmpeg, the same -g or -force_key_frames on every track) makes every track's
// segment N start at the same RTMP timestamp as the source's segment N and
// last as long. Such a segment is listed under the source's sequence number.
//
// One that does not line up — it starts where no source segment starts, or
// lasts longer or shorter than the source segment that starts there — is not
// written: its place in the rendition's playlist becomes a gap (EXT-X-GAP),
// so players switch to another rendition there rather than play a segment
// that does not cover what its playlist line says.
//
// Segments are matched in the packager's write chain, where the source's are
// numbered; a track's segment may come before the source's that it matches,
// so it waits here until the source's is numbered (boundedly).

export interface TrackSegment {
  rendition: string;
  sessionFolder: string;
  init: Uint8Array;
  data: Uint8Array;
  /** The RTMP timestamp of its first keyframe. */
  startDtsMs: number;
  duration: number;
}

export interface NumberedSource {
  sequence: number;
  sessionFolder: string;
  startDtsMs: number;
  duration: number;
}

/** Timestamps are whole milliseconds in RTMP, the same in every track of one encoder's publish; a little slack for rounding. */
const START_TOLERANCE_MS = 2;
/** A segment's duration comes from its media: a track's may differ from the source's by rounding, not by a frame. */
const DURATION_TOLERANCE_SECONDS = 0.02;
/** Source segments remembered for matching, and track segments waiting for theirs. */
const REMEMBERED_SOURCES = 16;
const MAX_WAITING = 64;

export type Misalignment = 'no_source_segment_starts_there' | 'different_duration';

export class TrackAligner {
  private readonly sources: NumberedSource[] = [];
  private waiting: TrackSegment[] = [];

  constructor(private readonly onMisaligned: (segment: TrackSegment, why: Misalignment) => void) {}

  /** A source segment was numbered. */
  sourceNumbered(source: NumberedSource): void {
    this.sources.push(source);
    if (this.sources.length > REMEMBERED_SOURCES) this.sources.shift();
  }

  /** A track's segment is complete. */
  add(segment: TrackSegment): void {
    this.waiting.push(segment);
    if (this.waiting.length > MAX_WAITING) this.onMisaligned(this.waiting.shift()!, 'no_source_segment_starts_there');
  }

  /** The waiting segments that line up with a numbered source segment, with its sequence number; the misaligned ones are reported and dropped. */
  take(): Array<{ segment: TrackSegment; sequence: number }> {
    const ready: Array<{ segment: TrackSegment; sequence: number }> = [];
    const still: TrackSegment[] = [];
    for (const segment of this.waiting) {
      const source = this.sources.find((s) => s.sessionFolder === segment.sessionFolder && Math.abs(s.startDtsMs - segment.startDtsMs) <= START_TOLERANCE_MS);
      if (source) {
        if (Math.abs(source.duration - segment.duration) <= DURATION_TOLERANCE_SECONDS) ready.push({ segment, sequence: source.sequence });
        else this.onMisaligned(segment, 'different_duration');
        continue;
      }
      const latest = this.sources.at(-1)!;
      const sessionSeen = this.sources.some((s) => s.sessionFolder === segment.sessionFolder);
      // The source has gone past it in its session (or on to the next session): no source segment will start there.
      if (sessionSeen && (latest.sessionFolder !== segment.sessionFolder || latest.startDtsMs > segment.startDtsMs + START_TOLERANCE_MS)) {
        this.onMisaligned(segment, 'no_source_segment_starts_there');
      } else still.push(segment);
    }
    this.waiting = still;
    return ready;
  }
}
