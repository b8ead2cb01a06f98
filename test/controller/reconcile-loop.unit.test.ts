// The controller's reconcile loops in process: typed items, failures retried
// with backoff and forgotten on success, and the capacity loop on a queue and
// worker of its own so that a slow capacity reconcile holds no LiveStream.
import t from 'tap';
import { createLogger } from '../../common/log.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { ControllerMetrics } from '../../controller/metrics.ts';
import { ReconcileLoop } from '../../controller/reconcile-loop.ts';
import { waitFor } from '../../harness/wait.ts';

const log = createLogger('reconcile-loop-test', 'error');
const fast = { baseDelayMs: 1, maxDelayMs: 20, qps: 1e6, burst: 1e6 };

t.test('items arrive typed; a failing item is retried with its failure count and last error, then forgotten', async (t) => {
  const seen: Array<{ ref: StreamRef; count: number; lastError?: string }> = [];
  let fail = 2;
  const loop = new ReconcileLoop<StreamRef>({
    kind: 'livestream',
    keyOf: streamId,
    metrics: new ControllerMetrics(),
    log,
    rateLimits: fast,
    async reconcile(ref, failures) {
      seen.push({ ref, ...failures });
      if (fail-- > 0) throw new Error(`boom ${fail}`);
      return {};
    },
  });
  loop.start(1);
  loop.queue.add({ namespace: 'ns', name: 'a' });
  await waitFor('three attempts', () => seen.length === 3, { timeoutMs: 5000, intervalMs: 5 });
  t.same(seen[0], { ref: { namespace: 'ns', name: 'a' }, count: 0 });
  t.same(seen[1], { ref: { namespace: 'ns', name: 'a' }, count: 1, lastError: 'boom 1' });
  t.same(seen[2], { ref: { namespace: 'ns', name: 'a' }, count: 2, lastError: 'boom 0' });
  t.equal(loop.queue.retries({ namespace: 'ns', name: 'a' }), 0, 'forgotten after the success');
  await loop.shutDown();
});

t.test('a slow capacity reconcile does not hold LiveStream items', async (t) => {
  const metrics = new ControllerMetrics();
  let releaseCapacity!: () => void;
  const capacityHeld = new Promise<void>((resolve) => (releaseCapacity = resolve));
  const done: string[] = [];
  const capacity = new ReconcileLoop<{ statefulSet: string }>({
    kind: 'capacity',
    keyOf: (i) => i.statefulSet,
    metrics,
    log,
    async reconcile() {
      await capacityHeld;
      done.push('capacity');
      return {};
    },
  });
  const streams = new ReconcileLoop<StreamRef>({
    kind: 'livestream',
    keyOf: streamId,
    metrics,
    log,
    async reconcile(ref) {
      done.push(streamId(ref));
      return {};
    },
  });
  capacity.start(1);
  streams.start(1);
  capacity.queue.add({ statefulSet: 'ingest' });
  streams.queue.add({ namespace: 'ns', name: 'a' });
  streams.queue.add({ namespace: 'ns', name: 'b' });
  await waitFor('both streams reconciled', () => done.length === 2, { timeoutMs: 5000, intervalMs: 5 });
  t.same(done, ['ns/a', 'ns/b'], 'streams reconciled while capacity is still in flight');
  releaseCapacity();
  await waitFor('capacity reconciled', () => done.includes('capacity'), { timeoutMs: 5000, intervalMs: 5 });
  await Promise.all([capacity.shutDown(), streams.shutDown()]);
});

t.test('pause hands no more items out; a new start takes the queued ones', async (t) => {
  const done: string[] = [];
  const loop = new ReconcileLoop<StreamRef>({
    kind: 'livestream',
    keyOf: streamId,
    metrics: new ControllerMetrics(),
    log,
    async reconcile(ref) {
      done.push(streamId(ref));
      return {};
    },
  });
  loop.start(1);
  loop.queue.add({ namespace: 'ns', name: 'a' });
  await waitFor('first item', () => done.length === 1, { timeoutMs: 5000, intervalMs: 5 });
  loop.pause();
  loop.queue.add({ namespace: 'ns', name: 'b' });
  // The paused worker takes b, sees its generation ended, and puts b back.
  await waitFor('b back in the queue', () => loop.queue.depth === 1 && loop.queue.inFlight === 0, { timeoutMs: 5000, intervalMs: 5 });
  t.same(done, ['ns/a'], 'nothing reconciled while paused');
  loop.start(1);
  await waitFor('b after the restart', () => done.length === 2, { timeoutMs: 5000, intervalMs: 5 });
  t.same(done, ['ns/a', 'ns/b']);
  await loop.shutDown();
});
