// The LiveStream controller: informers on LiveStreams, key Secrets, claim
// Leases and the ingest StatefulSet feed two reconcile loops (reconcile-loop.ts):
// LiveStreams by their StreamRef, and the ingest capacity, on a queue and
// worker of its own. Workers run only while this replica is the elected
// leader. The HTTP side serves /metrics, /healthz and /readyz.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Secret, type V1StatefulSet } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../common/log.ts';
import { loadKubeConfig } from '../common/kube/client.ts';
import {
  CLAIM_SELECTOR,
  STREAM_KEY_SELECTOR,
  leasesPath,
  liveStreamsPath,
  parseClaimLeaseName,
  secretsPath,
  statefulSetsPath,
  LABEL_LIVESTREAM,
} from '../common/kube/contract.ts';
import { Informer } from '../common/kube/informer.ts';
import type { LeaseObject } from '../common/kube/lease.ts';
import { streamId, type StreamRef } from '../common/livestream.ts';
import { listenOn } from '../common/listen.ts';
import { closeServer, createProbeServer } from '../common/probe-server.ts';
import { S3Store } from '../common/storage/s3-store.ts';
import { CapacityManager } from './capacity.ts';
import type { ControllerConfig } from './config.ts';
import { EventRecorder } from './events.ts';
import { FreshCache } from './fresh-cache.ts';
import { LeaderElector } from './leader-election.ts';
import { ControllerMetrics } from './metrics.ts';
import { LiveStreamReconciler, type LiveStream, type MediaStore } from './reconciler.ts';
import { WebhookDispatcher } from './webhooks.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import type { RateLimiterOptions } from './workqueue.ts';

/** The capacity loop's one item: the ingest StatefulSet it sizes. */
interface CapacityItem {
  statefulSet: string;
}

export interface ControllerDeps {
  kc?: KubeConfig;
  log?: Logger;
  /** Replaces the S3 store built from config.s3 (tests). */
  store?: MediaStore;
  rateLimits?: RateLimiterOptions;
}

export interface RunningController {
  httpPort: number;
  metrics: ControllerMetrics;
  readonly isLeader: boolean;
  /** Resolves once every informer has its first list. */
  ready(): Promise<void>;
  shutdown(): Promise<void>;
}

export async function startController(config: ControllerConfig, deps: ControllerDeps = {}): Promise<RunningController> {
  const log = deps.log ?? createLogger('controller');
  const kc = deps.kc ?? loadKubeConfig();
  const metrics = new ControllerMetrics();
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const idle = config.informerIdleRelistMs;

  const lsInformer = new Informer<LiveStream>({ kc, path: liveStreamsPath(config.watchNamespace), log, idleRelistMs: idle });
  const secretInformer = new Informer<V1Secret>({ kc, path: secretsPath(config.watchNamespace), labelSelector: STREAM_KEY_SELECTOR, log, idleRelistMs: idle });
  const claimInformer = new Informer<LeaseObject>({ kc, path: leasesPath(config.ingest.namespace), labelSelector: CLAIM_SELECTOR, log, idleRelistMs: idle });
  const stsInformer = config.ingest.statefulSet
    ? new Informer<V1StatefulSet>({
        kc,
        path: statefulSetsPath(config.ingest.namespace),
        fieldSelector: `metadata.name=${config.ingest.statefulSet}`,
        log,
        idleRelistMs: idle,
      })
    : undefined;
  const informers: Array<[string, Informer<never>]> = [
    ['livestreams', lsInformer as unknown as Informer<never>],
    ['secrets', secretInformer as unknown as Informer<never>],
    ['leases', claimInformer as unknown as Informer<never>],
    ...(stsInformer ? [['statefulsets', stsInformer as unknown as Informer<never>] as [string, Informer<never>]] : []),
  ];
  const liveStreams = new FreshCache(lsInformer);
  const secrets = new FreshCache(secretInformer);

  let store: MediaStore | undefined = deps.store;
  if (!store && config.s3.bucket) {
    store = new S3Store({
      bucket: config.s3.bucket,
      region: config.s3.region,
      ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
      forcePathStyle: config.s3.forcePathStyle,
      requestTimeoutMs: config.s3.requestTimeoutMs,
    });
  }
  if (!store) log.warn('TTEOK_S3_BUCKET is not set: deleted LiveStreams keep their stored media');

  const events = new EventRecorder(core, 'tteok-controller', config.podName, log);
  const phases = new Map<string, string>();
  // Both loops reconcile only what the informers hold; the webhooks and the
  // reconciler report back by queueing a StreamRef.
  let reconciler: LiveStreamReconciler;
  const streamLoop = new ReconcileLoop<StreamRef>({
    kind: 'livestream',
    keyOf: streamId,
    metrics,
    log,
    ...(deps.rateLimits ? { rateLimits: deps.rateLimits } : {}),
    async reconcile(ref, failures) {
      const result = await reconciler.reconcile(ref, failures);
      if (result.phase) phases.set(streamId(ref), result.phase);
      else phases.delete(streamId(ref));
      return result;
    },
  });
  const capacityLoop = new ReconcileLoop<CapacityItem>({
    kind: 'capacity',
    keyOf: (item) => item.statefulSet,
    metrics,
    log,
    ...(deps.rateLimits ? { rateLimits: deps.rateLimits } : {}),
    reconcile: (item) =>
      capacity.reconcile({
        liveStreams: lsInformer.list(),
        claims: claimInformer.list(),
        statefulSet: stsInformer?.get(config.ingest.namespace, item.statefulSet),
      }),
  });
  const refOf = (obj: { metadata: { namespace?: string; name?: string } }): StreamRef => ({ namespace: obj.metadata.namespace!, name: obj.metadata.name! });
  // A delivery's outcome is written to the status by the LiveStream's next reconcile.
  const webhooks = new WebhookDispatcher({ kc, config: config.webhooks, metrics, events, log, onSettled: (ref) => streamLoop.queue.add(ref) });
  reconciler = new LiveStreamReconciler({ kc, custom, config, liveStreams, secrets, claims: claimInformer, store, events, log, webhooks });
  const capacity = new CapacityManager(kc, config.ingest, log, (n) => metrics.ingestReplicas.set(n));

  // Events → items. Everything is level-based: an item means "look at this again".
  const enqueueCapacity = () => {
    if (stsInformer) capacityLoop.queue.add({ statefulSet: config.ingest.statefulSet });
  };
  lsInformer.on((type, obj, old) => {
    streamLoop.queue.add(refOf(obj));
    if (type !== 'update' || obj.spec?.enabled !== old?.spec?.enabled || Boolean(obj.metadata.deletionTimestamp) !== Boolean(old?.metadata.deletionTimestamp))
      enqueueCapacity();
  });
  secretInformer.on((_type, obj) => {
    const name = obj.metadata?.labels?.[LABEL_LIVESTREAM];
    if (name && obj.metadata?.namespace) streamLoop.queue.add({ namespace: obj.metadata.namespace, name });
  });
  claimInformer.on((_type, obj) => {
    const ref = parseClaimLeaseName(obj.metadata.name);
    if (ref) streamLoop.queue.add(ref);
    enqueueCapacity();
  });
  stsInformer?.on(() => enqueueCapacity());

  const enqueueAll = () => {
    for (const ls of lsInformer.list()) streamLoop.queue.add(refOf(ls));
    enqueueCapacity();
  };

  let leading = false;
  let stopped = false;
  for (const [, inf] of informers) inf.start();
  const allSynced = Promise.all(informers.map(([, inf]) => inf.ready())).then(() => undefined);

  const onStartedLeading = () => {
    leading = true;
    metrics.leader.set(1);
    void allSynced.then(() => {
      if (!leading || stopped) return;
      enqueueAll();
      streamLoop.start(config.workers);
      if (stsInformer) capacityLoop.start(1);
    });
  };
  const onStoppedLeading = () => {
    leading = false;
    streamLoop.pause();
    capacityLoop.pause();
    metrics.leader.set(0);
    liveStreams.clear();
    secrets.clear();
    // The next leader delivers what is pending from the LiveStreams' status.
    webhooks.stop();
  };
  const elector = config.leaderElection.enabled
    ? new LeaderElector({
        kc,
        namespace: config.leaderElection.namespace,
        name: config.leaderElection.leaseName,
        identity: config.podName,
        leaseDurationMs: config.leaderElection.leaseDurationMs,
        renewDeadlineMs: config.leaderElection.renewDeadlineMs,
        retryPeriodMs: config.leaderElection.retryPeriodMs,
        log,
        onStartedLeading,
        onStoppedLeading,
        onNewLeader: (identity) => {
          if (identity !== config.podName) log.info({ leader: identity }, 'another replica leads; standing by');
        },
      })
    : undefined;
  if (elector) elector.start();
  else onStartedLeading();

  // Periodic: queue depth and phase gauges, informer re-list counts, and a full resync as a safety net.
  const sampleGauges = () => {
    metrics.queueDepth.set(streamLoop.queue.depth + capacityLoop.queue.depth);
  };
  const gauges = setInterval(() => {
    sampleGauges();
    metrics.streams.reset();
    const counts = new Map<string, number>();
    for (const p of phases.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    for (const [p, n] of counts) metrics.streams.set({ phase: p }, n);
    for (const [resource, inf] of informers) {
      metrics.countRelists(resource, 'gone', inf.stats.goneRelists);
      metrics.countRelists(resource, 'idle', inf.stats.idleRelists);
    }
  }, 1000);
  gauges.unref();
  const resync = config.resyncMs > 0 ? setInterval(() => leading && enqueueAll(), config.resyncMs) : undefined;
  resync?.unref();

  const http = createProbeServer(metrics.registry, {
    ready: () => informers.every(([, inf]) => inf.synced) && !stopped,
    details: () => ({ leader: leading }),
    beforeMetrics: sampleGauges,
  });
  const httpPort = await listenOn(http, config.httpPort, config.httpHost);
  log.info(
    { httpPort, identity: config.podName, leaderElection: config.leaderElection.enabled, ingestStatefulSet: config.ingest.statefulSet || undefined },
    'controller started',
  );

  return {
    httpPort,
    metrics,
    get isLeader() {
      return leading;
    },
    ready: () => allSynced,
    async shutdown() {
      if (stopped) return;
      stopped = true;
      clearInterval(gauges);
      if (resync) clearInterval(resync);
      // Finish in-flight reconciles, then hand leadership over at once.
      await Promise.all([streamLoop.shutDown(), capacityLoop.shutDown()]);
      webhooks.stop();
      await elector?.stop();
      leading = false;
      await Promise.all(informers.map(([, inf]) => inf.stop()));
      if (store instanceof S3Store) store.destroy();
      await closeServer(http);
      log.info('controller stopped');
    },
  };
}
