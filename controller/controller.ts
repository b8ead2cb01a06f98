// The LiveStream controller: informers on LiveStreams, key Secrets, claim
// Leases and the ingest StatefulSet feed one work queue; workers reconcile
// one key at a time each (a LiveStream "namespace/name", or the capacity
// key), only while this replica is the elected leader. The HTTP side serves
// /metrics, /healthz and /readyz.
import { createServer, type Server } from 'node:http';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Secret, type V1StatefulSet } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../common/log.ts';
import { errorMessage, loadKubeConfig } from '../common/kube/client.ts';
import { CLAIM_SELECTOR, STREAM_KEY_SELECTOR, leasesPath, liveStreamsPath, parseClaimLeaseName, secretsPath, statefulSetsPath, LABEL_LIVESTREAM } from '../common/kube/contract.ts';
import { Informer } from '../common/kube/informer.ts';
import type { LeaseObject } from '../common/kube/lease.ts';
import { S3Store } from '../ingest/storage/s3-store.ts';
import { CapacityManager } from './capacity.ts';
import type { ControllerConfig } from './config.ts';
import { EventRecorder } from './events.ts';
import { FreshCache } from './fresh-cache.ts';
import { LeaderElector } from './leader-election.ts';
import { ControllerMetrics } from './metrics.ts';
import { LiveStreamReconciler, type LiveStream, type MediaStore } from './reconciler.ts';
import { WebhookDispatcher } from './webhooks.ts';
import { WorkQueue, type RateLimiterOptions } from './workqueue.ts';

export const CAPACITY_KEY = '#capacity';

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
    ? new Informer<V1StatefulSet>({ kc, path: statefulSetsPath(config.ingest.namespace), fieldSelector: `metadata.name=${config.ingest.statefulSet}`, log, idleRelistMs: idle })
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
  const queue = new WorkQueue(deps.rateLimits);
  // A delivery's outcome is written to the status by the LiveStream's next reconcile.
  const webhooks = new WebhookDispatcher({ kc, config: config.webhooks, metrics, events, log, onSettled: (ref) => queue.add(`${ref.namespace}/${ref.name}`) });
  const reconciler = new LiveStreamReconciler({ kc, custom, config, liveStreams, secrets, claims: claimInformer, store, events, log, webhooks });
  const capacity = new CapacityManager(kc, config.ingest, log, (n) => metrics.ingestReplicas.set(n));
  const lastErrors = new Map<string, string>();
  const phases = new Map<string, string>();

  // Events → keys. Everything is level-based: a key means "look at this again".
  const enqueueCapacity = () => {
    if (stsInformer) queue.add(CAPACITY_KEY);
  };
  lsInformer.on((type, obj, old) => {
    queue.add(`${obj.metadata.namespace}/${obj.metadata.name}`);
    if (type !== 'update' || obj.spec?.enabled !== old?.spec?.enabled || Boolean(obj.metadata.deletionTimestamp) !== Boolean(old?.metadata.deletionTimestamp)) enqueueCapacity();
  });
  secretInformer.on((_type, obj) => {
    const name = obj.metadata?.labels?.[LABEL_LIVESTREAM];
    if (name && obj.metadata?.namespace) queue.add(`${obj.metadata.namespace}/${name}`);
  });
  claimInformer.on((_type, obj) => {
    const ref = parseClaimLeaseName(obj.metadata.name);
    if (ref) queue.add(`${ref.namespace}/${ref.name}`);
    enqueueCapacity();
  });
  stsInformer?.on(() => enqueueCapacity());

  const enqueueAll = () => {
    for (const ls of lsInformer.list()) queue.add(`${ls.metadata.namespace}/${ls.metadata.name}`);
    enqueueCapacity();
  };

  async function processKey(key: string): Promise<void> {
    const kind = key === CAPACITY_KEY ? 'capacity' : 'livestream';
    log.debug({ item: key }, 'reconcile start');
    const end = metrics.reconcileDuration.startTimer({ kind });
    try {
      let requeueAfterMs: number | undefined;
      if (key === CAPACITY_KEY) {
        ({ requeueAfterMs } = await capacity.reconcile({
          liveStreams: lsInformer.list(),
          claims: claimInformer.list(),
          statefulSet: stsInformer?.get(config.ingest.namespace, config.ingest.statefulSet),
        }));
      } else {
        const [namespace, name] = key.split('/') as [string, string];
        const result = await reconciler.reconcile({ namespace, name }, { count: queue.limiter.retries(key), ...(lastErrors.has(key) ? { lastError: lastErrors.get(key)! } : {}) });
        requeueAfterMs = result.requeueAfterMs;
        if (result.phase) phases.set(key, result.phase);
        else phases.delete(key);
      }
      end({ result: 'success' });
      queue.forget(key);
      lastErrors.delete(key);
      if (requeueAfterMs !== undefined) queue.addAfter(key, requeueAfterMs);
    } catch (err) {
      end({ result: 'error' });
      metrics.reconcileErrors.inc({ kind });
      const message = errorMessage(err);
      lastErrors.set(key, message);
      const delay = queue.addRateLimited(key);
      log[queue.limiter.retries(key) > 5 ? 'warn' : 'debug']({ item: key, err: message, retryInMs: delay }, 'reconcile failed; retrying with backoff');
    }
  }

  // Workers run only while leading; a generation number retires old ones.
  let generation = 0;
  let leading = false;
  let stopped = false;
  const workerLoops: Array<Promise<void>> = [];
  const startWorkers = () => {
    const gen = ++generation;
    for (let i = 0; i < config.workers; i++) {
      workerLoops.push((async () => {
        while (!stopped && leading && gen === generation) {
          const key = await queue.get();
          if (key === undefined) return;
          if (!leading || gen !== generation) {
            queue.done(key);
            queue.add(key);
            return;
          }
          try {
            await processKey(key);
          } finally {
            queue.done(key);
          }
        }
      })());
    }
  };

  for (const [, inf] of informers) inf.start();
  const allSynced = Promise.all(informers.map(([, inf]) => inf.ready())).then(() => undefined);

  const onStartedLeading = () => {
    leading = true;
    metrics.leader.set(1);
    void allSynced.then(() => {
      if (!leading) return;
      enqueueAll();
      startWorkers();
    });
  };
  const onStoppedLeading = () => {
    leading = false;
    generation++;
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
  const gauges = setInterval(() => {
    metrics.queueDepth.set(queue.depth);
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

  const http: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.queueDepth.set(queue.depth);
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const ready = informers.every(([, inf]) => inf.synced) && !stopped;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ready ? 'ready' : 'not ready', leader: leading }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
  const httpPort = await new Promise<number>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.httpPort, config.httpHost, () => {
      const a = http.address();
      resolve(typeof a === 'object' && a ? a.port : config.httpPort);
    });
  });
  log.info({ httpPort, identity: config.podName, leaderElection: config.leaderElection.enabled, ingestStatefulSet: config.ingest.statefulSet || undefined }, 'controller started');

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
      queue.shutDown();
      await Promise.all(workerLoops);
      webhooks.stop();
      await elector?.stop();
      leading = false;
      await Promise.all(informers.map(([, inf]) => inf.stop()));
      if (store instanceof S3Store) store.destroy();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      log.info('controller stopped');
    },
  };
}
