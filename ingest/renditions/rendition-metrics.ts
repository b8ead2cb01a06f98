// The ingest's metrics of renditions and thumbnails, in the ingest's
// registry. Labels are bounded: rendition names are the presets'
// (common/renditions.ts), reasons and outcomes a fixed few; no stream labels.
import { Counter, Histogram, type Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 20, 30];

export class RenditionMetrics {
  readonly segmentLatency: Histogram<'rendition'>;
  readonly segmentsMissing: Counter<'rendition' | 'reason'>;
  readonly transcoderRequests: Counter<'kind' | 'outcome'>;

  constructor(registry: Registry) {
    this.segmentLatency = new Histogram({
      name: 'tteok_ingest_rendition_segment_latency_seconds',
      help: "From a source segment being written to each of its transcoded renditions' segments being handed to the packager.",
      labelNames: ['rendition'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.segmentsMissing = new Counter({
      name: 'tteok_ingest_rendition_segments_missing_total',
      help: 'Transcoded rendition segments that were not made, by rendition and reason (superseded: a newer source segment came while it waited; busy, timeout, refused, unreachable, error: the encode failed).',
      labelNames: ['rendition', 'reason'] as const,
      registers: [registry],
    });
    this.transcoderRequests = new Counter({
      name: 'tteok_ingest_transcoder_requests_total',
      help: 'Encodes asked of the transcoder (or of local ffmpeg), by kind (renditions, thumbnail) and outcome (ok, busy, timeout, refused, unreachable, cancelled, error).',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    });
  }
}
