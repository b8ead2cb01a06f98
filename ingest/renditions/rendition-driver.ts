// One live run's renditions and thumbnails: takes each source segment the
// packager has written (its onSourceSegment event), has it encoded
// (RenditionEncoder: the transcoder role or local ffmpeg) and hands each
// rendition's segment back to the packager (addRenditionSegment) under the
// source segment's sequence number.
//
// At most one encode is in flight and one waits; a newer source segment
// replaces the waiting one, which is counted missing (superseded). A slow or
// saturated transcoder so loses old segments, never the live edge, and never
// holds anything of the source back: the source is written before this is
// told, and nothing here is awaited by the packager. Every failure is counted
// per rendition (tteok_ingest_rendition_segments_missing_total) and the next
// segment is tried afresh.
//
// Thumbnails: about every `intervalMs` of wall-clock time, the first keyframe
// of a source segment with video becomes thumbnail.jpg (one at a time).
import type { Logger } from '../../common/log.ts';
import type { StreamRef } from '../../common/livestream.ts';
import { initTracks } from '../../common/fmp4-boxes.ts';
import { renditionsOfSource } from '../../common/transcode/rendition-encoding.ts';
import type { RenditionMetrics } from './rendition-metrics.ts';
import { type EncodedRendition, type EncodeFailure, RenditionEncoderError, type RenditionEncoder } from './rendition-encoder.ts';
import type { ThumbnailSink } from './thumbnail-store.ts';
import type { SourceSegment } from '../packager/stream-packager.ts';

/** A source segment as the packager announces it once written and numbered (StreamPackagerOptions.onSourceSegment). */
export type SourceSegmentEvent = SourceSegment;

/** Where transcoded segments go: the packager (StreamPackager.addRenditionSegment). */
export interface RenditionSink {
  addRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): unknown;
}

export interface RenditionDriverOptions {
  ref: StreamRef;
  /** Presets to encode (the stream's `spec.renditions`); empty: thumbnails only. */
  renditions: readonly string[];
  encoder: RenditionEncoder;
  /** The packager; may be given later with attach(). */
  sink?: RenditionSink;
  /** Thumbnails every `intervalMs` (wall clock); omitted: none. */
  thumbnails?: { intervalMs: number; sink: ThumbnailSink };
  metrics: RenditionMetrics;
  log: Logger;
}

interface Pending {
  event: SourceSegmentEvent;
  /** performance.now() when the source segment was announced. */
  at: number;
}

export class RenditionDriver {
  private sink: RenditionSink | undefined;
  private inFlight: Promise<void> | undefined;
  private waiting: Pending | undefined;
  private thumbnailRunning = false;
  private lastThumbnailAt = -Infinity;
  private readonly hasVideo = new Map<string, boolean>();
  /** Per init segment: the renditions its source gives (never an upscale). */
  private readonly given = new Map<string, string[]>();
  private readonly cancel = new AbortController();
  private closed = false;
  /** Failure reasons logged at warn already: each once per stream, the rest at debug (a transcoder that is down would fill the log). */
  private readonly warned = new Set<string>();
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly options: RenditionDriverOptions) {
    this.sink = options.sink;
  }

  /** Gives the packager its transcoded segments go to (when it is made after the driver). */
  attach(sink: RenditionSink): void {
    this.sink = sink;
  }

  /** The packager's onSourceSegment: never throws, never waits. */
  readonly onSourceSegment = (event: SourceSegmentEvent): void => {
    if (this.closed) return;
    const at = performance.now();
    this.maybeThumbnail(event, at);
    if (this.options.renditions.length === 0) return;
    if (this.waiting) this.missing(this.waiting.event, 'superseded');
    this.waiting = { event, at };
    this.pump();
  };

  /** Resolves when no encode is in flight or waiting, and no thumbnail is being made. */
  idle(): Promise<void> {
    if (!this.inFlight && !this.waiting && !this.thumbnailRunning) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The run ended: what is in flight is cancelled, what waits is dropped (not counted: there is no playlist left to miss it). */
  async close(): Promise<void> {
    this.closed = true;
    this.waiting = undefined;
    this.cancel.abort();
    await this.inFlight;
  }

  private pump(): void {
    if (this.inFlight || !this.waiting) return;
    const next = this.waiting;
    this.waiting = undefined;
    this.inFlight = this.encode(next).finally(() => {
      this.inFlight = undefined;
      if (!this.closed) this.pump();
      this.settleIdle();
    });
  }

  private async encode({ event, at }: Pending): Promise<void> {
    const { metrics, log, ref } = this.options;
    let renditions: EncodedRendition[];
    try {
      renditions = await this.options.encoder.encode({ init: event.init, segment: event.data, presets: [...this.options.renditions] }, this.cancel.signal);
      metrics.transcoderRequests.inc({ kind: 'renditions', outcome: 'ok' });
    } catch (error) {
      const reason = failureOf(error);
      metrics.transcoderRequests.inc({ kind: 'renditions', outcome: reason });
      if (reason === 'cancelled') return;
      this.missing(event, reason);
      log.warn(
        { stream: `${ref.namespace}/${ref.name}`, sequence: event.sequence, reason, err: (error as Error).message },
        'renditions of a segment were not made',
      );
      return;
    }
    for (const r of renditions) {
      if (this.closed) return;
      try {
        await this.sink?.addRenditionSegment(r.rendition, event.sequence, r.init, r.segment);
        metrics.segmentLatency.observe({ rendition: r.rendition }, (performance.now() - at) / 1000);
      } catch (error) {
        log.error(
          { stream: `${ref.namespace}/${ref.name}`, rendition: r.rendition, sequence: event.sequence, err: error },
          'the packager did not take a rendition segment',
        );
      }
    }
  }

  private maybeThumbnail(event: SourceSegmentEvent, at: number): void {
    const thumbnails = this.options.thumbnails;
    if (!thumbnails || this.thumbnailRunning || at - this.lastThumbnailAt < thumbnails.intervalMs || !this.videoIn(event)) return;
    this.thumbnailRunning = true;
    this.lastThumbnailAt = at;
    const { metrics, ref } = this.options;
    void (async () => {
      try {
        const jpeg = await this.options.encoder.thumbnail({ init: event.init, segment: event.data }, this.cancel.signal);
        metrics.transcoderRequests.inc({ kind: 'thumbnail', outcome: 'ok' });
        if (!this.closed) await thumbnails.sink.storeThumbnail(ref, jpeg);
      } catch (error) {
        const reason = error instanceof RenditionEncoderError ? error.reason : 'error';
        if (error instanceof RenditionEncoderError) metrics.transcoderRequests.inc({ kind: 'thumbnail', outcome: reason });
        // A missed thumbnail is retried with the next segment, not in 10 s.
        this.lastThumbnailAt = -Infinity;
        if (reason !== 'cancelled')
          this.warnOnce(
            `thumbnail:${reason}`,
            { stream: `${ref.namespace}/${ref.name}`, reason, err: (error as Error).message },
            'thumbnail not made (logged once per reason and stream)',
          );
      } finally {
        this.thumbnailRunning = false;
        this.settleIdle();
      }
    })();
  }

  /** Whether the segment's init segment has a video track (an audio-only stream has no thumbnail). */
  private videoIn(event: SourceSegmentEvent): boolean {
    let video = this.hasVideo.get(event.initUri);
    if (video === undefined) {
      try {
        video = initTracks(event.init).some((t) => t.kind === 'video');
      } catch {
        video = false;
      }
      this.hasVideo.set(event.initUri, video);
    }
    return video;
  }

  /** The renditions this segment's source gives: those a failure leaves missing. */
  private givenBy(event: SourceSegmentEvent): string[] {
    let given = this.given.get(event.initUri);
    if (given === undefined) {
      try {
        given = renditionsOfSource(this.options.renditions, event.init);
      } catch {
        given = [...this.options.renditions];
      }
      this.given.set(event.initUri, given);
    }
    return given;
  }

  private missing(event: SourceSegmentEvent, reason: EncodeFailure | 'superseded'): void {
    for (const rendition of this.givenBy(event)) this.options.metrics.segmentsMissing.inc({ rendition, reason });
    this.options.log.debug({ sequence: event.sequence, reason }, 'rendition segments missing');
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) this.options.log.debug(fields, message);
    else {
      this.warned.add(key);
      this.options.log.warn(fields, message);
    }
  }

  private settleIdle(): void {
    if (this.inFlight || this.waiting || this.thumbnailRunning) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function failureOf(error: unknown): EncodeFailure {
  return error instanceof RenditionEncoderError ? error.reason : 'error';
}
