// The transcoder killed under a playing viewer (issue 19, items 2 and 5), as
// the viewer sees it: `tteok local` (ingest and gateway in one process) with
// TTEOK_TRANSCODER=remote pointing at `tteok transcoder` as a process of its
// own, a 720p source with the 360p and 160p renditions, and the player page in
// headless Chromium (Debian's package, playwright-core) on a 3 Mbit/s
// downlink (CDP Network.emulateNetworkConditions), where hls.js's Auto plays
// a transcoded rendition (its switch-up rule wants twice the source's bit rate).
// The transcoder is then SIGKILLed: the renditions' playlists get EXT-X-GAP
// where their segments do not come, and the viewer must see no fatal hls.js
// error, the video go on advancing, and hls.js end up on a level whose
// playlist still gets segments (the source). The transcoder started again on
// the same port, the renditions come back with new segments.
// The media is encoded once up front and published with stream copy, so the
// machine's two cores go to the transcoder and the browser.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseMediaPlaylist, type ParsedMediaPlaylist } from '../../../common/media-playlist.ts';
import { launchBrowser, type Browser } from '../../../harness/browser.ts';
import { writeKeyFile } from '../../../harness/ingest-process.ts';
import { localModePorts, spawnLocalMode } from '../../../harness/local-mode.ts';
import { spawnManaged, stopAll } from '../../../harness/process.ts';
import { FFMPEG9 } from '../../../harness/publisher.ts';
import { startTranscoderProcess } from '../../../harness/transcoder-process.ts';
import { httpReady, waitFor } from '../../../harness/wait.ts';

const run = promisify(execFile);
/** The emulated downlink: carries the source (about 2 Mbit/s), but hls.js's Auto stays on a rendition below it. */
const DOWNLINK_BITS = 3_000_000;
/** Seconds of media published; the test needs about 90 of them. */
const MEDIA_SECONDS = 150;
const RENDITIONS = ['360p', '160p'];
/** How long after the kill the viewer is watched for frames advancing. */
const AFTER_KILL_MS = 30_000;
/** Seconds of media the video must advance in that window (the rest is the switch and a wait or two). */
const MIN_ADVANCE_S = 15;

const home = mkdtempSync(join(tmpdir(), 'tteok-killed-'));
let browser: Browser | undefined;
t.teardown(async () => {
  await browser?.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const KEY = 'killed-transcoder-key-0123456789abcdef';
const NAME = 'killed';
writeKeyFile(join(home, 'keys.yaml'), [{ name: NAME, key: KEY, spec: { title: NAME, renditions: RENDITIONS, hls: { segmentSeconds: 2 } } }]);

// A noisy 720p30 test pattern (so the source really takes its 2 Mbit/s), keyframes every 2 s, and AAC.
const media = join(home, 'source.mkv');
// biome-ignore format: one option and its value per line would be unreadable
await run(FFMPEG9, [
  '-hide_banner', '-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
  '-t', String(MEDIA_SECONDS),
  '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-bf', '0',
  '-b:v', '1800k', '-maxrate', '2M', '-bufsize', '2M',
  '-c:a', 'aac', '-b:a', '96k', '-ac', '2',
  media,
], { timeout: 600_000 });

// Ports picked right before they are used: the encoding above takes a while.
const transcoder = await startTranscoderProcess({ TTEOK_LOG_LEVEL: 'info' });
const ports = await localModePorts();
const local = spawnLocalMode(home, ports, {
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_TRANSCODER: 'remote',
  TTEOK_TRANSCODER_URL: transcoder.url,
  TTEOK_THUMBNAIL_SECONDS: '0',
});
const gateway = `http://127.0.0.1:${ports.gatewayPort}`;
await local.waitForLine(/^\s+Watch:\s+http\S+\/$/, 60_000);
await httpReady(`${gateway}/readyz`);

async function playlist(file: string): Promise<ParsedMediaPlaylist | undefined> {
  const res = await fetch(`${gateway}/origin/default/${NAME}/${file}`);
  return res.ok ? parseMediaPlaylist(await res.text()) : undefined;
}
/** The sequence number of the newest segment a playlist lists with media (not a gap). */
const newestListed = (list: ParsedMediaPlaylist | undefined) => list?.segments.filter((s) => !s.gap).at(-1)?.sequence ?? -1;

interface Stats {
  playing: boolean;
  currentTime: number;
  level: number | null;
  levelName: string | null;
  levelDetails: Array<{ name: string | null; height: number | null; bitrate: number }>;
  levelSwitches: Array<{ at: number; level: number; name: string | null }>;
  waits: Array<{ start: number; end: number }>;
  waitingSince: number | null;
  errors: string[];
}
/** The rendition hls.js plays (the NAME of its variant), or null. */
const playingName = (s: Stats) => (s.level === null ? null : (s.levelDetails[s.level]?.name ?? null));

t.test('the transcoder killed under a playing viewer: no fatal error, the video goes on on the source; restarted, the renditions come back', async (tt) => {
  const publisher = spawnManaged('ffmpeg9-killed', FFMPEG9, [
    ...['-hide_banner', '-nostats', '-loglevel', 'warning', '-re', '-i', media],
    ...['-c', 'copy', '-f', 'flv', `rtmp://127.0.0.1:${ports.rtmpPort}/live/${KEY}`],
  ]);
  tt.teardown(() => publisher.stop());
  await waitFor(
    'every rendition to have segments',
    async () => {
      for (const r of RENDITIONS) if (newestListed(await playlist(`${r}.m3u8`)) < 1) return false;
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );

  browser = await launchBrowser();
  const { page } = browser;
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 20,
    downloadThroughput: DOWNLINK_BITS / 8,
    uploadThroughput: DOWNLINK_BITS / 8,
  });
  const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
  await page.goto(`${gateway}/?stream=default/${NAME}`);

  const before = await waitFor(
    'the video to play a transcoded rendition',
    async () => {
      const s = await stats();
      const name = playingName(s);
      return s.playing && s.currentTime > 0 && name !== null && RENDITIONS.includes(name) ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  tt.comment(`levels: ${before.levelDetails.map((l) => `${l.name} ${(l.bitrate / 1e6).toFixed(2)} Mbit/s`).join(', ')}`);
  tt.ok(RENDITIONS.includes(playingName(before)!), `hls.js's Auto plays a transcoded rendition: ${before.levelName}`);
  tt.same(before.errors, [], 'no fatal error before the kill');

  // The kill: no goodbye to the ingest, whose requests now fail to connect.
  await transcoder.proc.stop('SIGKILL');
  const killedAt = Date.now();
  const sourceAtKill = newestListed(await playlist('source.m3u8'));
  const afterKill = await stats();

  // The viewer: the video advances MIN_ADVANCE_S within AFTER_KILL_MS, and hls.js is on the source by then.
  const advanced = await waitFor(
    `the video to advance ${MIN_ADVANCE_S} s after the kill, on the source`,
    async () => {
      const s = await stats();
      return s.currentTime - afterKill.currentTime >= MIN_ADVANCE_S && playingName(s) === 'source' && s.playing ? s : undefined;
    },
    { timeoutMs: AFTER_KILL_MS, intervalMs: 250 },
  ).catch(async (error: unknown) => {
    const s = await stats();
    tt.comment(`after the kill: currentTime ${afterKill.currentTime.toFixed(1)} → ${s.currentTime.toFixed(1)}, playing ${playingName(s)}`);
    throw error;
  });
  tt.same(advanced.errors, [], 'no fatal hls.js error after the kill');
  tt.ok(
    advanced.currentTime - afterKill.currentTime >= MIN_ADVANCE_S,
    `the video advanced ${(advanced.currentTime - afterKill.currentTime).toFixed(1)} s in ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`,
  );
  const source = await playlist('source.m3u8');
  tt.ok(newestListed(source) >= sourceAtKill + 3, `the level playing (source) still gets segments: ${sourceAtKill} at the kill, ${newestListed(source)} now`);
  for (const r of RENDITIONS) {
    const list = await playlist(`${r}.m3u8`);
    tt.ok(
      list?.segments.some((s) => s.gap && s.sequence > sourceAtKill),
      `${r}.m3u8 marks the segments that did not come as gaps`,
    );
  }
  // Reported, not asserted: the wait the switch costs the viewer (the rendition's playlist waits one
  // segment before it lists a gap, then hls.js loads the source's playlist and a 2 s segment over the link).
  const waited = advanced.waits.reduce((sum, w) => sum + Math.max(0, w.end - Math.max(w.start, killedAt)) / 1000, 0);
  tt.comment(`the video waited ${waited.toFixed(1)} s in all after the kill`);
  const rel = (ms: number) => ((ms - killedAt) / 1000).toFixed(1);
  tt.comment(
    `from the kill (s): switches ${advanced.levelSwitches
      .filter((s) => s.at >= killedAt)
      .map((s) => `${rel(s.at)} ${s.name}`)
      .join(', ')}; waits ${
      advanced.waits
        .filter((w) => w.end >= killedAt)
        .map((w) => `${rel(w.start)}–${rel(w.end)}`)
        .join(', ') || 'none'
    }`,
  );

  // Back again on the same port: the ingest's next requests reach it, and the renditions get new segments.
  await startTranscoderProcess({ TTEOK_LOG_LEVEL: 'info' }, { port: transcoder.port });
  const sourceAtRestart = newestListed(await playlist('source.m3u8'));
  for (const r of RENDITIONS) {
    const newest = await waitFor(
      `${r} to get segments again`,
      async () => {
        const n = newestListed(await playlist(`${r}.m3u8`));
        return n > sourceAtRestart ? n : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    tt.ok(newest > sourceAtRestart, `${r}: a new segment (${newest}) after the restart (the source was at ${sourceAtRestart})`);
  }
  const last = await stats();
  tt.same(last.errors, [], 'no fatal hls.js error at any point');
  tt.ok(last.currentTime > advanced.currentTime, 'the video is still advancing');
});
