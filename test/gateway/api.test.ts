// The gateway's HTTP API through fastify.inject, on the real local stream
// view (a real key file, watched) with live events driven by the test:
// every route's schema, the JSON error bodies, CORS, the local origin's
// headers, ranges and path checks, the player assets, the metrics, and that
// no stream key ever appears in a response. The playlist follower is tested
// against a small HTTP server on loopback serving playlists the test writes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { createLogger } from '../../common/log.ts';
import type { StreamRef } from '../../common/livestream.ts';
import type { LiveEvents, StreamState, StreamView } from '../../common/stream-view.ts';
import { loadGatewayConfig } from '../../gateway/config.ts';
import { parseMediaPlaylist } from '../../common/media-playlist.ts';
import { createGateway } from '../../gateway/gateway.ts';
import { GatewayMetrics, OTHER } from '../../gateway/metrics.ts';
import { RequestDurationHistogram } from '../../gateway/request-durations.ts';
import { Histogram, Registry } from 'prom-client';
import { parseRange } from '../../gateway/plugins/origin.ts';
import { LocalStreamView } from '../../gateway/views/local-stream-view.ts';
import { FileKeySource } from '../../common/keys/file-key-source.ts';
import { writeKeyFile, metricValue, type TestStream } from '../../harness/ingest-process.ts';
import { waitFor } from '../../harness/wait.ts';

const log = createLogger('gateway-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');

const STREAMS: TestStream[] = [
  { name: 'demo', key: 'demo_key_AAAAAAAAAAAAAAAAAAAA1', spec: { title: 'Demo <b>stream</b>' } },
  { name: 'off', key: 'off_key_BBBBBBBBBBBBBBBBBBBBBB2', spec: { title: 'Switched off', enabled: false } },
  { name: 'show.v2', namespace: 'other', key: 'show_key_CCCCCCCCCCCCCCCCCCCC3' },
];
const LATE: TestStream = { name: 'late', key: 'late_key_DDDDDDDDDDDDDDDDDDDD4', spec: { title: 'Added later' } };
const ALL_KEYS = [...STREAMS, LATE].map((s) => s.key);

class TestLiveEvents implements LiveEvents {
  private readonly listeners: Array<(ref: StreamRef, live: boolean, since: Date | undefined) => void> = [];
  onLiveChange(listener: (ref: StreamRef, live: boolean, since: Date | undefined) => void): void {
    this.listeners.push(listener);
  }
  emit(ref: StreamRef, live: boolean, since?: Date): void {
    for (const l of this.listeners) l(ref, live, since);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tteok-gateway-'));
const keysFile = join(dir, 'keys.yaml');
const originDir = join(dir, 'origin');
writeKeyFile(keysFile, STREAMS);

// The local origin's content, as the ingest's local store leaves it.
const RUN = 'mabc123-0000aaaa';
const SEGMENT = Buffer.alloc(1000, 7);
for (let i = 0; i < SEGMENT.length; i++) SEGMENT[i] = i % 251;
const PLAYLIST = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '#EXT-X-TARGETDURATION:1',
  '#EXT-X-MEDIA-SEQUENCE:0',
  '#EXT-X-INDEPENDENT-SEGMENTS',
  `#EXT-X-MAP:URI="${RUN}/init-1.mp4"`,
  '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z',
  '#EXTINF:1.000,',
  `${RUN}/0.m4s`,
  '',
].join('\n');
mkdirSync(join(originDir, 'default', 'demo', RUN), { recursive: true });
writeFileSync(join(originDir, 'default', 'demo', 'index.m3u8'), PLAYLIST);
writeFileSync(join(originDir, 'default', 'demo', RUN, 'init-1.mp4'), Buffer.from('init segment bytes'));
writeFileSync(join(originDir, 'default', 'demo', RUN, '0.m4s'), SEGMENT);
writeFileSync(join(originDir, 'default', 'demo', '.index.m3u8.tmp'), 'partial');
mkdirSync(join(originDir, 'other', 'show.v2'), { recursive: true });
writeFileSync(join(originDir, 'other', 'show.v2', 'index.m3u8'), PLAYLIST.replace('TARGETDURATION:1', 'TARGETDURATION:4'));
// Something beside the origin a traversal would want.
writeFileSync(join(dir, 'secret.m3u8'), `#EXTM3U\n# ${STREAMS[0]!.key}\n`);

const live = new TestLiveEvents();
const view = new LocalStreamView({ keys: new FileKeySource(keysFile, log), live });
await view.ready();

const CDN = 'https://cdn.example.test/media/';
const app = await createGateway({
  view,
  playbackBaseUrl: CDN,
  prefix: 'tteok',
  originDir,
  followIntervalMs: 0,
  log,
});
await app.ready();

/** Every response any test got, checked for keys at the end. */
const responses: LightMyRequestResponse[] = [];
async function request(options: InjectOptions | string, on: FastifyInstance = app): Promise<LightMyRequestResponse> {
  const res = await on.inject(options);
  responses.push(res);
  return res;
}

function assertJsonError(tt: Test, res: LightMyRequestResponse, status: number, what: string): void {
  tt.equal(res.statusCode, status, `${what}: status ${status}`);
  tt.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`);
  const body = res.json() as Record<string, unknown>;
  tt.same(Object.keys(body).sort(), ['error', 'message', 'statusCode'], `${what}: { statusCode, error, message }`);
  tt.equal(body.statusCode, status, `${what}: statusCode in the body`);
  tt.type(body.error, 'string');
  tt.type(body.message, 'string');
}

t.teardown(async () => {
  await app.close();
  await view.close();
  rmSync(dir, { recursive: true, force: true });
});

t.test('GET /v1/streams lists every LiveStream of the key file with its playback URL', async (tt) => {
  const res = await request('/v1/streams');
  tt.equal(res.statusCode, 200);
  tt.match(res.headers['content-type'], /^application\/json/);
  const { streams } = res.json() as { streams: Array<Record<string, unknown>> };
  tt.same(
    streams.map((s) => `${s.namespace}/${s.name}`),
    ['default/demo', 'default/off', 'other/show.v2'],
    'sorted by namespace and name',
  );
  tt.same(
    streams[0],
    {
      name: 'demo',
      namespace: 'default',
      title: 'Demo <b>stream</b>',
      phase: 'Ready',
      live: false,
      liveSince: null,
      access: 'public',
      playbackUrl: 'https://cdn.example.test/media/tteok/default/demo/index.m3u8',
      thumbnailUrl: null,
      renditions: [],
    },
    'the CDN base joined with the stable playlist key under TTEOK_S3_PREFIX',
  );
  tt.equal(streams[1]!.phase, 'Disabled', 'enabled: false is Disabled');
  tt.equal(streams[2]!.playbackUrl, 'https://cdn.example.test/media/tteok/other/show.v2/index.m3u8');
});

t.test('filters: namespace and live, checked by the schema', async (tt) => {
  tt.same(
    (await request('/v1/streams?namespace=other')).json().streams.map((s: StreamState) => s.name),
    ['show.v2'],
  );
  tt.same((await request('/v1/streams?namespace=nowhere')).json().streams, []);
  tt.same((await request('/v1/streams?live=true')).json().streams, [], 'nothing is live yet');
  tt.equal((await request('/v1/streams?live=false')).json().streams.length, 3);
  assertJsonError(tt, await request('/v1/streams?live=maybe'), 400, 'live=maybe');
  tt.match((await request('/v1/streams?live=maybe')).json().message, /live/, 'the message names the field');
  assertJsonError(tt, await request('/v1/streams?namespace=Not_A_Namespace'), 400, 'malformed namespace filter');
  assertJsonError(tt, await request(`/v1/streams?namespace=${'a'.repeat(64)}`), 400, 'namespace longer than a DNS label');
});

t.test('GET /v1/streams/:namespace/:name', async (tt) => {
  const res = await request('/v1/streams/other/show.v2');
  tt.equal(res.statusCode, 200);
  tt.same(res.json(), {
    name: 'show.v2',
    namespace: 'other',
    title: '',
    phase: 'Ready',
    live: false,
    liveSince: null,
    access: 'public',
    playbackUrl: 'https://cdn.example.test/media/tteok/other/show.v2/index.m3u8',
    thumbnailUrl: null,
    renditions: [],
  });
  assertJsonError(tt, await request('/v1/streams/default/nope'), 404, 'unknown stream');
  tt.match((await request('/v1/streams/default/nope')).json().message, /default\/nope/);
  assertJsonError(tt, await request('/v1/streams/default/Bad_Name'), 400, 'malformed name');
  assertJsonError(tt, await request('/v1/streams/-bad/demo'), 400, 'malformed namespace');
  assertJsonError(tt, await request(`/v1/streams/default/${'a'.repeat(64)}`), 400, 'name too long');
  assertJsonError(tt, await request('/v1/streams/default/demo.'), 400, 'name ending in a dot');
  assertJsonError(tt, await request('/v1/streams/default'), 404, 'missing name');
});

t.test('live state follows the live events; phase Live, liveSince', async (tt) => {
  const since = new Date('2026-02-03T04:05:06.789Z');
  // Looked up before the change, so its serialized answer is cached: the change must replace it.
  tt.equal((await request('/v1/streams/default/demo')).json().live, false);
  live.emit({ namespace: 'default', name: 'demo' }, true, since);
  let demo = (await request('/v1/streams/default/demo')).json();
  tt.equal(demo.phase, 'Live');
  tt.equal(demo.live, true);
  tt.equal(demo.liveSince, '2026-02-03T04:05:06.789Z');
  tt.same(
    (await request('/v1/streams?live=true')).json().streams.map((s: StreamState) => s.name),
    ['demo'],
  );
  live.emit({ namespace: 'default', name: 'demo' }, false, undefined);
  demo = (await request('/v1/streams/default/demo')).json();
  tt.equal(demo.phase, 'Ready');
  tt.equal(demo.live, false);
  tt.equal(demo.liveSince, null);
});

t.test('the view reloads the key file when it changes', async (tt) => {
  writeKeyFile(keysFile, [...STREAMS, LATE]);
  const late = await waitFor<{ title: string }>(
    'the added stream to appear',
    async () => {
      const res = await request('/v1/streams/default/late');
      return res.statusCode === 200 ? res.json() : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  tt.equal(late.title, 'Added later');
  // A broken file is refused as a whole: the view keeps the last good one.
  writeFileSync(keysFile, 'apiVersion: tteok.dev/v1alpha1\nkind: LiveStream\nmetadata: { name: BAD }\nstreamKey: x\n');
  await sleep(1000);
  tt.equal((await request('/v1/streams/default/late')).statusCode, 200, 'still served from the last good file');
});

t.test('errors are JSON everywhere', async (tt) => {
  assertJsonError(tt, await request('/nope'), 404, 'unknown route');
  assertJsonError(tt, await request('/v1'), 404, 'unknown route under /v1');
  assertJsonError(tt, await request({ method: 'POST', url: '/v1/streams', payload: { a: 1 } }), 404, 'unrouted method');
  assertJsonError(tt, await request({ method: 'DELETE', url: '/v1/streams/default/demo' }), 404, 'DELETE');
});

t.test('CORS: any origin by default, GET and HEAD, preflight answered', async (tt) => {
  const res = await request({ url: '/v1/streams', headers: { origin: 'https://app.example.test' } });
  tt.equal(res.headers['access-control-allow-origin'], '*');
  const pre = await request({
    method: 'OPTIONS',
    url: '/v1/streams/default/demo',
    headers: { origin: 'https://app.example.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' },
  });
  tt.equal(pre.statusCode, 204, 'preflight answered');
  tt.equal(pre.headers['access-control-allow-origin'], '*');
  tt.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD');
  tt.match(String(pre.headers['access-control-allow-headers']), /range/i);
  tt.equal(pre.headers['access-control-max-age'], '600', 'browsers may cache the preflight for 10 minutes');
  tt.equal(pre.body, '', 'with no body');
  const loose = await request({ method: 'OPTIONS', url: '/v1/streams', headers: { origin: 'https://app.example.test' } });
  tt.equal(loose.statusCode, 204, 'an OPTIONS without Access-Control-Request-Method is answered alike, not with a text/plain 400');
  const unrouted = await request({ url: '/no/such/route', headers: { origin: 'https://app.example.test' } });
  tt.equal(unrouted.statusCode, 404);
  tt.equal(unrouted.headers['access-control-allow-origin'], '*', 'unknown routes too');
  const origin = await request({ url: `/origin/default/demo/${RUN}/0.m4s`, headers: { origin: 'https://app.example.test' } });
  tt.equal(origin.headers['access-control-allow-origin'], '*', 'the local origin too');
  tt.match(String(origin.headers['access-control-expose-headers']), /Content-Range/);
  const error = await request({ url: '/v1/streams/default/nope', headers: { origin: 'https://app.example.test' } });
  tt.equal(error.headers['access-control-allow-origin'], '*', 'error responses too, so the frontend can read them');
});

t.test('CORS: a configured list of origins', async (tt) => {
  const config = loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: CDN, TTEOK_CORS_ORIGINS: 'https://app.example.test, https://admin.example.test' });
  tt.same(config.corsOrigins, ['https://app.example.test', 'https://admin.example.test']);
  const strict = await createGateway({ view, playbackBaseUrl: CDN, corsOrigins: config.corsOrigins, followIntervalMs: 0, player: false, log });
  tt.teardown(() => strict.close());
  const allowed = await request({ url: '/v1/streams', headers: { origin: 'https://admin.example.test' } }, strict);
  tt.equal(allowed.headers['access-control-allow-origin'], 'https://admin.example.test');
  tt.match(String(allowed.headers.vary), /Origin/);
  const other = await request({ url: '/v1/streams', headers: { origin: 'https://evil.example.test' } }, strict);
  tt.equal(other.statusCode, 200, 'the request itself is served (CORS is enforced by browsers)');
  tt.notOk(other.headers['access-control-allow-origin'], 'but no allow-origin for an origin not listed');
  const pre = await request(
    { method: 'OPTIONS', url: '/v1/streams', headers: { origin: 'https://evil.example.test', 'access-control-request-method': 'GET' } },
    strict,
  );
  tt.notOk(pre.headers['access-control-allow-origin'], 'nor in a preflight');
  const allowedPre = await request(
    { method: 'OPTIONS', url: '/v1/streams', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'GET' } },
    strict,
  );
  tt.equal(allowedPre.statusCode, 204, "a listed origin's preflight is answered");
  tt.equal(allowedPre.headers['access-control-allow-origin'], 'https://app.example.test');
  tt.equal(allowedPre.headers['access-control-allow-methods'], 'GET, HEAD');
  assertJsonError(tt, await request('/', strict), 404, 'player page turned off');
  tt.throws(() => loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: CDN, TTEOK_CORS_ORIGINS: 'https://app.example.test/path' }), /TTEOK_CORS_ORIGINS/);
});

t.test('probes', async (tt) => {
  const health = await request('/healthz');
  tt.equal(health.statusCode, 200);
  tt.same(health.json(), { status: 'ok' });
  const ready = await request('/readyz');
  tt.equal(ready.statusCode, 200);
  tt.same(ready.json(), { status: 'ready' });

  // Any StreamView plugs in (the Kubernetes one will); one not synced yet is not ready.
  const unsynced: StreamView = {
    synced: false,
    list: () => [],
    get: () => undefined,
    ready: () => new Promise(() => undefined),
    onChange: () => undefined,
    close: async () => undefined,
  };
  const other = await createGateway({ view: unsynced, playbackBaseUrl: CDN, followIntervalMs: 0, player: false, log });
  tt.teardown(() => other.close());
  assertJsonError(tt, await request('/readyz', other), 503, 'not synced');
  tt.equal((await request('/healthz', other)).statusCode, 200, 'but healthy');
});

t.test('the local origin: content types, cache lifetimes, HEAD, ranges', async (tt) => {
  const playlist = await request('/origin/default/demo/index.m3u8');
  tt.equal(playlist.statusCode, 200);
  tt.equal(playlist.headers['content-type'], 'application/vnd.apple.mpegurl');
  tt.equal(playlist.headers['cache-control'], 'public, max-age=0', 'half of a 1 s target duration, floored');
  tt.equal(playlist.body, PLAYLIST);
  const longer = await request('/origin/other/show.v2/index.m3u8');
  tt.equal(longer.headers['cache-control'], 'public, max-age=2', 'half of a 4 s target duration');

  const init = await request(`/origin/default/demo/${RUN}/init-1.mp4`);
  tt.equal(init.headers['content-type'], 'video/mp4');
  tt.equal(init.headers['cache-control'], 'public, max-age=31536000, immutable');
  const segment = await request(`/origin/default/demo/${RUN}/0.m4s`);
  tt.equal(segment.statusCode, 200);
  tt.equal(segment.headers['content-type'], 'video/mp4');
  tt.equal(segment.headers['cache-control'], 'public, max-age=31536000, immutable');
  tt.equal(segment.headers['accept-ranges'], 'bytes');
  tt.equal(segment.headers['content-length'], String(SEGMENT.length));
  tt.ok(segment.rawPayload.equals(SEGMENT), 'the bytes on disk');

  const head = await request({ method: 'HEAD', url: `/origin/default/demo/${RUN}/0.m4s` });
  tt.equal(head.statusCode, 200);
  tt.equal(head.headers['content-length'], String(SEGMENT.length), 'HEAD gives the length');
  tt.equal(head.headers['content-type'], 'video/mp4');
  tt.equal(head.rawPayload.length, 0, 'and no body');

  const range = await request({ url: `/origin/default/demo/${RUN}/0.m4s`, headers: { range: 'bytes=100-199' } });
  tt.equal(range.statusCode, 206);
  tt.equal(range.headers['content-range'], `bytes 100-199/${SEGMENT.length}`);
  tt.equal(range.headers['content-length'], '100');
  tt.ok(range.rawPayload.equals(SEGMENT.subarray(100, 200)));
  const suffix = await request({ url: `/origin/default/demo/${RUN}/0.m4s`, headers: { range: 'bytes=-10' } });
  tt.ok(suffix.rawPayload.equals(SEGMENT.subarray(-10)), 'suffix range');
  const open = await request({ url: '/origin/default/demo/index.m3u8', headers: { range: 'bytes=8-' } });
  tt.equal(open.statusCode, 206);
  tt.equal(open.body, PLAYLIST.slice(8), 'open-ended range of a playlist');
  const beyond = await request({ url: `/origin/default/demo/${RUN}/0.m4s`, headers: { range: 'bytes=5000-6000' } });
  assertJsonError(tt, beyond, 416, 'range beyond the end');
  tt.equal(beyond.headers['content-range'], `bytes */${SEGMENT.length}`);
  tt.equal(beyond.headers['cache-control'], 'no-store', 'an error is not cached');
  const multi = await request({ url: `/origin/default/demo/${RUN}/0.m4s`, headers: { range: 'bytes=0-1,5-6' } });
  tt.equal(multi.statusCode, 200, 'several ranges: the whole file, as RFC 9110 allows');

  tt.same(parseRange('bytes=0-0', 10), [0, 0]);
  tt.same(parseRange('bytes=5-100', 10), [5, 9]);
  tt.same(parseRange('bytes=-100', 10), [0, 9]);
  tt.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  tt.equal(parseRange('items=0-1', 10), undefined);
});

t.test('the local origin: 404 for missing, nothing outside the media layout', async (tt) => {
  assertJsonError(tt, await request('/origin/default/demo/nope/9.m4s'), 404, 'missing segment');
  const head = await request({ method: 'HEAD', url: '/origin/default/nope/index.m3u8' });
  tt.equal(head.statusCode, 404, 'missing playlist (HEAD): 404');
  tt.match(head.headers['content-type'], /^application\/json/, "missing playlist (HEAD): the JSON error's headers, without its body");
  assertJsonError(tt, await request(`/origin/default/demo/${RUN}`), 400, 'a directory');
  const refused = [
    '/origin/../secret.m3u8',
    '/origin/default/../../secret.m3u8',
    '/origin/default/demo/..%2F..%2F..%2Fsecret.m3u8',
    '/origin/%2e%2e/%2e%2e/secret.m3u8',
    '/origin/default/demo/%2e%2e%2f%2e%2e%2f..%2fsecret.m3u8',
    '/origin/default/demo/.index.m3u8.tmp',
    '/origin/default/demo/..%5c..%5csecret.m3u8',
    '/origin//etc/passwd',
    '/origin/default/demo/index.m3u8%00.m4s',
    '/origin/x/y/keys.yaml',
    '/origin/',
  ];
  for (const url of refused) {
    const res = await request(url);
    tt.ok(res.statusCode === 400 || res.statusCode === 404, `${url}: refused (${res.statusCode})`);
    tt.match(res.headers['content-type'], /^application\/json/, `${url}: with a JSON body`);
    tt.notMatch(res.body, /EXTM3U|partial/, `${url}: no file content`);
  }
});

t.test('the player page and its assets', async (tt) => {
  const page = await request('/');
  tt.equal(page.statusCode, 200);
  tt.match(page.headers['content-type'], /^text\/html/);
  tt.match(page.body, /<video id="video"/);
  tt.match(page.body, /src="\/vendor\/hls\.min\.js"/, 'hls.js from the gateway, no CDN script');
  tt.notMatch(page.body, /(src|href)="https?:\/\//, 'no external script, style or link in the page');
  tt.match(page.body, /<meta name="tteok-src-origins" content="https:\/\/cdn\.example\.test">/, "?src= may play from the CDN's origin by default");
  const csp = String(page.headers['content-security-policy']);
  tt.match(csp, /script-src 'self'/);
  tt.match(csp, /connect-src 'self' https:\/\/cdn\.example\.test(;|$)/, 'the page connects to itself and the CDN only');
  tt.match(csp, /media-src 'self' blob: https:\/\/cdn\.example\.test(;|$)/, 'and plays media from nowhere else');
  tt.equal((await request('/?stream=default/demo')).statusCode, 200);
  tt.equal((await request(`/?src=${encodeURIComponent('https://elsewhere.example.test/x.m3u8')}`)).statusCode, 200, "a refused ?src= is the page's to explain");
  assertJsonError(tt, await request(`/?src=${'a'.repeat(2001)}`), 400, 'an overlong ?src=');
  assertJsonError(tt, await request('/?target=100'), 400, 'target out of range');
  const js = await request('/player.js');
  tt.match(js.headers['content-type'], /^text\/javascript/);
  tt.match(js.body, /window\.tteokStats/);
  tt.match((await request('/player.css')).headers['content-type'], /^text\/css/);
  const loader = await request('/edge-loader.js');
  tt.match(loader.headers['content-type'], /^text\/javascript/);
  tt.match(loader.body, /window\.tteokEdgeLoader/, "the page's playlist loader is served");
  tt.match(page.body, /src="\/edge-loader\.js"/);
  const catchUp = await request('/live-catch-up.js');
  tt.match(catchUp.headers['content-type'], /^text\/javascript/);
  tt.match(catchUp.body, /window\.tteokLiveCatchUp/, "the page's LL-HLS latency keeping is served");
  tt.match(page.body, /src="\/live-catch-up\.js"/);
  const hls = await request({ method: 'HEAD', url: '/vendor/hls.min.js' });
  tt.equal(hls.statusCode, 200);
  tt.match(hls.headers['content-type'], /^text\/javascript/);
  tt.ok(Number(hls.headers['content-length']) > 100_000, 'hls.js is served');
});

t.test('/metrics: request durations by route pattern, never the URL', async (tt) => {
  await request('/v1/streams/default/demo');
  await request('/v1/streams/other/show.v2');
  await request('/no/such/route');
  const res = await request('/metrics');
  tt.equal(res.statusCode, 200);
  tt.match(res.headers['content-type'], /^text\/plain/);
  const text = res.body;
  tt.ok(
    metricValue(text, 'tteok_gateway_http_request_duration_seconds_count', 'method="GET",route="/v1/streams/:namespace/:name",status_code="200"') >= 2,
    'the route pattern',
  );
  tt.ok(
    metricValue(text, 'tteok_gateway_http_request_duration_seconds_count', 'method="GET",route="unmatched",status_code="404"') >= 1,
    'unknown routes under one label',
  );
  tt.notMatch(text, /route="\/v1\/streams\/default/, 'no URL as a label');
  tt.notMatch(text, /no\/such\/route/);
  tt.match(text, /tteok_gateway_process_cpu_seconds_total/, 'process metrics under the gateway prefix');
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
    if (!line.startsWith('tteok_gateway_')) tt.fail(`metric without the tteok_gateway_ prefix: ${line}`);
  }
});

t.test('segment latency and playlist staleness, following playlists over HTTP', async (tt) => {
  // A CDN stand-in on loopback: serves whatever playlist the test sets per path.
  const playlists = new Map<string, string>();
  const cdn: Server = createServer((req, res) => {
    const body = playlists.get(req.url ?? '');
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' }).end(body);
  });
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => cdn.close(() => resolve())));
  const base = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}/cdn`;

  const liveStates = new Map<string, StreamState>();
  const listeners: Array<() => void> = [];
  const liveView: StreamView = {
    synced: true,
    list: () => [...liveStates.values()],
    get: (ref) => liveStates.get(`${ref.namespace}/${ref.name}`),
    ready: async () => undefined,
    onChange: (l) => void listeners.push(l),
    close: async () => undefined,
  };
  const setLive = (namespace: string, name: string, isLive: boolean) => {
    liveStates.set(`${namespace}/${name}`, { namespace, name, title: '', phase: isLive ? 'Live' : 'Ready', live: isLive });
    for (const l of listeners) l();
  };
  const playlistFor = (segments: Array<{ seq: number; pdt: number }>, ended = false) =>
    [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-TARGETDURATION:1',
      `#EXT-X-MEDIA-SEQUENCE:${segments[0]?.seq ?? 0}`,
      '#EXT-X-MAP:URI="r/init-1.mp4"',
      ...segments.flatMap((s) => [`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.pdt).toISOString()}`, '#EXTINF:1.000,', `r/${s.seq}.m4s`]),
      ...(ended ? ['#EXT-X-ENDLIST'] : []),
      '',
    ].join('\n');

  const followed = await createGateway({
    view: liveView,
    playbackBaseUrl: base,
    followIntervalMs: 50,
    metricsMaxStreams: 1,
    player: false,
    log,
  });
  tt.teardown(() => followed.close());
  // An old run's segments are listed before following starts: a baseline, not observed.
  const now = Date.now();
  playlists.set(
    '/cdn/default/a/index.m3u8',
    playlistFor([
      { seq: 0, pdt: now - 60_000 },
      { seq: 1, pdt: now - 59_000 },
    ]),
  );
  setLive('default', 'a', true);
  setLive('default', 'b', true);
  setLive('default', 'c', false);
  await followed.ready();
  await waitFor(
    'the first playlist of a to be fetched',
    async () => {
      const text = (await followed.inject('/metrics')).body;
      return /tteok_gateway_playlist_staleness_seconds\{namespace="default",name="a"\}/.test(text) || undefined;
    },
    { timeoutMs: 10_000 },
  );
  // b had no playlist yet (404): every segment that appears is new. Segments
  // whose last frame arrived 300 ms ago, and one 1.3 s ago.
  const t0 = Date.now();
  playlists.set(
    '/cdn/default/b/index.m3u8',
    playlistFor([
      { seq: 0, pdt: t0 - 2300 },
      { seq: 1, pdt: t0 - 1300 },
    ]),
  );
  playlists.set(
    '/cdn/default/a/index.m3u8',
    playlistFor([
      { seq: 0, pdt: now - 60_000 },
      { seq: 1, pdt: now - 59_000 },
      { seq: 2, pdt: t0 - 1300 },
    ]),
  );
  const text = await waitFor(
    'observations for both streams',
    async () => {
      const body = (await request('/metrics', followed)).body;
      const a = metricValue(body, 'tteok_gateway_segment_latency_seconds_count', 'namespace="default",name="a"');
      const other = metricValue(body, 'tteok_gateway_segment_latency_seconds_count', `namespace="${OTHER}",name="${OTHER}"`);
      return a >= 1 && other >= 2 ? body : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  tt.equal(metricValue(text, 'tteok_gateway_segment_latency_seconds_count', 'namespace="default",name="a"'), 1, 'a: only the new segment, not the baseline');
  tt.equal(
    metricValue(text, 'tteok_gateway_segment_latency_seconds_count', `namespace="${OTHER}",name="${OTHER}"`),
    2,
    'b: beyond TTEOK_METRICS_MAX_STREAMS=1, aggregated under _other',
  );
  tt.notMatch(text, /name="b"/, 'b has no labels of its own');
  tt.notMatch(text, /name="c"/, 'streams that are not live are not followed');
  const aSum = metricValue(text, 'tteok_gateway_segment_latency_seconds_sum', 'namespace="default",name="a"');
  tt.ok(aSum >= 0.3 && aSum < 30, `a: latency ${aSum}s is now - (PDT + duration)`);
  tt.ok(
    metricValue(text, 'tteok_gateway_segment_latency_seconds_bucket', 'le="0.3",namespace="default",name="a"') === 0 &&
      metricValue(text, 'tteok_gateway_segment_latency_seconds_bucket', 'le="+Inf",namespace="default",name="a"') === 1,
    'in a sub-second bucket above 0.3',
  );
  const staleness = metricValue(text, 'tteok_gateway_playlist_staleness_seconds', 'namespace="default",name="a"');
  tt.ok(staleness >= 0.3, `a: staleness ${staleness}s`);
  tt.ok(
    metricValue(text, 'tteok_gateway_playlist_staleness_seconds', `namespace="${OTHER}",name="${OTHER}"`) >= 0.3,
    '_other: the staleness of its stalest stream',
  );
  tt.equal(metricValue(text, 'tteok_gateway_followed_streams'), 2);
  tt.equal(metricValue(text, 'tteok_gateway_metrics_overflow_streams'), 1);
  tt.ok(metricValue(text, 'tteok_gateway_follow_failures_total', 'reason="not_found"') >= 1, "b's 404 before its first playlist is counted");

  // A stream that stops being live is no longer followed; its staleness goes.
  setLive('default', 'a', false);
  const after = (await request('/metrics', followed)).body;
  tt.notMatch(after, /tteok_gateway_playlist_staleness_seconds\{namespace="default",name="a"\}/);
  tt.match(after, /tteok_gateway_segment_latency_seconds_count\{namespace="default",name="a"\} 1/, 'its histogram stays for the last scrapes');
});

t.test('metric label slots are released some time after a stream ends', async (tt) => {
  const m = new GatewayMetrics(1);
  const a = { namespace: 'default', name: 'a' };
  const b = { namespace: 'default', name: 'b' };
  tt.same(m.labelsFor(a), { namespace: 'default', name: 'a' });
  tt.same(m.labelsFor(b), { namespace: OTHER, name: OTHER }, 'over the cap');
  m.observeSegment(a, 0.5);
  m.streamEnded(a, 1000);
  m.releaseEnded(1000 + 60_000);
  tt.same(m.labelsFor(b), { namespace: OTHER, name: OTHER }, 'an ended stream keeps its slot for a while');
  m.streamEnded(a, 1000);
  m.releaseEnded(1000 + 10 * 60_000);
  tt.same(m.labelsFor(b), { namespace: 'default', name: 'b' }, 'then the slot is free');
  tt.notMatch(await m.registry.metrics(), /name="a"/, "and the ended stream's series are gone");
});

t.test('the request histogram is exported exactly as a prom-client Histogram would be', async (tt) => {
  const config = {
    name: 'tteok_gateway_http_request_duration_seconds',
    help: 'Duration of HTTP requests.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.01, 0.1, 1],
  };
  const ours = new Registry();
  const durations = new RequestDurationHistogram({ ...config, registers: [ours] });
  const reference = new Registry();
  const histogram = new Histogram({ ...config, registers: [reference] });
  const observations: Array<[string, string | undefined, number, number]> = [
    ['GET', '/v1/streams/:namespace/:name', 200, 0.0004],
    ['GET', '/v1/streams/:namespace/:name', 200, 0.001],
    ['GET', '/v1/streams/:namespace/:name', 200, 0.05],
    ['GET', '/v1/streams/:namespace/:name', 404, 2.5],
    ['HEAD', '/origin/*', 206, 0.2],
    ['GET', undefined, 404, 0.003],
  ];
  for (const [method, route, status, seconds] of observations) {
    durations.observe(method, route, status, seconds);
    histogram.observe({ method, route: route ?? 'unmatched', status_code: String(status) }, seconds);
  }
  tt.equal(await ours.metrics(), await reference.metrics(), 'the same exposition text, bucket for bucket');
  const samples = async (r: Registry) =>
    (await r.getMetricsAsJSON()).flatMap((m) => m.values.map((v) => ({ name: (v as { metricName?: string }).metricName, labels: v.labels, value: v.value })));
  tt.same(await samples(ours), await samples(reference), 'and the same samples as JSON');
  ours.resetMetrics();
  tt.notMatch(await ours.metrics(), /_count/, 'reset empties it');
});

t.test('parsing playlists for the follower', async (tt) => {
  const { segments } = parseMediaPlaylist(PLAYLIST + '#EXTINF:0.500,\nx/1.m4s\n#EXT-X-ENDLIST\n');
  tt.same(
    segments.map((s) => s.uri),
    [`${RUN}/0.m4s`, 'x/1.m4s'],
  );
  tt.equal(segments[1]!.programDateTime, Date.parse('2026-01-01T00:00:01.000Z'), 'a segment without its own PDT follows on from the previous one');
  tt.equal(segments[1]!.duration, 0.5);
});

t.test('configuration', async (tt) => {
  const d = loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net' });
  tt.same(
    d,
    {
      host: '0.0.0.0',
      trustedProxies: [],
      port: 8080,
      playbackBaseUrl: 'https://d123.cloudfront.net',
      prefix: '',
      corsOrigins: ['*'],
      followIntervalMs: 500,
      metricsMaxStreams: 100,
      view: 'local',
      keysFile: 'tteok-keys.yaml',
      localOriginDir: undefined,
      playlistMaxAgeSeconds: undefined,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 5_000,
      connectionTimeoutMs: 30_000,
      playerSrcOrigins: undefined,
      playbackTokens: { keyring: undefined, apiKey: undefined, ttlSeconds: 14400 },
      events: { heartbeatMs: 15_000, maxConnections: 1000, maxConnectionsPerAddress: 20, bufferSize: 1000 },
      lowLatency: { enabled: true, upstreamTimeoutMs: 20_000, originSecret: undefined },
    },
    'defaults',
  );
  tt.throws(
    () => loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net', TTEOK_ORIGIN_SECRET: 'short' }),
    /TTEOK_ORIGIN_SECRET must be at least 32/,
  );
  tt.throws(() => loadGatewayConfig({}), /TTEOK_PLAYBACK_BASE_URL is required/);
  tt.equal(loadGatewayConfig({ TTEOK_STORAGE: 'local' }).localOriginDir, '.tteok/origin', 'the local origin needs no CDN URL');
  tt.throws(() => loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: 'ftp://x' }), /http/);
  tt.throws(() => loadGatewayConfig({ TTEOK_STORAGE: 'local', TTEOK_FOLLOW_INTERVAL_MS: 'soon' }), /TTEOK_FOLLOW_INTERVAL_MS/);
  tt.throws(() => loadGatewayConfig({ TTEOK_STORAGE: 'local', TTEOK_VIEW: 'etcd' }), /TTEOK_VIEW/);
});

t.test('the ?src= allow-list (TTEOK_PLAYER_SRC_ORIGINS)', async (tt) => {
  const env = { TTEOK_PLAYBACK_BASE_URL: CDN };
  tt.same(loadGatewayConfig({ ...env, TTEOK_PLAYER_SRC_ORIGINS: 'https://a.example.test, http://127.0.0.1:8081' }).playerSrcOrigins, [
    'https://a.example.test',
    'http://127.0.0.1:8081',
  ]);
  tt.same(loadGatewayConfig({ ...env, TTEOK_PLAYER_SRC_ORIGINS: 'none' }).playerSrcOrigins, [], '"none": the page\'s own origin only');
  for (const bad of ['*', 'https://a.example.test/path', 'a.example.test', 'https://A.example.test', 'https://a.example.test:443', 'ftp://a.example.test']) {
    tt.throws(() => loadGatewayConfig({ ...env, TTEOK_PLAYER_SRC_ORIGINS: bad }), /TTEOK_PLAYER_SRC_ORIGINS must be/, `"${bad}" refused`);
  }
  const listed = await createGateway({ view, playbackBaseUrl: CDN, playerSrcOrigins: ['https://a.example.test'], followIntervalMs: 0, log });
  tt.teardown(() => listed.close());
  const page = await request('/', listed);
  tt.match(page.body, /<meta name="tteok-src-origins" content="https:\/\/a\.example\.test">/, 'a configured list replaces the default');
  tt.match(
    String(page.headers['content-security-policy']),
    /connect-src 'self' https:\/\/cdn\.example\.test https:\/\/a\.example\.test(;|$)/,
    "the CDN stays reachable for the stream list's playback URLs",
  );
});

t.test('no stream key in any response body or header', async (tt) => {
  tt.ok(responses.length > 50, `${responses.length} responses checked`);
  let leaks = 0;
  for (const res of responses) {
    const text = res.body + JSON.stringify(res.headers);
    for (const key of ALL_KEYS) if (text.includes(key)) leaks++;
  }
  tt.equal(leaks, 0, 'none of the keys in the key file appears anywhere');
});
