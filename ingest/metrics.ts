// The ingest's Prometheus metrics. No metric carries a stream key, and none
// carries a per-stream label: an ingest pod serves many streams and label
// cardinality must stay bounded. Per-stream views live in the gateway.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Sub-second resolution where the latency targets are, up to 30 s of outage.
const LATENCY_BUCKETS = [0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30];

export class IngestMetrics {
  readonly registry = new Registry();

  readonly segmentLatency = new Histogram({
    name: 'tteok_ingest_segment_latency_seconds',
    help: 'From a segment being complete on the media volume to the segment and a playlist naming it both stored.',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly uploadDuration = new Histogram({
    name: 'tteok_ingest_upload_duration_seconds',
    help: 'Duration of one successful object upload.',
    labelNames: ['kind'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly uploadFailures = new Counter({
    name: 'tteok_ingest_upload_failures_total',
    help: 'Failed upload attempts (each is retried until it succeeds).',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });

  readonly llBlockedRequests = new Gauge({
    name: 'tteok_ingest_ll_blocked_requests',
    help: 'LL-HLS requests waiting for the playlist or part they ask for (blocking reloads, preload hints), across streams.',
    registers: [this.registry],
  });

  readonly backlogSegments = new Gauge({
    name: 'tteok_ingest_upload_backlog_segments',
    help: 'Segments on the media volume not yet uploaded.',
    registers: [this.registry],
  });

  readonly backlogBytes = new Gauge({
    name: 'tteok_ingest_upload_backlog_bytes',
    help: 'Bytes of segments on the media volume not yet uploaded.',
    registers: [this.registry],
  });

  readonly liveStreams = new Gauge({
    name: 'tteok_ingest_live_streams',
    help: 'Streams with a publisher connected to this ingest.',
    registers: [this.registry],
  });

  readonly receivedBytes = new Counter({
    name: 'tteok_ingest_received_bytes_total',
    help: 'Bytes received from RTMP publishers.',
    registers: [this.registry],
  });

  readonly segmentDuration = new Histogram({
    name: 'tteok_ingest_segment_duration_seconds',
    help: 'Media duration of each segment written.',
    buckets: [0.5, 0.9, 1, 1.1, 1.5, 2, 3, 4, 6, 8, 10, 15, 20],
    registers: [this.registry],
  });

  readonly longSegments = new Counter({
    name: 'tteok_ingest_long_segments_total',
    help: 'Segments longer than 1.5x their target: the publisher keyframe interval is too long.',
    registers: [this.registry],
  });

  readonly publishes = new Counter({
    name: 'tteok_ingest_publishes_total',
    help: 'Publish attempts by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly droppedPackets = new Counter({
    name: 'tteok_ingest_dropped_packets_total',
    help: 'Media packets not packaged, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly muxerRestarts = new Counter({
    name: 'tteok_ingest_muxer_restarts_total',
    help: 'Times packaging restarted after a muxer error (each adds a discontinuity).',
    registers: [this.registry],
  });

  readonly idlePublishersDropped = new Counter({
    name: 'tteok_ingest_idle_publishers_dropped_total',
    help: 'Publishers disconnected for sending no media for TTEOK_PUBLISHER_IDLE_SECONDS (treated as dropped: reconnect grace, then the end).',
    registers: [this.registry],
  });

  readonly takeovers = new Counter({
    name: 'tteok_ingest_takeovers_total',
    help: 'Publishes admitted by taking over a stream whose publisher had gone silent, by where that publisher was (same_ingest, other_ingest).',
    labelNames: ['from'] as const,
    registers: [this.registry],
  });

  readonly rtmpConnections = new Gauge({
    name: 'tteok_ingest_rtmp_connections',
    help: 'Open RTMP connections, publishing or not.',
    registers: [this.registry],
  });

  readonly rtmpProtocolErrors = new Counter({
    name: 'tteok_ingest_rtmp_protocol_errors_total',
    help: 'RTMP connections closed for input outside the protocol or its limits, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rtmpConnectionsRefused = new Counter({
    name: 'tteok_ingest_rtmp_connections_refused_total',
    help: 'RTMP connections over a cap (server_full, address_full: refused at publish; over_capacity: closed at once).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rtmpDeadlineCloses = new Counter({
    name: 'tteok_ingest_rtmp_deadline_closes_total',
    help: 'RTMP connections closed for not publishing within the deadline, by the stage they had reached.',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });

  readonly rtmpsCertificateNotAfter = new Gauge({
    name: 'tteok_ingest_rtmps_certificate_expiry_timestamp_seconds',
    help: 'When the RTMPS certificate in use expires (Unix time, seconds); absent without RTMPS.',
    registers: [this.registry],
  });

  // The media volume: how full it is, and what could not be written to it.
  readonly mediaVolumeUsedBytes = new Gauge({
    name: 'tteok_ingest_media_volume_used_bytes',
    help: 'Bytes used on the media volume (statfs), whoever wrote them.',
    registers: [this.registry],
  });

  readonly mediaVolumeSizeBytes = new Gauge({
    name: 'tteok_ingest_media_volume_size_bytes',
    help: 'Usable size of the media volume (used + available to this process).',
    registers: [this.registry],
  });

  readonly mediaVolumeAboveHighWater = new Gauge({
    name: 'tteok_ingest_media_volume_above_high_water',
    help: '1 while the media volume is above TTEOK_MEDIA_HIGH_WATER_PERCENT: new publishes are refused and /readyz is not ready.',
    registers: [this.registry],
  });

  readonly mediaWriteFailures = new Counter({
    name: 'tteok_ingest_media_write_failures_total',
    help: 'Failed writes to the media volume, by kind of file (segment, init, playlist, journal).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly skippedSegments = new Counter({
    name: 'tteok_ingest_skipped_segments_total',
    help: 'Segments of live streams not written to the media volume (a discontinuity marks the gap), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  // The adaptive ladder (README "Adaptive ladder"): renditions besides the source, by rendition name (a bounded set).
  readonly renditionSegments = new Counter({
    name: 'tteok_ingest_rendition_segments_total',
    help: 'Segments of ladder renditions other than the source, by rendition and outcome (listed; late: its place was gone or marked a gap; skipped: the media volume could not take it).',
    labelNames: ['rendition', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly renditionGaps = new Counter({
    name: 'tteok_ingest_rendition_gaps_total',
    help: 'Segments a rendition playlist marks as a gap (EXT-X-GAP): the rendition had none for that stretch of the source in time.',
    labelNames: ['rendition'] as const,
    registers: [this.registry],
  });

  readonly multitrackMisaligned = new Counter({
    name: 'tteok_ingest_multitrack_misaligned_segments_total',
    help: "Segments of a multitrack publish's other video tracks left out because they do not start and end where track 0's segment does (keyframes not lined up), by rendition.",
    labelNames: ['rendition'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tteok_ingest_' });
  }
}
