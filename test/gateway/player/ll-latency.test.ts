// LL-HLS latency as a viewer sees it (issue 20): the project's player page
// (hls.js, lowLatencyMode) in headless Chromium plays a live stream through
// the one-machine mode (`tteok local`: the gateway's /origin/ asks the
// in-process ingest for blocking playlists and parts) while ffmpeg publishes
// x264 veryfast zerolatency with a 2 s keyframe interval, as Twitch and
// YouTube tell streamers to. The page must use blocking playlist reloads
// (_HLS_msn/_HLS_part), load parts, hit no fatal error, and keep its own
// latency readout (now − playingDate) in a band plain HLS cannot reach with
// 2 s GOPs: a segment cannot be listed before it ends, so a plain player sits
// at least one segment (2 s) plus its hold-back behind the encoder.
// The Kubernetes-shaped path (ingest process, gateway LL origin over HTTP,
// SeaweedFS, a CloudFront-shaped front) is measured by BENCH=ll-latency, and
// played under a holder kill by ll-holder-killed.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { launchBrowser, type Browser } from '../../../harness/browser.ts';
import { bannerStreamKey, localModePorts, spawnLocalMode } from '../../../harness/local-mode.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern, zerolatencyX264 } from '../../../harness/publisher.ts';
import { httpReady, waitFor } from '../../../harness/wait.ts';

/**
 * The median latency the page must stay under. Plain HLS with 2 s segments
 * measured 3.0 s median in Chromium on this machine (issue 20's table): a
 * segment is listed only once it ends, and hls.js stays at least one target
 * duration behind the edge. With 0.333 s parts this test measured 1.29–1.31 s
 * at a load average of 7 on 2 cores (2.06 s once, at a load average of 21).
 * 2.0 s leaves 0.7 s for a busier machine and still fails whenever the
 * player falls back to whole segments.
 */
const MEDIAN_BAND_S = 2.0;
/**
 * How far behind hls.js's target (PART-HOLD-BACK, raised 0.25 s per stall)
 * the page may play, median. hls.js's own rate control measured 0.25–0.30 s
 * (it speeds up only with more than 1 s buffered); the page's measured
 * 0.00–0.07 s in BENCH=ll-latency.
 */
const OVER_TARGET_BAND_S = 0.18;
/** Samples of the page's readout (every 250 ms) that the median is taken over: 20 s of playback. */
const SAMPLES = 80;
/** Seconds of playback before sampling: start-up sits further back until the page's jump or catch-up. */
const SETTLE_PLAYING_S = 8;

interface Stats {
  playing: boolean;
  playingSeconds: number;
  latencies: number[];
  targetLatency: number | null;
  edgeDistance: number | null;
  stalls: number;
  errors: string[];
  catchUp: string;
}

const home = mkdtempSync(join(tmpdir(), 'tteok-ll-latency-'));
const ports = await localModePorts();
let browser: Browser | undefined;
t.teardown(async () => {
  await browser?.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const local = spawnLocalMode(home, ports, { TTEOK_LOG_LEVEL: 'info', TTEOK_LL_PART_SECONDS: '0.333' });
const key = await bannerStreamKey(local);
const gateway = `http://127.0.0.1:${ports.gatewayPort}`;
await httpReady(`${gateway}/readyz`);

t.test('the player plays LL-HLS with blocking reloads and parts, in the LL latency band', async (tt) => {
  const publisher = publishTestPattern({
    url: `rtmp://127.0.0.1:${ports.rtmpPort}/live/${key}`,
    gopSeconds: 2,
    fps: 30,
    size: '640x360',
    video: zerolatencyX264('800k'),
    name: 'll-latency-publisher',
  });
  tt.teardown(() => publisher.stop('SIGKILL'));
  await waitFor(
    'an LL playlist with parts at the origin',
    async () => {
      const res = await fetch(`${gateway}/origin/default/demo/index.m3u8`);
      return res.ok && (await res.text()).includes('#EXT-X-PART:') ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );

  browser = await launchBrowser();
  const { page } = browser;
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
  await page.goto(`${gateway}/?stream=default/demo`);
  const settled = await waitFor(
    `${SETTLE_PLAYING_S} s of playback`,
    async () => {
      const s = await stats();
      return s.playingSeconds >= SETTLE_PLAYING_S ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((error: unknown) => {
    tt.comment(browser?.console.slice(-20).join('\n') ?? '');
    throw error;
  });
  const from = settled.latencies.length;
  // How far behind hls.js's own target the page plays (hls.js alone stays 0.25–0.3 s behind a 1 s target: live-catch-up.js).
  const overTarget: number[] = [];
  const done = await waitFor(
    `${SAMPLES} latency samples`,
    async () => {
      const s = await stats();
      if (s.playing && s.edgeDistance !== null && s.targetLatency !== null) overTarget.push(s.edgeDistance - s.targetLatency);
      return s.errors.length > 0 || s.latencies.length >= from + SAMPLES ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.same(done.errors, [], 'no fatal hls.js error');

  const blocking = requests.filter((u) => u.includes('.m3u8?') && /[?&]_HLS_msn=\d+/.test(u) && /[?&]_HLS_part=\d+/.test(u));
  tt.ok(blocking.length >= 10, `blocking playlist reloads with _HLS_msn and _HLS_part (${blocking.length})`);
  const parts = requests.filter((u) => /\.part\.m4s(\?|$)/.test(u));
  tt.ok(parts.length >= 10, `parts loaded (${parts.length})`);

  const samples = done.latencies.slice(from, from + SAMPLES).sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)]!;
  const p95 = samples[Math.floor(samples.length * 0.95)]!;
  tt.comment(
    `now − playingDate over ${samples.length} samples: median ${median.toFixed(2)} s, p95 ${p95.toFixed(2)} s, ` +
      `hls.js target ${done.targetLatency?.toFixed(2)} s, behind the live edge ${done.edgeDistance?.toFixed(2)} s, stalls ${done.stalls}`,
  );
  tt.ok(median < MEDIAN_BAND_S, `median latency ${median.toFixed(2)} s < ${MEDIAN_BAND_S} s (plain HLS with 2 s GOPs cannot)`);
  overTarget.sort((a, b) => a - b);
  const over = overTarget[Math.floor(overTarget.length / 2)];
  tt.equal(done.catchUp === 'at-target' || done.catchUp === 'catching-up', true, `the page keeps the LL latency target (${done.catchUp})`);
  tt.ok(
    over !== undefined && over < OVER_TARGET_BAND_S,
    `it plays ${over?.toFixed(2)} s behind hls.js's target (median over ${overTarget.length} readings), under ${OVER_TARGET_BAND_S} s`,
  );
});
