// The tracks of a multitrack publish besides track 0, for the packager: each
// other video track `N` is the rendition `track<N>` of the run's ladder, cut
// by a fragmenter of its own on the source's timeline, and its segments are
// listed under the source segment they line up with (track-aligner.ts), in
// the packager's write chain (stream-packager.ts); other audio tracks are
// ignored.
import type { Logger } from '../../common/log.ts';
import { trackRendition } from '../../common/renditions.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import type { IngestMetrics } from '../metrics.ts';
import { Fragmenter } from './fragmenter.ts';
import type { PublishSessionHooks } from './publish-session.ts';
import { DEFAULT_PUBLISH_LIMITS, PublishLimits, type PublishLimitSettings } from './publish-limits.ts';
import { TrackAligner, type Misalignment, type NumberedSource, type TrackSegment } from './track-aligner.ts';
import type { RenditionSegmentOutcome } from './ladder-playlists.ts';

export interface MultitrackRenditionsOptions {
  ref: StreamRef;
  settings: StreamSettings;
  metrics: IngestMetrics;
  log: Logger;
  publishLimits: PublishLimitSettings | undefined;
  /**
   * The source's LL-HLS part duration: a track is cut by the same rules as
   * the source (every cut forced), so its segments line up with the source's
   * to the end. Its parts are not served (yet): its playlist stays plain.
   */
  partSeconds?: number;
  /** Makes the run a ladder; false when it cannot be one. */
  useLadder(): boolean;
  /** Runs `op` in the packager's write chain. */
  enqueue(op: () => Promise<void>): void;
  /** Lists a rendition's segment under the source's `sequence` (in the write chain). */
  writeRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): Promise<RenditionSegmentOutcome>;
}

export class MultitrackRenditions {
  private readonly aligner = new TrackAligner((segment, why) => this.misaligned(segment, why));
  private warnedMisaligned = false;

  constructor(private readonly options: MultitrackRenditionsOptions) {}

  /** What a publish session `sessionFolder` (cut by `source`) does with its tracks besides video and audio track 0. */
  sessionHooks(sessionFolder: string, source: Fragmenter, startedAt: number | undefined): PublishSessionHooks {
    const { log, ref } = this.options;
    return {
      onIgnoredTrack: (kind, trackId) =>
        log.info(
          { stream: streamId(ref), kind, trackId },
          kind === 'audio'
            ? `multitrack publish: audio track ${trackId} is ignored; audio track 0 is muxed into every rendition`
            : `multitrack publish: video track ${trackId} is ignored; this run continues a playlist written without a ladder`,
        ),
      openVideoTrack: (trackId) => this.open(sessionFolder, trackId, source, startedAt),
      onTrackFailed: (trackId, error) =>
        log.warn(
          { stream: streamId(ref), trackId, err: error.message },
          `multitrack publish: video track ${trackId} cannot be packaged and is closed; the other tracks go on`,
        ),
    };
  }

  /**
   * Another video track of a multitrack publish: the rendition `track<N>`,
   * cut by a fragmenter of its own on the source's timeline, muxed with the
   * audio of track 0, with publish limits of its own (so a publish holds at
   * most MAX_VIDEO_TRACKS times one track's bounds). Undefined (ignored) when
   * the run cannot be a ladder: it continues a playlist written without one.
   */
  private open(sessionFolder: string, trackId: number, source: Fragmenter, startedAt: number | undefined): Fragmenter | undefined {
    const { settings, metrics, log } = this.options;
    if (!this.options.useLadder()) return undefined;
    const rendition = trackRendition(trackId);
    const inits = new Map<number, Uint8Array>();
    const limits = new PublishLimits(this.options.publishLimits ?? DEFAULT_PUBLISH_LIMITS, settings.segmentSeconds, startedAt);
    log.info({ stream: streamId(this.options.ref), trackId, rendition }, `multitrack publish: video track ${trackId} is the rendition ${rendition}`);
    return new Fragmenter(
      settings.segmentSeconds,
      {
        onInit: (init, generation) => {
          inits.clear();
          inits.set(generation, init);
        },
        onSegment: (segment) => {
          const init = inits.get(segment.initGeneration);
          if (!init) return;
          const trackSegment: TrackSegment = { rendition, sessionFolder, init, data: segment.data, startDtsMs: segment.startDtsMs, duration: segment.duration };
          this.options.enqueue(async () => {
            this.aligner.add(trackSegment);
            await this.listAligned();
          });
        },
        onDroppedPacket: (reason) => metrics.droppedPackets.inc({ reason }),
        onMuxerError: (error) => {
          metrics.muxerRestarts.inc();
          log.warn({ stream: streamId(this.options.ref), trackId, err: error }, 'muxer failed on a multitrack video track; it restarts at its next keyframe');
        },
      },
      limits,
      source,
      this.options.partSeconds ?? 0,
    );
  }

  /** A source segment got its sequence number: the tracks' segments that line up with it are listed (in the write chain). */
  async sourceNumbered(source: NumberedSource): Promise<void> {
    this.aligner.sourceNumbered(source);
    await this.listAligned();
  }

  private async listAligned(): Promise<void> {
    for (const { segment, sequence } of this.aligner.take()) {
      const outcome = await this.options.writeRenditionSegment(segment.rendition, sequence, segment.init, segment.data);
      if (outcome !== 'refused') this.options.metrics.renditionSegments.inc({ rendition: segment.rendition, outcome });
    }
  }

  private misaligned(segment: TrackSegment, why: Misalignment): void {
    this.options.metrics.multitrackMisaligned.inc({ rendition: segment.rendition });
    if (this.warnedMisaligned) return;
    this.warnedMisaligned = true;
    this.options.log.warn(
      { stream: streamId(this.options.ref), rendition: segment.rendition, reason: why, startMs: segment.startDtsMs, seconds: segment.duration },
      "multitrack publish: a track's keyframes do not line up with track 0's; its segments that do not start and end where the source's do are left out (a gap in its playlist). Give every track the same keyframe interval",
    );
  }
}
