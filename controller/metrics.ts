// The controller's Prometheus metrics, on its own Registry. No metric has a
// per-stream label.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();

  readonly reconcileDuration = new Histogram({
    name: 'tteok_controller_reconcile_duration_seconds',
    help: 'Duration of one reconcile, by what was reconciled and its result.',
    labelNames: ['kind', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly reconcileErrors = new Counter({
    name: 'tteok_controller_reconcile_errors_total',
    help: 'Reconciles that failed and were requeued with backoff.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'tteok_controller_queue_depth',
    help: 'Keys waiting in the work queue (not counting those in flight or waiting for a retry).',
    registers: [this.registry],
  });

  readonly leader = new Gauge({
    name: 'tteok_controller_leader',
    help: '1 while this replica is the leader and acts, 0 while it stands by.',
    registers: [this.registry],
  });

  readonly streams = new Gauge({
    name: 'tteok_controller_livestreams',
    help: 'LiveStreams by phase, as last reconciled.',
    labelNames: ['phase'] as const,
    registers: [this.registry],
  });

  readonly ingestReplicas = new Gauge({
    name: 'tteok_controller_ingest_replicas',
    help: 'Ingest StatefulSet replicas the controller last asked for.',
    registers: [this.registry],
  });

  readonly informerRelists = new Counter({
    name: 'tteok_controller_informer_relists_total',
    help: 'Informer re-lists since start, by cause (gone: 410 from a watch; idle: no event or bookmark for too long).',
    labelNames: ['resource', 'cause'] as const,
    registers: [this.registry],
  });
  /** The informers' own re-list counts last added to informerRelists, by "resource cause". */
  private readonly relistsCounted = new Map<string, number>();

  /** Brings informerRelists up to an informer's cumulative count (which only grows). */
  countRelists(resource: string, cause: 'gone' | 'idle', total: number): void {
    const key = `${resource} ${cause}`;
    const counted = this.relistsCounted.get(key);
    // An increment of 0 the first time makes the series exist (at 0) from the start.
    if (counted === undefined || total > counted) {
      this.informerRelists.inc({ resource, cause }, total - (counted ?? 0));
      this.relistsCounted.set(key, total);
    }
  }

  readonly webhookDeliveries = new Counter({
    name: 'tteok_controller_webhook_deliveries_total',
    help: 'Webhook delivery outcomes by event type: delivered (acknowledged with 2xx), failed (one attempt failed; retried with backoff), expired (given up at TTEOK_WEBHOOK_MAX_AGE_SECONDS), dropped (its webhook was removed, or the stream had too many undelivered events).',
    labelNames: ['event', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookPending = new Gauge({
    name: 'tteok_controller_webhook_pending_deliveries',
    help: 'Webhook deliveries not yet acknowledged (waiting for a retry or in flight), on this replica.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tteok_controller_' });
    this.leader.set(0);
  }
}
