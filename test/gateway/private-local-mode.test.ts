// Private streams end to end in the one-machine mode (`tteok local`, as
// `make run` starts it): a LiveStream with spec.playback.access: private,
// published by ffmpeg over RTMP. The gateway's lookup hides its playback URL,
// the token endpoint mints tokens only for a bearer of the API key, the local
// origin applies the CloudFront Function's rule (common/playback-token.ts) to
// the playlist, the media segments and the init segment, and the player page
// in headless Chromium plays the stream with ?token= and not without it.
// Tokens a backend mints itself with the shared secret (the second key of
// the keyring, as during a rotation) work the same. A public stream in the
// namespace `t` plays beside it (the token marker is `_t`, which no namespace
// can be).
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { mintPlaybackToken } from '../../common/playback-token.ts';
import { launchBrowser, type Browser } from '../../harness/browser.ts';
import { parsePlaylist } from '../../harness/hls.ts';
import { localModePorts, spawnLocalMode } from '../../harness/local-mode.ts';
import { stopAll, type ManagedProcess } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { httpReady, waitFor } from '../../harness/wait.ts';

const home = mkdtempSync(join(tmpdir(), 'tteok-private-'));
const ports = await localModePorts();
const { rtmpPort, gatewayPort } = ports;
let browser: Browser | undefined;

t.teardown(async () => {
  await browser?.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const STREAM_KEY = 'members-stream-key-0123456789abcdef';
const OPEN_KEY = 'open-stream-key-0123456789abcdefghij';
const T_KEY = 'namespace-t-stream-key-0123456789abcd';
const API_KEY = 'backend-api-key-0123456789abcdefghijklmnop';
const CURRENT = { id: 'k2', secret: 'current-secret-0123456789abcdefghijklmnopqrstuvwxyz' };
const PREVIOUS = { id: 'k1', secret: 'previous-secret-0123456789abcdefghijklmnopqrstuvwxy' };
writeFileSync(
  join(home, 'keys.yaml'),
  [
    'apiVersion: tteok.dev/v1alpha1',
    'kind: LiveStream',
    'metadata: { name: members, namespace: default }',
    'spec: { title: Members only, playback: { access: private } }',
    `streamKey: ${STREAM_KEY}`,
    '---',
    'apiVersion: tteok.dev/v1alpha1',
    'kind: LiveStream',
    'metadata: { name: open, namespace: default }',
    'spec: { title: Open to all }',
    `streamKey: ${OPEN_KEY}`,
    '---',
    'apiVersion: tteok.dev/v1alpha1',
    'kind: LiveStream',
    'metadata: { name: news, namespace: t }',
    'spec: { title: Namespace t }',
    `streamKey: ${T_KEY}`,
    '',
  ].join('\n'),
);

const local: ManagedProcess = spawnLocalMode(home, ports, {
  TTEOK_RECONNECT_GRACE_SECONDS: '2',
  TTEOK_DELETE_DELAY_SECONDS: '1',
  // Mid-rotation: the current key signs, the previous one still verifies.
  TTEOK_PLAYBACK_TOKEN_KEYS: `${CURRENT.id}:${CURRENT.secret},${PREVIOUS.id}:${PREVIOUS.secret}`,
  TTEOK_PLAYBACK_API_KEY: API_KEY,
  TTEOK_PLAYBACK_TOKEN_TTL_SECONDS: '7200',
  TTEOK_LOG_LEVEL: 'info',
});
const gateway = `http://127.0.0.1:${gatewayPort}`;
await local.waitForLine(/^\s+Watch:\s+http\S+\/$/, 60_000);
await httpReady(`${gateway}/readyz`);

// The local origin has no key prefix: tokens are signed for the stream under ''.
const members = { prefix: '', namespace: 'default', name: 'members' };
const open = { prefix: '', namespace: 'default', name: 'open' };
type Json = Record<string, unknown>;
async function json(url: string, init?: RequestInit): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as Json, headers: res.headers };
}
const mint = (init: { auth?: string; body?: unknown; stream?: string } = {}) =>
  json(`${gateway}/v1/streams/${init.stream ?? 'default/members'}/playback-token`, {
    method: 'POST',
    headers: {
      ...(init.auth !== undefined ? { authorization: init.auth } : {}),
      ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });

let token = '';
/** The status of a GET, its body read to the end (an unread body keeps the connection busy). */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

t.test('the lookup says private and gives no usable playbackUrl without a token', async (t) => {
  const one = await json(`${gateway}/v1/streams/default/members`);
  t.equal(one.status, 200);
  t.equal(one.body.access, 'private');
  t.equal(one.body.playbackUrl, null);
  const open = await json(`${gateway}/v1/streams/default/open`);
  t.equal(open.body.access, 'public');
  t.equal(open.body.playbackUrl, `${gateway}/origin/default/open/index.m3u8`, "a public stream's URL is unchanged");
  const list = await json(`${gateway}/v1/streams`);
  t.same(
    (list.body.streams as Json[]).map((s) => [s.name, s.access, s.playbackUrl === null]),
    [
      ['members', 'private', true],
      ['open', 'public', false],
      ['news', 'public', false],
    ],
  );
  t.notMatch(local.lines.join('\n'), CURRENT.secret, 'the secret is never printed');
});

t.test('minting a token needs the API key; it is scoped, expiring and playable', async (t) => {
  const none = await mint();
  t.equal(none.status, 401, 'no Authorization header');
  t.equal(none.headers.get('www-authenticate'), 'Bearer realm="tteok"');
  t.equal((await mint({ auth: `Bearer ${API_KEY.slice(0, -1)}x` })).status, 401, 'a wrong key');
  t.equal((await mint({ auth: `Bearer ${STREAM_KEY}` })).status, 401, 'the stream key is not an API key');
  t.equal((await mint({ auth: API_KEY })).status, 401, 'not a bearer header');
  t.equal((await mint({ auth: `Bearer ${API_KEY}`, stream: 'default/nope' })).status, 404, 'an unknown stream');
  const pub = await mint({ auth: `Bearer ${API_KEY}`, stream: 'default/open' });
  t.equal(pub.status, 409, 'a public stream needs no token');
  t.match(pub.body.message, /is public/);
  const tooLong = await mint({ auth: `Bearer ${API_KEY}`, body: { ttlSeconds: 7201 } });
  t.equal(tooLong.status, 400, 'at most the configured lifetime');

  const before = Date.now();
  const ok = await mint({ auth: `Bearer ${API_KEY}` });
  t.equal(ok.status, 200, JSON.stringify(ok.body));
  t.equal(ok.headers.get('cache-control'), 'no-store');
  token = String(ok.body.token);
  t.match(token, /^k2\.\d+\.[0-9a-f]{64}$/, 'signed with the first (current) key');
  const expiresAt = Date.parse(String(ok.body.expiresAt));
  t.ok(expiresAt >= before + 7_199_000 && expiresAt <= Date.now() + 7_201_000, 'expires after the configured TTL');
  t.equal(ok.body.playbackUrl, `${gateway}/origin/_t/${token}/_private/default/members/index.m3u8`);
  const short = await mint({ auth: `Bearer ${API_KEY}`, body: { ttlSeconds: 60 } });
  t.ok(Date.parse(String(short.body.expiresAt)) <= Date.now() + 61_000, 'a shorter lifetime on request');

  const withToken = await json(`${gateway}/v1/streams/default/members?token=${token}`);
  t.equal(withToken.body.playbackUrl, ok.body.playbackUrl, 'the lookup with the token gives the playable URL');
  const openToken = mintPlaybackToken(CURRENT, open, 600).token;
  const wrong = await json(`${gateway}/v1/streams/default/members?token=${openToken}`);
  t.equal(wrong.status, 403, "another stream's token is refused");
  t.match(wrong.body.message, /bad-signature/);
});

let publisher: ManagedProcess | undefined;

t.test("the private stream's playlist, segments and init segment need a valid token at the origin", async (t) => {
  publisher = publishTestPattern({ url: `rtmp://127.0.0.1:${rtmpPort}/live/${STREAM_KEY}` });
  await waitFor('the stream to go live', async () => ((await json(`${gateway}/v1/streams/default/members`)).body.live === true ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  const tokenUrl = `${gateway}/origin/_t/${token}/_private/default/members/index.m3u8`;
  const playlist = await waitFor(
    'a playlist with three segments',
    async () => {
      const res = await fetch(tokenUrl);
      if (res.status !== 200) {
        await res.arrayBuffer();
        return undefined;
      }
      const p = parsePlaylist(await res.text());
      return p.segments.length >= 3 ? p : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 250 },
  );
  const segment = playlist.segments.at(-1)!;
  const segUrl = new URL(segment.uri, tokenUrl).href;
  const initUrl = new URL(segment.map, tokenUrl).href;
  t.match(segUrl, `/origin/_t/${token}/_private/default/members/`, 'relative segment URIs inherit the token');
  t.equal(await statusOf(segUrl), 200, 'segment with the token');
  const init = await fetch(initUrl);
  t.equal(init.status, 200, 'init segment with the token');
  t.equal(
    Buffer.from(await init.arrayBuffer())
      .subarray(4, 8)
      .toString('latin1'),
    'ftyp',
  );

  const bare = (url: string) => url.replace(`/_t/${token}`, '');
  for (const [what, url] of [
    ['playlist', tokenUrl],
    ['segment', segUrl],
    ['init segment', initUrl],
  ] as const) {
    const res = await fetch(bare(url));
    t.equal(res.status, 403, `${what} without a token: 403`);
    t.match(((await res.json()) as Json).message, /needs a playback token/);
    t.equal(await statusOf(bare(url).replace('/_private/', '/')), 404, `${what}: nothing stored on the public path`);
    t.equal(await statusOf(bare(url).replace('/_private/', '/%5Fprivate/')), 403, `${what}, marker percent-encoded: 403`);
  }
  const expired = mintPlaybackToken(CURRENT, members, 60, Date.now() - 3_600_000).token;
  t.equal(await statusOf(tokenUrl.replace(token, expired)), 403, 'an expired token');
  const [kid, exp, sig] = token.split('.');
  t.equal(await statusOf(tokenUrl.replace(token, `${kid}.${Number(exp) + 86_400}.${sig}`)), 403, 'a token whose expiry was edited');
  const other = mintPlaybackToken(CURRENT, open, 600).token;
  t.equal(await statusOf(tokenUrl.replace(token, other)), 403, "another stream's token");
  const byBackend = mintPlaybackToken(PREVIOUS, members, 600).token;
  t.equal(await statusOf(tokenUrl.replace(token, byBackend)), 200, 'a token the backend minted with the previous key (rotation)');
  const unknownKey = mintPlaybackToken({ id: 'k0', secret: 'retired-secret-0123456789abcdefghijklmnopqrstuv' }, members, 600).token;
  t.equal(await statusOf(tokenUrl.replace(token, unknownKey)), 403, 'a retired key');
  const otherPrefix = mintPlaybackToken(CURRENT, { ...members, prefix: 'live' }, 600).token;
  t.equal(await statusOf(tokenUrl.replace(token, otherPrefix)), 403, 'a token for the stream under another key prefix');
  const v1 = await statusOf(tokenUrl.replace(`/_t/${token}`, `/t/${token}`));
  t.ok(v1 === 400 || v1 === 403, `a v1 URL (/t/<token>/…) is not a token path: refused (${v1}), nothing served`);
});

t.test("a public stream in the namespace t plays while the private stream's tokens work", async (t) => {
  const news = publishTestPattern({ url: `rtmp://127.0.0.1:${rtmpPort}/live/${T_KEY}`, size: '160x90', name: 'ffmpeg-news' });
  try {
    const lookup = await waitFor(
      't/news to go live',
      async () => {
        const res = await json(`${gateway}/v1/streams/t/news`);
        return res.body.live === true ? res.body : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const url = String(lookup.playbackUrl);
    t.equal(url, `${gateway}/origin/t/news/index.m3u8`, 'its playback URL starts with /origin/t/');
    const playlist = await waitFor(
      'its playlist with a segment',
      async () => {
        const res = await fetch(url);
        const text = await res.text();
        if (res.status === 404) return undefined; // not stored yet
        if (res.status !== 200) return { status: res.status, text };
        const p = parsePlaylist(text);
        return p.segments.length >= 1 ? { status: 200, text, p } : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 250 },
    );
    t.equal(playlist.status, 200, `the playlist: ${playlist.status} ${playlist.status === 200 ? '' : playlist.text}`);
    const segment = playlist.p?.segments.at(-1);
    if (segment) {
      t.equal(await statusOf(new URL(segment.uri, url).href), 200, 'a media segment');
      t.equal(await statusOf(new URL(segment.map, url).href), 200, 'its init segment');
    }
    t.equal(await statusOf(`${gateway}/origin/_t/${token}/_private/default/members/index.m3u8`), 200, 'meanwhile the private stream plays with its token');
    t.equal(await statusOf(`${gateway}/origin/_private/default/members/index.m3u8`), 403, 'and not without');
  } finally {
    await news.stop('SIGINT', 10_000);
  }
});

type Stats = { state: string; playing: boolean; currentTime: number; errors: string[] };

t.test('the player plays the private stream with ?token= and not without', async (t) => {
  browser = await launchBrowser();
  const { page } = browser;
  const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);

  await page.goto(`${gateway}/?stream=default/members`);
  await waitFor('the page to say the stream is private', async () => ((await page.textContent('#overlay'))?.includes('private') ? true : undefined), {
    timeoutMs: 20_000,
    intervalMs: 250,
  });
  t.equal((await stats()).playing, false, 'without a token: not playing');
  t.equal((await stats()).currentTime, 0);

  // hls.js itself, pointed at the private playlist without a token, gets a fatal 403.
  const bareUrl = `${gateway}/origin/_private/default/members/index.m3u8`;
  const failure = await page.evaluate(async (url) => {
    type HlsLike = {
      on(e: string, f: (ev: unknown, d: { fatal: boolean; details: string; response?: { code: number } }) => void): void;
      loadSource(u: string): void;
      destroy(): void;
    };
    const Hls = (window as unknown as { Hls: { new (c: unknown): HlsLike; Events: { ERROR: string } } }).Hls;
    const hls = new Hls({ manifestLoadPolicy: { default: { maxTimeToFirstByteMs: 5000, maxLoadTimeMs: 5000, timeoutRetry: null, errorRetry: null } } });
    const result = await new Promise<{ details: string; code: number | undefined }>((resolve) => {
      hls.on(Hls.Events.ERROR, (_e, d) => {
        if (d.fatal) resolve({ details: d.details, code: d.response?.code });
      });
      hls.loadSource(url);
    });
    hls.destroy();
    return result;
  }, bareUrl);
  t.equal(failure.code, 403, `hls.js without a token: ${failure.details}, HTTP ${failure.code}`);

  const wrong = mintPlaybackToken(CURRENT, open, 600).token;
  await page.goto(`${gateway}/?stream=default/members&token=${wrong}`);
  const refused = await waitFor(
    'the page to report the refused token',
    async () => {
      const s = await stats();
      return s.errors.some((e) => e.startsWith('token:')) ? s : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  t.equal(refused.playing, false, "another stream's token: not playing");

  await page.goto(`${gateway}/?stream=default/members&token=${token}`);
  const playing = await waitFor(
    'the video to play with the token',
    async () => {
      const s = await stats();
      return s.playing && s.currentTime > 1 ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((error: unknown) => {
    t.comment(browser!.console.join('\n'));
    throw error;
  });
  t.equal(playing.state, 'live');
  const later = await waitFor(
    'playback to advance',
    async () => {
      const s = await stats();
      return s.currentTime > playing.currentTime + 2 ? s : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  t.ok(later.playing, `plays on (${playing.currentTime.toFixed(2)} → ${later.currentTime.toFixed(2)} s)`);
});

t.test('stop', async (t) => {
  await browser?.close();
  const runs = join(home, 'origin', '_private', 'default', 'members');
  const runFolders = () => (existsSync(runs) ? readdirSync(runs).filter((f) => f !== 'index.m3u8') : []);
  t.ok(runFolders().length > 0, 'the run is stored under _private/');
  await publisher?.stop('SIGINT', 10_000);
  await waitFor('the stream to end', async () => ((await json(`${gateway}/v1/streams/default/members`)).body.live === false ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  // retention.keepAfterEnd is false: the ended run's media is deleted from the private path too.
  await waitFor(
    "the run's media to be deleted",
    async () => {
      return runFolders().length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  t.pass("the private run's segments are deleted after the delay");
  await local.stop('SIGTERM', 30_000);
  const { code, signal } = await local.exited;
  t.equal(code, 0, `exited 0 (signal ${signal})`);
  if (code !== 0) t.comment(local.lines.slice(-30).join('\n'));
});
