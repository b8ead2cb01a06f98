// The controller's work queue and rate limiter: client-go's semantics
// (coalescing, one in flight per key, per-key exponential backoff under an
// overall token bucket). Pure logic, no servers.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { RateLimiter, WorkQueue } from '../../controller/workqueue.ts';
import { planCapacity } from '../../controller/capacity.ts';
import { microTime } from '../../common/kube/lease.ts';

t.test('a burst of adds for one key is one item', async (t) => {
  const q = new WorkQueue();
  for (let i = 0; i < 100; i++) q.add('ns/a');
  q.add('ns/b');
  t.equal(q.depth, 2);
  t.equal(await q.get(), 'ns/a');
  t.equal(await q.get(), 'ns/b');
  t.equal(q.depth, 0);
});

t.test('one in flight per key: an add while processing waits for done()', async (t) => {
  const q = new WorkQueue();
  q.add('k');
  const k = await q.get();
  q.add('k');
  q.add('k');
  t.equal(q.depth, 0, 'not handed out again while in flight');
  let second: string | undefined;
  void q.get().then((v) => (second = v));
  await sleep(10);
  t.equal(second, undefined, 'a second worker waits');
  q.done(k!);
  await sleep(0);
  t.equal(second, 'k', 'queued again once, after done()');
  q.done('k');
  t.equal(q.depth, 0);
  q.shutDown();
});

t.test('per-key exponential backoff from 5 ms, capped at 1000 s; forget() resets', (t) => {
  const r = new RateLimiter({ baseDelayMs: 5, maxDelayMs: 1_000_000, qps: 1e9, burst: 1e9 });
  t.same(
    [1, 2, 3, 4, 5].map(() => r.when('a')),
    [5, 10, 20, 40, 80],
  );
  t.equal(r.when('b'), 5, 'per key');
  for (let i = 0; i < 30; i++) r.when('a');
  t.equal(r.when('a'), 1_000_000, 'capped at 1000 s');
  r.forget('a');
  t.equal(r.when('a'), 5, 'reset after forget');
  t.end();
});

t.test('the overall bucket: 100 at once, then 10 per second', (t) => {
  const r = new RateLimiter();
  const delays = Array.from({ length: 120 }, (_, i) => r.when(`key-${i}`));
  t.ok(
    delays.slice(0, 100).every((d) => d === 5),
    'the burst of 100 only pays the per-key 5 ms',
  );
  t.ok(delays[100]! >= 90 && delays[100]! <= 110, `the 101st waits ~100 ms (${delays[100]})`);
  t.ok(delays[119]! >= 1900 && delays[119]! <= 2100, `the 120th waits ~2 s (${delays[119]})`);
  t.end();
});

t.test('addAfter and addRateLimited deliver later; shutDown releases waiters', async (t) => {
  const q = new WorkQueue();
  q.addAfter('later', 50);
  t.equal(q.depth, 0);
  const start = Date.now();
  t.equal(await q.get(), 'later');
  t.ok(Date.now() - start >= 40, 'after the delay');
  q.done('later');
  q.addRateLimited('x');
  t.equal(await q.get(), 'x');
  q.done('x');
  const waiting = q.get();
  q.shutDown();
  t.equal(await waiting, undefined);
});

t.test('capacity plan: demand within min and max, never below a live pod', (t) => {
  const cfg = { namespace: 'sys', statefulSet: 'ingest', streamsPerPod: 2, minReplicas: 1, maxReplicas: 4, scaleDownDelayMs: 0, publicUrl: undefined };
  const ls = (name: string, enabled = true) => ({
    apiVersion: 'tteok.dev/v1alpha1',
    kind: 'LiveStream',
    metadata: { name, namespace: 'ns' },
    spec: { enabled },
  });
  const sts = (replicas: number) => ({ spec: { replicas, selector: {}, serviceName: 'ingest', template: {} } }) as never;
  const claim = (holder: string, ageS = 0) => ({
    metadata: { name: 'c' },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: microTime(new Date(Date.now() - ageS * 1000)) },
  });
  t.equal(planCapacity(cfg, { liveStreams: [], claims: [], statefulSet: sts(3) })!.desired, 1, 'min');
  t.equal(planCapacity(cfg, { liveStreams: ['a', 'b', 'c'].map((n) => ls(n)), claims: [], statefulSet: sts(1) })!.desired, 2);
  t.equal(
    planCapacity(cfg, { liveStreams: ['a', 'b', 'c', 'd', 'e'].map((n) => ls(n, n !== 'e')), claims: [], statefulSet: sts(1) })!.desired,
    2,
    'disabled streams need no capacity',
  );
  t.equal(planCapacity(cfg, { liveStreams: Array.from({ length: 20 }, (_, i) => ls(`s${i}`)), claims: [], statefulSet: sts(1) })!.desired, 4, 'max');
  t.equal(planCapacity(cfg, { liveStreams: [ls('a')], claims: [claim('ingest-2')], statefulSet: sts(3) })!.desired, 3, 'ingest-2 is live: keep 3');
  t.equal(planCapacity(cfg, { liveStreams: [ls('a')], claims: [claim('ingest-2', 60)], statefulSet: sts(3) })!.desired, 1, 'an expired claim keeps nothing');
  t.equal(
    planCapacity(cfg, { liveStreams: [ls('a')], claims: [claim('other-7')], statefulSet: sts(3) })!.desired,
    1,
    'holders of other StatefulSets do not count',
  );
  t.equal(planCapacity(cfg, { liveStreams: [], claims: [], statefulSet: undefined }), undefined, 'no StatefulSet, no plan');
  t.end();
});
