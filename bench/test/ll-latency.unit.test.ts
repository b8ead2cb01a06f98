// The LL-HLS viewer latency benchmark's arithmetic: the keyframe intervals it
// is asked for (BENCH_LL_KEYFRAME_INTERVALS, default 2, bad values refused),
// the seconds the video element waited inside the sampling window (waits
// clipped to it, one still going counted to the window's end), and its row.
import t from 'tap';
import { llKeyframeIntervals, llRow, stalledWithin } from '../ll-latency.ts';

t.same(llKeyframeIntervals({}), [2], 'default: 2 s only, to keep make bench short');
t.same(llKeyframeIntervals({ BENCH_LL_KEYFRAME_INTERVALS: '1, 2,4' }), [1, 2, 4]);
t.throws(() => llKeyframeIntervals({ BENCH_LL_KEYFRAME_INTERVALS: '2,x' }), /x is not a keyframe interval/);
t.throws(() => llKeyframeIntervals({ BENCH_LL_KEYFRAME_INTERVALS: '0' }), /0 is not/);

const waits = [
  { start: 0, end: 2000 }, // before the window, partly
  { start: 5000, end: 5500 }, // inside
  { start: 9500, end: null }, // still waiting at the end
];
t.equal(stalledWithin(waits, 1000, 10_000), 1 + 0.5 + 0.5, 'clipped to [from, to]');
t.equal(stalledWithin([], 0, 10_000), 0);

t.same(llRow({ keyframeSeconds: 2, ll: true, endToEnd: [1, 2, 3], edge: [1], target: 1, stalls: 0, stalledSeconds: 0, blockingReloads: 180, parts: 180 }, 60), [
  '2 s',
  'on (0.333 s parts)',
  '2.00 s',
  '2.90 s',
  '1.00 s',
  '0',
  '0.0',
  '1.00 s',
  '3.0',
  '3.0',
]);
t.equal(
  llRow({ keyframeSeconds: 1, ll: false, endToEnd: [], edge: [], target: null, stalls: 0, stalledSeconds: 0, blockingReloads: 0, parts: 0 }, 60)[2],
  'n/a',
);
