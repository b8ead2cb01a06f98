// The player page with what OBS 30+ can send besides H.264 + AAC: the
// one-machine mode (`tteok local`) packages what ffmpeg 9 publishes over
// Enhanced RTMP, and the page plays it with hls.js in headless Chromium
// (Debian's package). AV1 + Opus video and audio-only streams must play:
// currentTime advances and hls.js reports no fatal error. Which codecs this
// Chromium can decode through Media Source Extensions (HEVC depends on the
// build and the platform) is reported, and asserted for AV1, Opus and AAC.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { launchBrowser, type Browser } from '../../../harness/browser.ts';
import { parsePlaylist } from '../../../harness/hls.ts';
import { bannerStreamKey, localModePorts, spawnLocalMode } from '../../../harness/local-mode.ts';
import { stopAll, type ManagedProcess } from '../../../harness/process.ts';
import { FFMPEG9, publishTestPattern, type PublishOptions } from '../../../harness/publisher.ts';
import { httpReady, waitFor } from '../../../harness/wait.ts';

const home = mkdtempSync(join(tmpdir(), 'tteok-codecs-player-'));
const ports = await localModePorts();
const { rtmpPort, gatewayPort } = ports;
let browser: Browser | undefined;

t.teardown(async () => {
  await browser?.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const local: ManagedProcess = spawnLocalMode(home, ports, {
  TTEOK_RECONNECT_GRACE_SECONDS: '2',
  TTEOK_LOG_LEVEL: 'info',
});
const key = await bannerStreamKey(local);
const gateway = `http://127.0.0.1:${gatewayPort}`;
await httpReady(`${gateway}/readyz`);
browser = await launchBrowser();
const page = browser.page;

type Stats = { state: string; playing: boolean; currentTime: number; errors: string[] };
const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);

/** Waits until the origin serves the new run's playlist: not ended, two segments. */
async function waitForLiveRun(what: string): Promise<void> {
  await waitFor(
    `${what}: a live playlist with two segments`,
    async () => {
      const res = await fetch(`${gateway}/origin/default/demo/index.m3u8`);
      const p = res.ok ? parsePlaylist(await res.text()) : undefined;
      return p && !p.ended && p.segments.length >= 2 ? true : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 250 },
  );
}

/** Publishes with ffmpeg 9, opens the player page and checks that it plays; stops the publisher after. */
async function assertPlays(tt: Test, what: string, options: Omit<PublishOptions, 'url'>): Promise<void> {
  const publisher = publishTestPattern({
    url: `rtmp://127.0.0.1:${rtmpPort}/live/${key}`,
    binary: FFMPEG9,
    size: '320x180',
    fps: 15,
    gopSeconds: 1,
    outputArgs: ['-rtmp_enhanced_codecs', 'hvc1,av01,Opus'],
    name: `ffmpeg9-${what}`,
    ...options,
  });
  try {
    await waitForLiveRun(what);
    await page.goto(`${gateway}/?stream=default/demo`);
    const first = await waitFor(
      `${what}: the page to play`,
      async () => {
        const s = await stats();
        return s.playing && s.currentTime > 1 ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch((error: unknown) => {
      tt.comment(browser!.console.join('\n'));
      throw error;
    });
    const later = await waitFor(
      `${what}: currentTime to advance 2 s`,
      async () => {
        const s = await stats();
        return s.currentTime > first.currentTime + 2 ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    tt.ok(later.currentTime > first.currentTime + 2, `${what}: currentTime advances (${first.currentTime.toFixed(2)} → ${later.currentTime.toFixed(2)})`);
    tt.same(later.errors, [], `${what}: no fatal hls.js error`);
    const tracks = await page.evaluate(() => {
      const v = document.getElementById('video') as HTMLVideoElement & { audioTracks?: { length: number } };
      return { width: v.videoWidth, height: v.videoHeight };
    });
    if (options.video === false) tt.same(tracks, { width: 0, height: 0 }, `${what}: no picture, audio only`);
    else tt.same(tracks, { width: 320, height: 180 }, `${what}: the 320x180 picture is decoded`);
  } finally {
    await publisher.stop('SIGINT', 10_000);
    // The run ends cleanly; the next case starts a new one.
    await waitFor(
      'the run to end',
      async () => {
        const res = await fetch(`${gateway}/origin/default/demo/index.m3u8`);
        return res.ok && parsePlaylist(await res.text()).ended ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    await page.goto('about:blank');
  }
}

t.test('what this Chromium decodes through Media Source Extensions', async (tt) => {
  await page.goto(`${gateway}/`);
  const types: Record<string, string> = {
    'H.264 + AAC': 'video/mp4; codecs="avc1.64001f,mp4a.40.2"',
    'HEVC (hvc1)': 'video/mp4; codecs="hvc1.1.6.L93.B0"',
    AV1: 'video/mp4; codecs="av01.0.04M.08"',
    Opus: 'audio/mp4; codecs="opus"',
    AAC: 'audio/mp4; codecs="mp4a.40.2"',
  };
  const supported: Record<string, boolean> = {};
  for (const [name, type] of Object.entries(types)) supported[name] = await page.evaluate((ty) => MediaSource.isTypeSupported(ty), type);
  tt.comment(
    `Chromium ${browser!.context.browser()?.version() ?? ''} MSE support: ${Object.entries(supported)
      .map(([n, ok]) => `${n} ${ok ? 'yes' : 'no'}`)
      .join(', ')}`,
  );
  tt.ok(supported.AV1, 'AV1');
  tt.ok(supported.Opus, 'Opus in MP4');
  tt.ok(supported.AAC, 'AAC');
});

t.test('the player page plays AV1 + Opus', (tt) =>
  assertPlays(tt, 'AV1 + Opus', { video: ['-c:v', 'libsvtav1', '-preset', '12', '-b:v', '300k'], audio: ['-c:a', 'libopus', '-b:a', '64k', '-ac', '2'] }),
);

t.test('the player page plays audio-only Opus', (tt) =>
  assertPlays(tt, 'audio-only Opus', { video: false, audio: ['-c:a', 'libopus', '-b:a', '64k', '-ac', '2'] }),
);

t.test('the player page plays audio-only AAC', (tt) => assertPlays(tt, 'audio-only AAC', { video: false, audio: ['-c:a', 'aac', '-b:a', '64k', '-ac', '2'] }));

t.test('HEVC: played where this Chromium decodes it; otherwise the page says so instead of loading forever', async (tt) => {
  await page.goto(`${gateway}/`);
  const decodesHevc = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L60.90"'));
  const hevc = {
    video: ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-b:v', '300k'],
    audio: ['-c:a', 'aac', '-b:a', '64k', '-ac', '2'],
  };
  if (decodesHevc) {
    await assertPlays(tt, 'HEVC + AAC', hevc);
    return;
  }
  const publisher = publishTestPattern({
    url: `rtmp://127.0.0.1:${rtmpPort}/live/${key}`,
    binary: FFMPEG9,
    size: '320x180',
    fps: 15,
    outputArgs: ['-rtmp_enhanced_codecs', 'hvc1,av01,Opus'],
    name: 'ffmpeg9-hevc',
    ...hevc,
  });
  try {
    // The previous run's ended playlist stays at the origin until this run's first segment replaces it.
    await waitForLiveRun('HEVC + AAC');
    await page.goto(`${gateway}/?stream=default/demo`);
    const shown = await waitFor(
      'the page to say it cannot decode HEVC',
      async () => {
        const s = await page.evaluate(() => ({
          unsupported: (window as unknown as { tteokStats: { unsupportedCodec?: string | null } }).tteokStats.unsupportedCodec ?? null,
          overlay: document.getElementById('overlay')!.textContent ?? '',
        }));
        return s.unsupported ? s : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 250 },
    );
    tt.match(shown.unsupported, /hvc1/, `the codec it cannot decode is named (${shown.unsupported})`);
    tt.match(shown.overlay, /cannot decode.*HEVC/i, `the viewer reads why: "${shown.overlay}"`);
    // It stays that way rather than restarting the player on every list refresh.
    const errorsBefore = (await stats()).errors.length;
    await sleep(5000);
    tt.equal((await stats()).errors.length, errorsBefore, 'no further attempts while the same run is live');
  } finally {
    await publisher.stop('SIGINT', 10_000);
    await page.goto('about:blank');
  }
});

t.test('SIGTERM stops the one-machine mode cleanly', async (tt) => {
  await browser?.close();
  await sleep(100);
  await local.stop('SIGTERM', 30_000);
  tt.equal((await local.exited).code, 0);
});
