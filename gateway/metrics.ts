// The gateway's Prometheus metrics, in a registry of its own (prefix
// tteok_gateway_), so a gateway in the same process as an ingest (the
// one-machine mode) exports only its own.
//
// Per-stream labels (namespace, name) are bounded: at most `maxStreams`
// streams hold their own label set at once. A stream takes a free slot when
// it starts being followed (or later, at an observation, once one is free),
// keeps it while live and for RELEASE_AFTER_MS after it ended (so the last
// scrapes see its final counts), and the slot is then freed and its series
// removed. Streams beyond the cap
// are aggregated under namespace="_other", name="_other" (an underscore is
// never valid in a namespace, so this cannot collide with a real stream).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { streamId, type StreamRef } from '../common/livestream.ts';
import { RequestDurationHistogram } from './request-durations.ts';

export const OTHER = '_other';
export const RELEASE_AFTER_MS = 5 * 60_000;

// Sub-second resolution where the latency targets are (1 s segments), up to 30 s.
const LATENCY_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 7.5, 10, 30];
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type StreamLabels = { namespace: string; name: string };

interface Slot {
  labels: StreamLabels;
  /** When the stream stopped being followed; undefined while live. */
  endedAt: number | undefined;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly slots = new Map<string, Slot>();
  /** Streams being followed now. */
  private readonly followed = new Set<string>();
  /** Newest segment end (PDT + duration, ms) of every followed stream, for the staleness gauge. */
  private readonly newestEnd = new Map<string, { labels: StreamLabels; at: number }>();

  /** Observed on every request, lookups included: kept in plain counters (request-durations.ts). */
  readonly requestDuration = new RequestDurationHistogram({
    name: 'tteok_gateway_http_request_duration_seconds',
    help: 'Duration of HTTP requests by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });

  readonly segmentLatency = new Histogram({
    name: 'tteok_gateway_segment_latency_seconds',
    help:
      'For each segment first seen in a live playlist fetched through the playback URL: now - (EXT-X-PROGRAM-DATE-TIME + segment duration). ' +
      'Includes up to one follow interval of polling delay, as a viewer polling the playlist has.',
    labelNames: ['namespace', 'name'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly playlistStaleness = new Gauge({
    name: 'tteok_gateway_playlist_staleness_seconds',
    help: 'How old the live edge is: now - end (PDT + duration) of the newest segment in the last playlist fetched. Streams over the label cap report their maximum under _other.',
    labelNames: ['namespace', 'name'] as const,
    registers: [this.registry],
    collect: () => this.collectStaleness(),
  });

  readonly followFailures = new Counter({
    name: 'tteok_gateway_follow_failures_total',
    help: 'Failed playlist fetches while following live streams, by reason (not_found is normal for a moment after going live).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly followedStreams: Gauge = new Gauge({
    name: 'tteok_gateway_followed_streams',
    help: 'Live streams whose playlist the gateway follows.',
    registers: [this.registry],
    collect: (): void => this.followedStreams.set(this.followed.size),
  });

  readonly overflowStreams: Gauge = new Gauge({
    name: 'tteok_gateway_metrics_overflow_streams',
    help: 'Followed streams beyond TTEOK_METRICS_MAX_STREAMS, aggregated under namespace="_other", name="_other".',
    registers: [this.registry],
    collect: (): void => this.overflowStreams.set([...this.followed].filter((id) => !this.slots.has(id)).length),
  });

  /** The LL origin (plugins/low-latency.ts): what each request cost upstream. */
  readonly llRequests = new Counter({
    name: 'tteok_gateway_ll_requests_total',
    help: 'Requests the LL origin answered from a holder, by outcome: upstream (a new request to the ingest), collapsed (shared one in flight), no_holder (404).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly llUpstreamFailures = new Counter({
    name: 'tteok_gateway_ll_upstream_failures_total',
    help: 'Requests to a holding ingest that failed, by reason: timeout (TTEOK_LL_UPSTREAM_TIMEOUT_MS, answered 504) or unreachable (502).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(readonly maxStreams = 100) {
    collectDefaultMetrics({ register: this.registry, prefix: 'tteok_gateway_' });
  }

  /** The labels a stream's series use: its own while a slot is free, else the aggregate. */
  labelsFor(ref: StreamRef): StreamLabels {
    const id = streamId(ref);
    const slot = this.slots.get(id);
    if (slot) {
      slot.endedAt = undefined;
      return slot.labels;
    }
    if (this.slots.size < this.maxStreams) {
      const labels = { namespace: ref.namespace, name: ref.name };
      this.slots.set(id, { labels, endedAt: undefined });
      return labels;
    }
    return { namespace: OTHER, name: OTHER };
  }

  /** The gateway started following the stream: it takes a free slot now, if there is one. */
  streamFollowed(ref: StreamRef): void {
    this.followed.add(streamId(ref));
    this.labelsFor(ref);
  }

  observeSegment(ref: StreamRef, latencySeconds: number): void {
    this.segmentLatency.observe(this.labelsFor(ref), Math.max(0, latencySeconds));
  }

  /** The end of the newest segment in the stream's playlist, as of the last fetch. */
  setNewestSegmentEnd(ref: StreamRef, endMs: number): void {
    this.newestEnd.set(streamId(ref), { labels: this.labelsFor(ref), at: endMs });
  }

  /** The gateway stopped following the stream (it is no longer live). */
  streamEnded(ref: StreamRef, now = Date.now()): void {
    const id = streamId(ref);
    this.followed.delete(id);
    this.newestEnd.delete(id);
    const slot = this.slots.get(id);
    if (slot && slot.endedAt === undefined) slot.endedAt = now;
  }

  /** Frees the slots of streams that ended more than RELEASE_AFTER_MS ago and removes their series. */
  releaseEnded(now = Date.now(), releaseAfterMs = RELEASE_AFTER_MS): void {
    for (const [id, slot] of this.slots) {
      if (slot.endedAt !== undefined && now - slot.endedAt >= releaseAfterMs) {
        this.slots.delete(id);
        this.segmentLatency.remove(slot.labels);
        this.playlistStaleness.remove(slot.labels);
      }
    }
  }

  private collectStaleness(): void {
    const now = Date.now();
    this.playlistStaleness.reset();
    let other: number | undefined;
    for (const { labels, at } of this.newestEnd.values()) {
      const seconds = Math.max(0, (now - at) / 1000);
      if (labels.namespace === OTHER) other = Math.max(other ?? 0, seconds);
      else this.playlistStaleness.set(labels, seconds);
    }
    if (other !== undefined) this.playlistStaleness.set({ namespace: OTHER, name: OTHER }, other);
  }
}
