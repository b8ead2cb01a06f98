// `make bench`: measures tteok against real peers, side by side in one run,
// and prints tables to paste into README's Performance section. Benchmarks
// print figures; they never fail on speed. tteok is measured as the container
// runs it: compiled into dist/ once at the start (as `npm run build` does),
// every process started with plain node.
//
//   BENCH=origin,viewer,keyframes,ll-latency,s3cost,density,codecs,gateway,controlplane,transcoder,ladder  which benchmarks to run (default: all)
//   BENCH_SECONDS=75              length of the origin latency runs
//   BENCH_LADDER_SECONDS=60       length of the rendition origin latency run
//   BENCH_LADDER_PRESETS=720p,480p,360p  its renditions of the 1080p30 source
//   BENCH_VIEWER_SECONDS=60       length of each viewer latency sampling
//   BENCH_KEYFRAME_INTERVALS=2    keyframe intervals of the viewer latency by keyframe interval (README's table: 1,2,4)
//   BENCH_KEYFRAME_SECONDS=60     its sampling per system and interval
//   BENCH_S3_COST_SECONDS=40      steady window of each S3 cost mode
//   BENCH_LL_KEYFRAME_INTERVALS=2 keyframe intervals of the LL-HLS viewer latency (README's table: 1,2,4)
//   BENCH_LL_SECONDS=60           its sampling per interval, LL on and off
//   BENCH_LL_JOIN_SECONDS=10      its viewer joins this long after the stream's first playlist
//   BENCH_LL_TRACE=1              its page's start-up and the front's requests, on stderr
//   BENCH_GATEWAY_ROUNDS=3        alternating 10 s rounds of the gateway benchmark
//   BENCH_GATEWAY_COMPARE=a=/x/dist/bin/tteok.js;…  other gateway builds measured in the same rounds
//   BENCH_DENSITY_COUNTS=20,50    stream counts of the density benchmark (the smallest is CPU-profiled
//                                 and also measured with the local store)
//   BENCH_DENSITY_COMPARE=main=/x/dist/bin/tteok.js;ll-off=ours|TTEOK_LL_PART_SECONDS=0  other ingest builds or
//                                 settings measured right after ours at each count
//   BENCH_DENSITY_QUICK=1         density: only nginx-rtmp, ours (and the compared builds), ours profiled
//   BENCH_STREAMS=1000            LiveStreams the control plane benchmark creates
import { cpus, loadavg, totalmem } from 'node:os';
import { stopAll } from '../harness/process.ts';
import { controlPlane } from './control-plane.ts';
import { density, densityCounts, enhancedDensity, PROFILE_INTERVAL_US } from './density.ts';
import { gatewayThroughput } from './gateway.ts';
import { DENSITY_HEADER, densitySummary, densityTableRows } from './lib/density-report.ts';
import { buildDist } from './lib/dist-build.ts';
import { benchInput } from './lib/media.ts';
import { installNginxRtmp } from './lib/nginx-rtmp.ts';
import { originTableRows, originVerdict } from './lib/origin-report.ts';
import { elapsed, fmt, ratio, table } from './lib/stats.ts';
import { originLatency } from './origin-latency.ts';
import { summarize, viewerLatency } from './viewer-latency.ts';
import { transcoderCost } from './transcoder.ts';
import { COST_HEADER, costModes, costRow, keptUpLadder, PUT_DOLLARS_PER_1000, s3Cost, STORAGE_DOLLARS_PER_GB_MONTH } from './s3-cost.ts';
import { KEYFRAME_HEADER, keyframeIntervals, keyframeLatency, keyframeRow } from './keyframe-latency.ts';
import { renditionLatency } from './rendition-latency.ts';
import { LL_HEADER, llKeyframeIntervals, llLatency, llRow } from './ll-latency.ts';

const selected = new Set(
  (process.env.BENCH ?? 'origin,viewer,keyframes,ll-latency,s3cost,density,codecs,gateway,controlplane,transcoder,ladder').split(',').map((s) => s.trim()),
);
const seconds = Number(process.env.BENCH_SECONDS ?? 75);
const out: string[] = [];
const print = (text: string) => {
  out.push(text);
  process.stdout.write(text + '\n');
};

print(`## tteok benchmark, ${new Date().toISOString().slice(0, 10)}`);
print(`Machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
const benchStarted = performance.now();
/** Each benchmark's wall-clock time, printed under its tables and again at the end. */
const timings: Array<[string, number]> = [];
async function timed(name: string, body: () => Promise<void> | void): Promise<void> {
  const started = performance.now();
  try {
    await body();
  } finally {
    const ms = performance.now() - started;
    timings.push([name, ms]);
    print(`(${name}: ${elapsed(ms)})`);
  }
}

try {
  await timed('build dist/', () => {
    buildDist();
    print('tteok runs from the compiled dist/ build (tsc -p tsconfig.build.json) with plain node, as the container runs it.');
  });
  // The peer nginx-rtmp and the 720p input only for the benchmarks that publish media.
  const needsMedia = ['origin', 'viewer', 'keyframes', 's3cost', 'density', 'codecs'].some((b) => selected.has(b));
  let input = '';
  if (needsMedia)
    await timed('set-up: nginx-rtmp and the 720p input', () => {
      installNginxRtmp();
      input = benchInput();
    });

  if (selected.has('origin'))
    await timed('origin latency', async () => {
      const [peer, ours] = await originLatency(input, seconds);
      print(
        table(
          'Origin live-edge latency (last frame sent → segment listed at the origin), ms',
          ['system', 'segments', 'median', 'p95'],
          originTableRows(peer!, ours!),
        ),
      );
      print(originVerdict(peer!, ours!));
    });

  if (selected.has('viewer'))
    await timed('viewer latency', async () => {
      const viewerSeconds = Number(process.env.BENCH_VIEWER_SECONDS ?? 60);
      const results = await viewerLatency(input, viewerSeconds);
      print(
        table(
          `Viewer latency in headless Chromium, seconds (sampled once a second for ${viewerSeconds} s)`,
          ['setup', 'now−playingDate median', 'p95', 'behind live edge median', 'p95', 'stalls'],
          results.map(summarize),
        ),
      );
      print(
        "Target: viewer latency median ≤ 2.5 s with 1 s segments. nginx-rtmp's now − playingDate: the arrival time its fragment names carry (hls_fragment_naming system), added as program date times by a loopback proxy.",
      );
    });

  if (selected.has('keyframes'))
    await timed('viewer latency by keyframe interval', async () => {
      const seconds = Number(process.env.BENCH_KEYFRAME_SECONDS ?? 60);
      const results = await keyframeLatency(keyframeIntervals(process.env), seconds);
      print(
        table(
          `Viewer latency by keyframe interval: live 720p30 2.5 Mbps x264 veryfast zerolatency, one encode to both servers; headless Chromium, sampled once a second for ${seconds} s`,
          KEYFRAME_HEADER,
          results.map(keyframeRow),
        ),
      );
      print(
        "nginx-rtmp's now − playingDate: the arrival time its fragment names carry (hls_fragment_naming system), added as program date times by a loopback proxy. Issue 20's targets (through the Kubernetes-shaped LL path): median ≤ 1.5 s and p95 ≤ 2.0 s with 2 s, median ≤ 1.2 s with 1 s, no stall in 60 s.",
      );
    });

  if (selected.has('s3cost'))
    await timed('S3 cost per stream-hour', async () => {
      const seconds = Number(process.env.BENCH_S3_COST_SECONDS ?? 40);
      const modes = costModes();
      const results = await s3Cost(input, seconds, modes);
      const derived = results.map((r, i) => keptUpLadder(r, modes[i]!.renditions));
      print(
        table(
          `S3 cost per stream-hour: requests SeaweedFS received from the ingest over ${seconds} s of each mode after start-up, scaled to an hour`,
          COST_HEADER,
          results.flatMap((r, i) => [costRow(r), ...(derived[i] ? [costRow(derived[i]!.row)] : [])]),
        ),
      );
      for (const [i, d] of derived.entries()) {
        if (d)
          print(
            `${results[i]!.mode}: the transcoder fell behind on this machine (${fmt(d.stored)} of ${fmt(d.expected)} rendition segments per hour stored); the derived row adds the missing ones at each preset's video bit rate + 128 kbit/s audio.`,
          );
      }
      print(
        `Price basis: S3 Standard us-east-1 list prices, PUT $${PUT_DOLLARS_PER_1000} per 1,000, storage $${STORAGE_DOLLARS_PER_GB_MONTH} per GB-month, data in free; DELETEs (free) at the run's end are not counted. LL-HLS parts are never PUT: an LL stream's S3 cost is its mode's row.`,
      );
    });

  if (selected.has('ll-latency'))
    await timed('LL-HLS viewer latency', async () => {
      const llSeconds = Number(process.env.BENCH_LL_SECONDS ?? 60);
      const load = loadavg()[0]!;
      const results = await llLatency(llKeyframeIntervals(process.env), llSeconds);
      print(
        table(
          `LL-HLS viewer latency through the Kubernetes-shaped path (ingest → SeaweedFS for segments, gateway as LL origin, a CloudFront-shaped front): 720p30 2.5 Mbps x264 veryfast zerolatency, headless Chromium, sampled once a second for ${llSeconds} s`,
          LL_HEADER,
          results.map((r) => llRow(r, llSeconds)),
        ),
      );
      print(`Load average (1 min) before the run: ${fmt(load, 1)}, after: ${fmt(loadavg()[0]!, 1)}.`);
      print(
        "Issue 20's targets: median ≤ 1.5 s and p95 ≤ 2.0 s with 2 s keyframes, median ≤ 1.2 s with 1 s, no stall in 60 s. nginx-rtmp with the same keyframe intervals: BENCH=keyframes.",
      );
    });

  if (selected.has('density'))
    await timed('density', async () => {
      const results = await density(input, densityCounts(process.env));
      print(table('Density: CPU (% of one core) and memory per stream, 720p 2.5 Mbps copy-mode publishers', DENSITY_HEADER, densityTableRows(results)));
      for (const line of densitySummary(results)) print(line);
      for (const r of results) {
        if (!r.profile) continue;
        const p = r.profile;
        const window = p.wholeProfile ? 'the whole process lifetime (the window could not be matched to the profile clock)' : 'the measurement window';
        print(
          table(
            `CPU profile of ${r.system} at ${r.streams} streams: share of the main thread's busy time (${fmt(p.busyMs / 1000, 1)} s busy, ${fmt(p.idleMs / 1000, 1)} s idle over ${window})`,
            ['where', 'share', 'busy ms', 'Node work called from'],
            p.buckets.map((b) => [
              b.bucket,
              fmt(b.share * 100, 1, ' %'),
              fmt(b.ms),
              (b.calledFrom ?? [])
                .slice(0, 3)
                .map((c) => `${c.caller} ${fmt(c.share * 100, 0, ' %')}`)
                .join(', '),
            ]),
          ),
        );
        print(
          table(
            "Top 10 functions by self time (script-less native frames are listed as themselves, counted in their caller's package above)",
            ['function', 'where', 'package', 'share', 'ms'],
            p.top.map((f) => [f.functionName, f.location, f.bucket, fmt(f.share * 100, 1, ' %'), fmt(f.ms)]),
          ),
        );
        print(
          `Sampled every ${PROFILE_INTERVAL_US / 1000} ms by node --cpu-prof; the sampler's own cost is in this run's CPU/stream figure above. Our compiled files are listed at their TypeScript lines (the build's source maps).`,
        );
      }
    });

  if (selected.has('codecs'))
    await timed('density by codec', async () => {
      const results = await enhancedDensity(input);
      print(
        table(
          'Density by codec: tteok ingest with 720p 2.5 Mbps copy-mode publishers; HEVC and AV1 over Enhanced RTMP (nginx-rtmp takes neither)',
          ['system', 'streams', 'CPU/stream', 'MiB/stream', 'stalled'],
          results.map((r) => [r.system, String(r.streams), fmt(r.cpuPerStream, 2, ' %'), fmt(r.memPerStreamMiB, 2), String(r.stalledStreams)]),
        ),
      );
    });

  if (selected.has('gateway'))
    await timed('gateway', async () => {
      const rounds = Number(process.env.BENCH_GATEWAY_ROUNDS ?? 3);
      // BENCH_GATEWAY_COMPARE="label=/path/to/dist/bin/tteok.js;…": other builds of the gateway in the same rounds.
      const variants = (process.env.BENCH_GATEWAY_COMPARE ?? '')
        .split(';')
        .filter(Boolean)
        .map((pair) => {
          const [system, main] = pair.split('=');
          return { system: system!, main: main! };
        });
      const [hello, gateway, ...others] = await gatewayThroughput(10, rounds, variants);
      const row = (r: typeof hello) => [
        r!.system,
        fmt(r!.requestsPerSecond),
        r!.rounds.map((x) => fmt(x)).join(' / '),
        fmt(r!.p99Ms),
        fmt(r!.cpuMicrosPerRequest, 1),
        String(r!.errors),
      ];
      print(
        table(
          `Gateway lookups under autocannon (50 connections, ${rounds} alternating rounds of 10 s)`,
          ['system', 'req/s (mean)', 'rounds', 'p99 ms', 'server CPU µs/req', 'errors'],
          [
            row(hello),
            row(gateway),
            ['ratio', ratio(gateway!.requestsPerSecond, hello!.requestsPerSecond), '', '', ratio(hello!.cpuMicrosPerRequest, gateway!.cpuMicrosPerRequest), ''],
            ...others.flatMap((o) => [
              row(o),
              [
                `ratio to tteok gateway`,
                ratio(o.requestsPerSecond, gateway!.requestsPerSecond),
                '',
                '',
                ratio(gateway!.cpuMicrosPerRequest, o.cpuMicrosPerRequest),
                '',
              ],
            ]),
          ],
        ),
      );
      print('Target: gateway ≥ 0.8× hello-world');
    });

  if (selected.has('transcoder'))
    await timed('transcoder', async () => {
      const r = await transcoderCost(['720p', '480p', '360p'], 30, 'dist');
      print(
        table(
          `Transcoder: a 1080p30 source (${r.segments} segments of 2 s, ${r.mediaSeconds} s) to ${r.presets.join('/')}, libx264 veryfast`,
          ['system', 'CPU s', 'cores per ladder', 'wall s'],
          [
            [
              'tteok transcoder (one POST and one ffmpeg per segment)',
              fmt(r.tteokCpuSeconds, 1),
              fmt(r.tteokCpuSeconds / r.mediaSeconds, 2),
              fmt(r.tteokWallSeconds, 1),
            ],
            ['the same ffmpeg command alone, whole stream', fmt(r.aloneCpuSeconds, 1), fmt(r.aloneCpuSeconds / r.mediaSeconds, 2), fmt(r.aloneWallSeconds, 1)],
            ['ratio', ratio(r.tteokCpuSeconds, r.aloneCpuSeconds), '', ''],
          ],
        ),
      );
      print('Target: tteok ≤ 1.10× the encoder alone (CPU)');
    });

  if (selected.has('ladder'))
    await timed('rendition origin latency', async () => {
      const ladderSeconds = Number(process.env.BENCH_LADDER_SECONDS ?? 60);
      const presets = (process.env.BENCH_LADDER_PRESETS ?? '720p,480p,360p').split(',').map((p) => p.trim());
      // The encode competes with whatever else the machine runs: its load is part of the figure.
      const load = loadavg()[0]!;
      const results = await renditionLatency(presets, ladderSeconds);
      const source = results.find((r) => r.rendition === 'source')!;
      print(
        table(
          `Origin latency per rendition (segment's last frame at the ingest → listed in its stored playlist), ms: a 1080p30 source, ${ladderSeconds} s, TTEOK_TRANSCODER=local, SeaweedFS`,
          ['rendition', 'segments', 'gaps', 'median', 'p95', 'median − source', 'encode s (mean)', 'missing, by reason (whole run)'],
          results.map((r) => [
            r.rendition,
            String(r.samples.length),
            String(r.gaps),
            fmt(r.median),
            fmt(r.p95),
            r === source ? '' : fmt(r.median - source.median, 0, ' ms'),
            r === source ? '' : fmt(r.encodeSeconds, 2),
            r.missing,
          ]),
        ),
      );
      print(`Load average (1 min) before the run: ${fmt(load, 1)}, after: ${fmt(loadavg()[0]!, 1)}.`);
      print('Target: a rendition reaches the origin at most one segment (2 s here) after the source.');
    });

  if (selected.has('controlplane'))
    await timed('control plane', async () => {
      const r = await controlPlane(Number(process.env.BENCH_STREAMS ?? 1000));
      print(
        table(
          `Control plane: ${r.streams} LiveStreams created on a real kube-apiserver`,
          ['figure', 'value'],
          [
            ['seconds from first create to all Ready', fmt(r.secondsToAllReady, 1)],
            ['controller API requests per stream', fmt(r.controllerRequestsPerStream, 1)],
            ['controller RSS after converging (MiB)', fmt(r.controllerRssMiB, 0)],
          ],
        ),
      );
      print(`Requests by kind: ${r.requestsByKind.map(([k, n]) => `${k} ${n}`).join(', ')}`);
      print('Target: 1,000 LiveStreams Ready in under 60 s with O(1) API calls each');
    });
} finally {
  await stopAll();
  print(
    table(
      'Time taken',
      ['step', 'elapsed'],
      [...timings.map(([name, ms]) => [name, elapsed(ms)]), ['total (with set-up)', elapsed(performance.now() - benchStarted)]],
    ),
  );
}
process.exit(0);
