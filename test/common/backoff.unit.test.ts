// The project's one backoff: doubling from the base up to the cap, with the
// jitter drawn from the upper half of the delay, or exact without it.
import t from 'tap';
import { backoffDelay } from '../../common/backoff.ts';

t.test('without jitter: base doubled per attempt, at most the cap', async (t) => {
  t.same(
    [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 100, 5000, { jitter: false })),
    [100, 200, 400, 800, 1600, 3200, 5000],
  );
  t.equal(backoffDelay(-1, 100, 5000, { jitter: false }), 100, 'a negative attempt counts as the first');
  t.equal(backoffDelay(10_000, 5, 1_000_000, { jitter: false }), 1_000_000, 'a huge attempt stays at the cap');
  t.equal(backoffDelay(10_000, 0, 1000, { jitter: false }), 0, 'a zero base stays zero');
  t.equal(backoffDelay(40, 1, 2 ** 40, { jitter: false }), 2 ** 40, 'grows as far as the cap allows');
});

t.test('with jitter (the default): whole ms in the upper half of the delay', async (t) => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const exact = backoffDelay(attempt, 100, 5000, { jitter: false });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt, 100, 5000);
      if (!Number.isInteger(d) || d < exact / 2 || d > exact) t.fail(`attempt ${attempt}: ${d} outside [${exact / 2}, ${exact}]`);
      seen.add(d);
    }
    t.ok(seen.size > 1, `attempt ${attempt}: jittered (${seen.size} distinct delays)`);
  }
  t.ok(backoffDelay(0) >= 50 && backoffDelay(0) <= 100, 'defaults: from 100 ms');
  t.ok(backoffDelay(50) >= 2500 && backoffDelay(50) <= 5000, 'defaults: up to 5 s');
});

t.test('retry: until it succeeds, out of attempts with the last failure, or stopped', async (t) => {
  const { retry } = await import('../../common/backoff.ts');
  let calls = 0;
  const failures: number[] = [];
  t.equal(
    await retry(async (attempt) => (++calls < 3 ? Promise.reject(new Error(`no ${attempt}`)) : 'yes'), {
      attempts: Infinity,
      baseMs: 1,
      maxMs: 2,
      onFailure: (_e, a) => failures.push(a),
    }),
    'yes',
  );
  t.same(failures, [0, 1], 'each failure reported with its attempt');
  await t.rejects(
    retry(async (attempt) => Promise.reject(new Error(`no ${attempt}`)), { attempts: 3, baseMs: 1, maxMs: 2 }),
    { message: 'no 2' },
    'the last failure once out of attempts',
  );
  let stopped = 0;
  await t.rejects(
    retry(async () => Promise.reject(new Error('down')), { attempts: Infinity, baseMs: 1, stop: () => ++stopped >= 2 }),
    { message: 'down' },
  );
  t.equal(stopped, 2, 'stop is asked after each failure');
});
