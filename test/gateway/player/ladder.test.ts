// The player page with an adaptive ladder (issue 19), in headless Chromium
// (Debian's package, playwright-core): `tteok gateway` as a process
// (harness/ladder-gateway.ts: the Kubernetes view on a real kube-apiserver,
// the local origin) serving live streams laid out on disk as the ingest
// stores them (harness/ladder-on-disk.ts: real CMAF from Debian's ffmpeg,
// one segment a second):
// - `show` has three renditions: the page offers a quality menu (a labelled
//   <select>: Auto, then each rendition by its name, height and bit rate),
//   says which rendition plays, and plays the one picked, then Auto again;
// - `plain` has no ladder: no menu;
// - the list shows each live stream's thumbnail, and a placeholder for a
//   stream without one (not live, or its thumbnail missing).
import t from 'tap';
import { launchBrowser, type Browser } from '../../../harness/browser.ts';
import { startLadderGateway } from '../../../harness/ladder-gateway.ts';
import { encodeRenditions, encodeThumbnail, LadderOnDisk } from '../../../harness/ladder-on-disk.ts';
import { waitFor } from '../../../harness/wait.ts';
import { join } from 'node:path';

const NS = 'viewers';
const SECONDS = 60;
const gw = await startLadderGateway({
  namespace: NS,
  streams: [
    { name: 'show', access: 'public' },
    { name: 'plain', access: 'public' },
    { name: 'off', access: 'public' },
  ],
});
let browser: Browser | undefined;
const feeds: Array<{ stop(): void; done: Promise<void> }> = [];
t.teardown(async () => {
  for (const f of feeds) f.stop();
  await Promise.all(feeds.map((f) => f.done));
  await browser?.close();
  await gw.stop();
});

const renditions = await encodeRenditions(
  [
    { name: 'source', width: 854, height: 480, videoKbps: 1000 },
    { name: '360p', width: 640, height: 360, videoKbps: 600 },
    { name: '160p', width: 284, height: 160, videoKbps: 200 },
  ],
  SECONDS,
);
const SESSION = 'mk3x-5e6f7a8b';
const show = new LadderOnDisk(join(gw.origin, NS, 'show'), SESSION, renditions);
const plain = new LadderOnDisk(join(gw.origin, NS, 'plain'), SESSION, renditions.slice(0, 1), 6, true);
await show.writeThumbnail(await encodeThumbnail());
for (const stream of [show, plain]) {
  await stream.publish(3);
  feeds.push(stream.publishEverySecond());
}
await gw.setLive('show', true);
await gw.setLive('plain', true);

interface Stats {
  playing: boolean;
  currentTime: number;
  levels: string[];
  level: number | null;
  levelName: string | null;
  autoLevel: boolean;
  thumbnails: Record<string, string>;
  errors: string[];
}

t.test('a stream with renditions: the quality menu, the rendition playing, a choice and Auto', async (tt) => {
  browser = await launchBrowser();
  const { page } = browser;
  const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
  await page.goto(`${gw.url}/?stream=${NS}/show`);
  await waitFor(
    'the video to play',
    async () => {
      const s = await stats();
      return s.playing && s.currentTime > 1 ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((error: unknown) => {
    tt.comment(browser!.console.join('\n'));
    throw error;
  });

  const menu = page.getByLabel('Quality');
  tt.ok(await menu.isVisible(), 'a quality menu, found by its label');
  tt.equal(await menu.evaluate((e) => e.tagName), 'SELECT', 'a real <select>');
  const options = await menu.locator('option').allTextContents();
  tt.equal(options.length, 4, 'Auto and three renditions');
  tt.match(options[0], /^Auto/, 'Auto first');
  tt.match(options[1], /^source · 480p · \d/, 'the source: its name, height and bit rate');
  tt.match(options[2], /^360p · \d/, 'then 360p (its name says its height)');
  tt.match(options[3], /^160p · \d+ kbit\/s$/, 'then 160p');
  tt.equal(await menu.inputValue(), '-1', 'Auto is chosen');

  const playing = await waitFor('the rendition playing shown', async () => {
    const text = (await page.textContent('#playing-level')) ?? '';
    return text.startsWith('Playing: ') ? text : undefined;
  });
  const s = await stats();
  tt.equal(playing, `Playing: ${s.levelName}`, `the page says which rendition plays (${s.levelName})`);
  tt.equal(s.autoLevel, true);

  // Pick 160p: hls.js switches to it at the next segment, and the page says so.
  const lowest = await menu.locator('option', { hasText: '160p' }).getAttribute('value');
  await menu.selectOption(lowest!);
  const switched = await waitFor(
    '160p to play',
    async () => {
      const now = await stats();
      return now.levelName?.startsWith('160p') ? now : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  tt.equal(switched.autoLevel, false, 'a rendition picked: not Auto');
  tt.match(await page.textContent('#playing-level'), /^Playing: 160p/, 'the page shows 160p playing');
  const frame = await page.evaluate(() => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return [v.videoWidth, v.videoHeight];
  });
  await waitFor(
    'the video element to show 284x160 frames',
    async () => {
      const size = await page.evaluate(() => {
        const v = document.getElementById('video') as HTMLVideoElement;
        return `${v.videoWidth}x${v.videoHeight}`;
      });
      return size === '284x160' ? size : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  tt.pass(`the video element's frames are 284x160 (were ${frame.join('x')})`);

  await menu.selectOption('-1');
  await waitFor('Auto again', async () => ((await stats()).autoLevel ? true : undefined), { timeoutMs: 5_000 });
  tt.match(await menu.locator('option').first().textContent(), /^Auto/, 'Auto chosen again');
  const after = await stats();
  tt.ok(after.playing, 'still playing');
  tt.same(after.errors, [], 'no fatal player error');
});

t.test('a stream without renditions: no quality menu', async (tt) => {
  const { page } = browser!;
  await page.goto(`${gw.url}/?stream=${NS}/plain`);
  await waitFor(
    'the video to play',
    async () => {
      const s = await page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
      return s.playing && s.currentTime > 1 ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  tt.equal(await page.getByLabel('Quality').isVisible(), false, 'one rendition: nothing to choose, no menu');
});

t.test("the list shows each live stream's thumbnail, a placeholder otherwise", async (tt) => {
  const { page } = browser!;
  const showThumb = page.locator(`nav [data-stream="${NS}/show"]`);
  await waitFor('the thumbnail of show', async () => ((await showThumb.evaluate((e) => e.tagName)) === 'IMG' ? true : undefined), { timeoutMs: 15_000 });
  const size = await showThumb.evaluate((img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight]);
  tt.same(size, [320, 180], 'show: its JPEG, decoded');
  for (const name of ['plain', 'off']) {
    const element = page.locator(`nav [data-stream="${NS}/${name}"]`);
    await waitFor(`the entry of ${name}`, async () => ((await element.count()) === 1 ? true : undefined), { timeoutMs: 10_000 });
    tt.match(await element.getAttribute('class'), /placeholder/, `${name}: a placeholder (${name === 'off' ? 'not live' : 'no thumbnail stored'})`);
  }
  tt.equal(
    await page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats.thumbnails[`viewers/plain`]),
    'failed',
    'plain: its thumbnail URL was tried and failed',
  );
});
