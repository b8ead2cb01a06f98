// What `make bench` prints beside its figures: the density table's ratio to
// nginx-rtmp at the same stream count and the issue's targets (CPU per stream
// to S3 ≤ 1.0 % of a core, ≤ 5 MiB per stream) met or not, S3's share beside
// the local store; the origin latency target (p95 ≤ nginx-rtmp + 100 ms);
// the default stream counts; durations. On made-up figures whose answer is known.
import t from 'tap';
import { densityCounts, densityVariants } from '../density.ts';
import { DENSITY_HEADER, densitySummary, densityTableRows, type DensityRow } from '../lib/density-report.ts';
import { MediaClock, originTableRows, originVerdict, type LatencySummary } from '../lib/origin-report.ts';
import { elapsed } from '../lib/stats.ts';
import { ConfigError } from '../../common/env-config.ts';

const row = (system: string, kind: DensityRow['kind'], streams: number, cpuPerStream: number, memPerStreamMiB: number, stalledStreams = 0): DensityRow => ({
  system,
  kind,
  streams,
  cpuPerStream,
  memPerStreamMiB,
  stalledStreams,
});

const rows: DensityRow[] = [
  row('nginx-rtmp worker', 'nginx-rtmp', 20, 0.5, 0.2),
  row('tteok ingest (to S3)', 'tteok-s3', 20, 0.9, 3.5),
  row('tteok ingest (local store)', 'tteok-local', 20, 0.6, 3.0),
  row('nginx-rtmp worker', 'nginx-rtmp', 50, 0.4, 0.1),
  row('tteok ingest (to S3)', 'tteok-s3', 50, 1.2, 5.5),
  row('ffmpeg -c copy per stream', 'reference', 20, 1.0, 55),
];

t.test('each row beside its ratio to nginx-rtmp at the same count; targets only on the rows to S3', async (t) => {
  t.same(DENSITY_HEADER, ['system', 'streams', 'CPU/stream', 'vs nginx-rtmp', 'MiB/stream', 'stalled', 'CPU ≤ 1.0 %', 'MiB ≤ 5']);
  t.same(densityTableRows(rows), [
    ['nginx-rtmp worker', '20', '0.50 %', '1×', '0.20', '0', '', ''],
    ['tteok ingest (to S3)', '20', '0.90 %', '1.80×', '3.50', '0', 'met', 'met'],
    ['tteok ingest (local store)', '20', '0.60 %', '1.20×', '3.00', '0', '', ''],
    ['nginx-rtmp worker', '50', '0.40 %', '1×', '0.10', '0', '', ''],
    ['tteok ingest (to S3)', '50', '1.20 %', '3.00×', '5.50', '0', 'NOT met', 'NOT met'],
    ['ffmpeg -c copy per stream', '20', '1.00 %', '2.00×', '55.00', '0', '', ''],
  ]);
});

t.test('a run with a stalled stream meets no target, however low its figures', async (t) => {
  const stalled = [row('nginx-rtmp worker', 'nginx-rtmp', 50, 0.4, 0.1), row('tteok ingest (to S3)', 'tteok-s3', 50, 0.5, 1, 3)];
  t.same(densityTableRows(stalled)[1]!.slice(-2), ['NOT met (3 stalled)', 'NOT met (3 stalled)']);
  t.match(densitySummary(stalled).join('\n'), /no stalled stream \(tteok to S3\): none/);
});

t.test('without a peer at that count the ratio is n/a, not a guess', async (t) => {
  t.same(densityTableRows([row('tteok ingest (to S3)', 'tteok-s3', 4, 0.9, 3)])[0]![3], 'n/a');
});

t.test('the summary states each target at each count, the ratio, and what S3 costs beside the local store', async (t) => {
  const lines = densitySummary(rows);
  t.same(lines, [
    'Target CPU per stream to S3 ≤ 1.0 % of a core: met (0.90 %) at 20, NOT met (1.20 %) at 50.',
    'Target memory ≤ 5 MiB per stream: met (3.50 MiB) at 20, NOT met (5.50 MiB) at 50.',
    'CPU per stream against nginx-rtmp in the same run: 1.80× at 20, 3.00× at 50 (the 1.0 % target is about 2×; the goal beyond it is 1.5×).',
    'Largest stream count with no stalled stream (tteok to S3): 50; target ≥ 50 on 2 cores.',
    "Storing into S3 instead of the local store at 20 streams: 0.30 % of a core per stream more (33 % of the S3 run's CPU; measured one after the other, so noise on a shared machine falls on the difference).",
  ]);
  t.same(densitySummary(rows.filter((r) => r.kind === 'nginx-rtmp')), [], 'nothing to judge without our rows');
});

t.test("the ingest's full garbage collections per second, where its metrics gave them", async (t) => {
  const withGc: DensityRow[] = [
    row('nginx-rtmp worker', 'nginx-rtmp', 20, 0.5, 0.2),
    { ...row('tteok ingest (to S3)', 'tteok-s3', 20, 0.9, 3.5), fullGcPerSecond: 0.2 },
    { ...row('LL-HLS off', 'tteok-s3-variant', 20, 0.8, 3.4), fullGcPerSecond: 1.4667 },
  ];
  t.equal(
    densitySummary(withGc).at(-1),
    'Full (mark-compact) garbage collections per second in the ingest during the window: 0.20 (tteok ingest (to S3), 20); 1.47 (LL-HLS off, 20).',
  );
  t.notOk(
    densitySummary(rows).some((l) => l.includes('garbage')),
    'no line when no row has them',
  );
});

t.test('the targets are judged on the run without the profiler; S3 against the local store like for like, both profiled', async (t) => {
  const withProfiles: DensityRow[] = [
    row('nginx-rtmp worker', 'nginx-rtmp', 20, 0.5, 0.2),
    row('tteok ingest (to S3)', 'tteok-s3', 20, 0.9, 3.5),
    row('tteok ingest (to S3), profiled', 'tteok-s3-profiled', 20, 1.1, 3.6),
    row('tteok ingest (local store), profiled', 'tteok-local', 20, 0.7, 3.0),
  ];
  t.same(densityTableRows(withProfiles)[2]!.slice(-2), ['', ''], 'no verdict on the profiled run');
  const lines = densitySummary(withProfiles);
  t.match(lines[0], /met \(0\.90 %\) at 20\./, 'the CPU target from the run without the profiler');
  t.match(
    lines.at(-1),
    /local store at 20 streams: 0\.40 % of a core per stream more \(36 % of the S3 run's CPU/,
    'the profiled S3 run against the profiled local one',
  );
});

t.test('density stream counts: 20 and 50 by default, a short run by env, a bad value refused', async (t) => {
  t.same(densityCounts({}), [20, 50]);
  t.same(densityCounts({ BENCH_DENSITY_COUNTS: '4' }), [4]);
  t.same(densityCounts({ BENCH_DENSITY_COUNTS: '10, 25' }), [10, 25]);
  t.throws(() => densityCounts({ BENCH_DENSITY_COUNTS: '20,many' }), ConfigError);
  t.throws(() => densityCounts({ BENCH_DENSITY_COUNTS: '0' }), ConfigError);
});

t.test('density variants: another build, or ours with other settings (LL-HLS off), measured in the same run; a bad spec refused', async (t) => {
  t.same(densityVariants({}), []);
  t.same(densityVariants({ BENCH_DENSITY_COMPARE: `main=${process.execPath}` }), [{ system: 'main', main: process.execPath, env: {} }]);
  t.same(densityVariants({ BENCH_DENSITY_COMPARE: 'LL-HLS off=ours|TTEOK_LL_PART_SECONDS=0;both=ours|A=1, B=2' }), [
    { system: 'LL-HLS off', env: { TTEOK_LL_PART_SECONDS: '0' } },
    { system: 'both', env: { A: '1', B: '2' } },
  ]);
  t.throws(() => densityVariants({ BENCH_DENSITY_COMPARE: '/no/such/dist/bin/tteok.js' }), ConfigError);
  t.throws(() => densityVariants({ BENCH_DENSITY_COMPARE: 'main=/no/such/dist/bin/tteok.js' }), ConfigError);
  t.throws(() => densityVariants({ BENCH_DENSITY_COMPARE: 'x=ours|NOVALUE' }), ConfigError);
});

t.test('a variant row has its ratio to nginx-rtmp but no target verdict (the targets are about our build as it is)', async (t) => {
  const rows = densityTableRows([row('nginx-rtmp worker', 'nginx-rtmp', 20, 0.5, 0.2), row('tteok ingest (to S3), main', 'tteok-s3-variant', 20, 1, 3)]);
  t.same(rows[1], ['tteok ingest (to S3), main', '20', '1.00 %', '2.00×', '3.00', '0', '', '']);
});

const latency = (system: string, median: number, p95: number, n = 70): LatencySummary => ({
  system,
  samples: Array.from({ length: n }, () => median),
  median,
  p95,
});

t.test('origin latency: the difference to nginx-rtmp and the +100 ms target, met or not', async (t) => {
  const peer = latency('nginx-rtmp (local disk)', 340, 348);
  t.same(originTableRows(peer, latency('tteok (SeaweedFS S3)', 420, 440)), [
    ['nginx-rtmp (local disk)', '70', '340', '348'],
    ['tteok (SeaweedFS S3)', '70', '420', '440'],
    ['ours − nginx-rtmp', '', '+80', '+92'],
  ]);
  t.equal(
    originVerdict(peer, latency('tteok (SeaweedFS S3)', 420, 440)),
    "Target: p95 ≤ nginx-rtmp's p95 + 100 ms, storing into S3 (SeaweedFS) → met (ours 440 ms, at most 448 ms allowed: +92 ms over nginx-rtmp)",
  );
  t.equal(originVerdict(peer, latency('tteok (SeaweedFS S3)', 420, 448)).includes('→ met'), true, 'exactly +100 ms is met');
  t.equal(
    originVerdict(peer, latency('tteok (SeaweedFS S3)', 554, 621)),
    "Target: p95 ≤ nginx-rtmp's p95 + 100 ms, storing into S3 (SeaweedFS) → NOT met (ours 621 ms, at most 448 ms allowed: +273 ms over nginx-rtmp)",
  );
  t.same(originTableRows(peer, latency('faster', 300, 320))[2], ['ours − nginx-rtmp', '', '-40', '-28']);
  t.match(originVerdict(peer, latency('none', Number.NaN, Number.NaN, 0)), /→ n\/a \(a system listed no segment\)$/);
});

t.test('durations for people', async (t) => {
  t.equal(elapsed(4_400), '4 s');
  t.equal(elapsed(59_400), '59 s');
  t.equal(elapsed(65_000), '1 min 05 s');
  t.equal(elapsed(12 * 60_000 + 30_000), '12 min 30 s');
});

t.test('origin latency: segments that left the window unseen still count as media sent', async (t) => {
  const seenFromStart = new MediaClock();
  t.same(
    [0, 1, 2].map((n) => seenFromStart.segmentEnds(n, 1)),
    [1, 2, 3],
    'each segment ends where the sum of durations says',
  );
  const lateStart = new MediaClock();
  // The first stored playlist already lacks segments 0 and 1.
  t.same(
    [2, 3, 4].map((n) => lateStart.segmentEnds(n, 1)),
    [3, 4, 5],
    'the same ends when the first two were never seen',
  );
  const gap = new MediaClock();
  t.same(
    [
      [0, 1],
      [1, 1],
      [4, 0.5],
      [5, 1],
    ].map(([n, d]) => gap.segmentEnds(n!, d!)),
    [1, 2, 3.5, 4.5],
    'a gap counts its segments as long as the next one',
  );
});
