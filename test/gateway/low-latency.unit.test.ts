// The gateway's LL origin (gateway/plugins/low-latency.ts) in process, with a
// LowLatencySource test double as the holder (the ingest's side is tested on
// its own): what a CDN or a player sees at /origin/.
// - Kubernetes-shaped (no local directory, a key prefix): playlists with the
//   holder's headers and the parsed blocking query, bad _HLS_* values → 400 at
//   once without asking the holder, N concurrent identical blocking requests →
//   one upstream request (different ones are not merged), no holder → 404,
//   a slow holder → 504 within the bound, an unreachable one → 502, a client
//   that goes away aborts the upstream request (when it was the last one
//   waiting), private streams: token rule or the origin secret header.
// - One-machine (a local directory): live playlists from the holder, the
//   directory when the holder has nothing, segments from the directory and
//   from the holder while not yet stored.
// - HttpLowLatencySource: the ingest route's path and query, status passed on.
// - The claim annotation's URL check.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { createLogger } from '../../common/log.ts';
import type { LowLatencyRequest, LowLatencyResponse, LowLatencySource } from '../../common/low-latency.ts';
import { mintPlaybackToken } from '../../common/playback-token.ts';
import { SEGMENT_CACHE_CONTROL } from '../../common/object-layout.ts';
import { createGateway } from '../../gateway/gateway.ts';
import { inProcessHolders, type HolderResolver } from '../../gateway/low-latency/holders.ts';
import { HttpLowLatencySource } from '../../gateway/low-latency/http-source.ts';
import { llOriginUrl } from '../../gateway/low-latency/lease-holders.ts';
import { ORIGIN_SECRET_HEADER } from '../../gateway/plugins/low-latency.ts';
import { LocalStreamView } from '../../gateway/views/local-stream-view.ts';
import { writeKeyFile } from '../../harness/ingest-process.ts';
import { waitFor } from '../../harness/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-origin-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger('gateway', 'silent');
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, [
  { name: 'open', key: 'open-stream-key-0123456789abcdefghij' },
  { name: 'members', key: 'members-stream-key-0123456789abcdef', spec: { playback: { access: 'private' } } },
]);
const KEY = { id: 'k1', secret: 'token-secret-0123456789abcdefghijklmnopqrstuvwxyz' };
const ORIGIN_SECRET = 'origin-secret-0123456789abcdefghijklmnop';
const PLAYLIST = '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n';

/** A holder: answers what `answer` says, records each request and its abort signal. */
class TestSource implements LowLatencySource {
  readonly calls: Array<{ request: LowLatencyRequest; signal: AbortSignal }> = [];
  answer: (request: LowLatencyRequest, signal: AbortSignal) => Promise<LowLatencyResponse> = async (request) => playlistAnswer(request);

  serve(request: LowLatencyRequest, signal: AbortSignal): Promise<LowLatencyResponse> {
    this.calls.push({ request, signal });
    return this.answer(request, signal);
  }
}

function playlistAnswer(request: LowLatencyRequest): LowLatencyResponse {
  const body = `${PLAYLIST}# ${request.ref.namespace}/${request.ref.name}/${request.file} msn=${request.blocking.msn} part=${request.blocking.part}\n`;
  return { status: 200, contentType: 'application/vnd.apple.mpegurl', cacheControl: 'public, max-age=1', body: new TextEncoder().encode(body) };
}

function notHeld(): LowLatencyResponse {
  return { status: 404, contentType: 'application/json', cacheControl: 'no-store', body: new TextEncoder().encode('{"message":"not live here"}') };
}

/** Resolves once `signal` aborts (the double's view of a blocking wait). */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

async function gateway(options: { holders: HolderResolver; originDir?: string; prefix?: string; upstreamTimeoutMs?: number }): Promise<FastifyInstance> {
  const view = LocalStreamView.fromFile(keysFile, log);
  await view.ready();
  const app = await createGateway({
    view,
    log,
    player: false,
    followIntervalMs: 0,
    ...(options.originDir ? { originDir: options.originDir } : { playbackBaseUrl: 'https://cdn.example.com', prefix: options.prefix ?? '' }),
    playbackTokens: { keyring: { signing: KEY, all: [KEY] }, ttlSeconds: 3600, apiKey: undefined },
    lowLatency: { holders: options.holders, upstreamTimeoutMs: options.upstreamTimeoutMs ?? 5000, originSecret: ORIGIN_SECRET },
  });
  t.teardown(async () => {
    await app.close();
    await view.close();
  });
  return app;
}

t.test('Kubernetes-shaped: playlists from the holder, on the CDN paths with the prefix', async (tt) => {
  const source = new TestSource();
  const app = await gateway({ holders: inProcessHolders(source), prefix: 'live' });
  const r = await app.inject({ url: '/origin/live/default/open/index.m3u8?_HLS_msn=12&_HLS_part=2' });
  tt.equal(r.statusCode, 200);
  tt.equal(r.headers['content-type'], 'application/vnd.apple.mpegurl');
  tt.equal(r.headers['cache-control'], 'public, max-age=1', "the holder's Cache-Control");
  tt.match(r.body, 'default/open/index.m3u8 msn=12 part=2');
  tt.same(source.calls[0]?.request.blocking, { msn: 12, part: 2 });

  const head = await app.inject({ method: 'HEAD', url: '/origin/live/default/open/index.m3u8' });
  tt.equal(head.statusCode, 200);
  tt.equal(head.body, '', 'HEAD: headers only');
  tt.equal(head.headers['content-length'], String(r.rawPayload.length - ' msn=12 part=2'.length + ' msn=undefined part=undefined'.length));

  const part = await app.inject({ url: '/origin/live/default/open/run1/3-00004.2.part.m4s?_HLS_msn=5' });
  tt.equal(part.statusCode, 200);
  tt.same(
    source.calls.at(-1)?.request,
    { ref: { namespace: 'default', name: 'open' }, file: 'run1/3-00004.2.part.m4s', blocking: {} },
    'a part asks for no playlist',
  );

  const calls = source.calls.length;
  tt.equal((await app.inject({ url: '/origin/default/open/index.m3u8' })).statusCode, 404, 'without the prefix: not a CDN path');
  tt.equal((await app.inject({ url: '/origin/live/default/nobody/index.m3u8' })).statusCode, 404, 'a stream the view does not know');
  tt.equal((await app.inject({ url: '/origin/live/default/open/thumbnail.jpg' })).statusCode, 404, "the thumbnail is the bucket's");
  tt.equal(source.calls.length, calls, 'none of them reached the holder');
});

t.test('bad _HLS_* values: 400 JSON at once, not cached, the holder never asked', async (tt) => {
  const source = new TestSource();
  source.answer = (_request, signal) => untilAborted(signal);
  const app = await gateway({ holders: inProcessHolders(source) });
  for (const query of ['_HLS_msn=abc', '_HLS_msn=-1', '_HLS_msn=1.5', '_HLS_part=1', '_HLS_msn=3&_HLS_part=x', '_HLS_skip=NO', '_HLS_msn=1&_HLS_msn=2']) {
    const r = await app.inject({ url: `/origin/default/open/index.m3u8?${query}` });
    tt.equal(r.statusCode, 400, query);
    tt.equal(r.headers['cache-control'], 'no-store', `${query}: not cached`);
    tt.equal(r.json().statusCode, 400, `${query}: a JSON error`);
  }
  tt.equal(source.calls.length, 0);
});

t.test('collapsing: N concurrent identical blocking requests make one upstream request', async (tt) => {
  const source = new TestSource();
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  source.answer = async (request) => {
    await released;
    return playlistAnswer(request);
  };
  const app = await gateway({ holders: inProcessHolders(source) });
  const N = 25;
  const same = Array.from({ length: N }, () => app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=7&_HLS_part=1' }));
  const other = app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=7&_HLS_part=2' });
  const collapser = app.lowLatencyOrigin!.collapser;
  await waitFor('every request to wait on the holder', () => collapser.waiting === N + 1, { timeoutMs: 5000, intervalMs: 5 });
  tt.equal(source.calls.length, 2, 'one upstream request per distinct request');
  release();
  const answers = await Promise.all(same);
  tt.ok(
    answers.every((r) => r.statusCode === 200 && r.body === answers[0]?.body),
    'all of them get the same playlist',
  );
  tt.match((await other).body, 'part=2');
  tt.equal(collapser.upstreamRequests, 2);
  const counted = Object.fromEntries((await app.gatewayMetrics.llRequests.get()).values.map((v) => [v.labels.outcome, v.value]));
  tt.same(counted, { upstream: 2, collapsed: N - 1 }, 'tteok_gateway_ll_requests_total says so');
  // Once answered, the next request is a new upstream request (collapsing is not caching).
  await app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=7&_HLS_part=1' });
  tt.equal(source.calls.length, 3);
});

t.test('no holder: 404; a slow holder: 504 within the bound; an unreachable one: 502', async (tt) => {
  const none = await gateway({ holders: { holderOf: () => undefined, close: async () => undefined } });
  const r = await none.inject({ url: '/origin/default/open/index.m3u8' });
  tt.equal(r.statusCode, 404);
  tt.equal(r.headers['cache-control'], 'no-store');

  const slow = new TestSource();
  slow.answer = (_request, signal) => untilAborted(signal);
  const app = await gateway({ holders: inProcessHolders(slow), upstreamTimeoutMs: 300 });
  const started = performance.now();
  const timedOut = await app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=100' });
  tt.equal(timedOut.statusCode, 504);
  tt.equal((await app.gatewayMetrics.llUpstreamFailures.get()).values.find((v) => v.labels.reason === 'timeout')?.value, 1, 'counted');
  tt.ok(performance.now() - started < 3000, 'answered near the bound');
  tt.ok(slow.calls[0]?.signal.aborted, 'the upstream request was aborted');

  const broken = new TestSource();
  broken.answer = async () => {
    throw new Error('ECONNREFUSED');
  };
  const app2 = await gateway({ holders: inProcessHolders(broken) });
  const refused = await app2.inject({ url: '/origin/default/open/index.m3u8' });
  tt.equal(refused.statusCode, 502);
  tt.notMatch(refused.body, 'ECONNREFUSED', 'no internals');
});

t.test("the holder's errors are passed on, never cached", async (tt) => {
  const source = new TestSource();
  source.answer = async () => ({
    status: 503,
    contentType: 'application/json',
    cacheControl: 'no-store',
    body: new TextEncoder().encode('{"message":"segment 9 did not come within 6 s"}'),
  });
  const app = await gateway({ holders: inProcessHolders(source) });
  const r = await app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=9' });
  tt.equal(r.statusCode, 503);
  tt.equal(r.headers['cache-control'], 'no-store');
  tt.equal(r.json().message, 'segment 9 did not come within 6 s');
});

t.test('a client that goes away aborts the upstream request once nobody else waits for it', async (tt) => {
  const source = new TestSource();
  source.answer = (_request, signal) => untilAborted(signal);
  const app = await gateway({ holders: inProcessHolders(source), upstreamTimeoutMs: 60_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const open = (): ReturnType<typeof httpRequest> => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/origin/default/open/index.m3u8?_HLS_msn=50' });
    req.on('error', () => undefined);
    req.end();
    return req;
  };
  const first = open();
  const second = open();
  const collapser = app.lowLatencyOrigin!.collapser;
  await waitFor('both clients to wait', () => collapser.waiting === 2, { timeoutMs: 5000, intervalMs: 5 });
  tt.equal(source.calls.length, 1);
  first.destroy();
  await waitFor('the first to leave', () => collapser.waiting === 1, { timeoutMs: 5000, intervalMs: 5 });
  tt.notOk(source.calls[0]?.signal.aborted, 'still wanted by the second');
  second.destroy();
  await waitFor('the upstream request to be aborted', () => source.calls[0]?.signal.aborted, { timeoutMs: 5000, intervalMs: 5 });
  tt.equal(collapser.inFlight, 0);
});

t.test('private streams: the token rule, or the origin secret header from the CDN', async (tt) => {
  const source = new TestSource();
  const app = await gateway({ holders: inProcessHolders(source) });
  const token = mintPlaybackToken(KEY, { prefix: '', namespace: 'default', name: 'members' }, 600).token;
  const path = '_private/default/members/index.m3u8';
  tt.equal((await app.inject({ url: `/origin/${path}` })).statusCode, 403, 'no token');
  tt.equal(
    (await app.inject({ url: `/origin/${path}`, headers: { [ORIGIN_SECRET_HEADER]: 'wrong-secret-0123456789abcdefghijklmn' } })).statusCode,
    403,
    'a wrong secret',
  );
  tt.equal((await app.inject({ url: `/origin/_t/${token}/${path}` })).statusCode, 200, 'a valid token');
  tt.equal(
    (await app.inject({ url: `/origin/${path}`, headers: { [ORIGIN_SECRET_HEADER]: ORIGIN_SECRET } })).statusCode,
    200,
    'the CDN (token checked and removed there)',
  );
  tt.equal((await app.inject({ url: '/origin/default/members/index.m3u8' })).statusCode, 404, 'a private stream under the public path');
  tt.equal(
    (await app.inject({ url: '/origin/_private/default/open/index.m3u8', headers: { [ORIGIN_SECRET_HEADER]: ORIGIN_SECRET } })).statusCode,
    404,
    'a public stream under _private/',
  );
  tt.equal(source.calls.length, 2, 'only the allowed requests reached the holder');
});

t.test('one-machine: live playlists and parts from the holder, the directory for the rest', async (tt) => {
  const root = join(dir, 'origin');
  mkdirSync(join(root, 'default/open/run1'), { recursive: true });
  writeFileSync(join(root, 'default/open/index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:2\n# stored\n');
  writeFileSync(join(root, 'default/open/run1/0-00001.m4s'), 'stored segment');
  const source = new TestSource();
  let live = true;
  source.answer = async (request) => {
    if (!live) return notHeld();
    if (request.file.endsWith('.m3u8')) return playlistAnswer(request);
    return { status: 200, contentType: 'video/iso.segment', cacheControl: SEGMENT_CACHE_CONTROL, body: new TextEncoder().encode(`held ${request.file}`) };
  };
  const app = await gateway({ holders: inProcessHolders(source), originDir: root });

  const playlist = await app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=3' });
  tt.match(playlist.body, 'msn=3', 'the live playlist is the holder’s');
  tt.equal((await app.inject({ url: '/origin/default/open/run1/1-00002.0.part.m4s' })).body, 'held run1/1-00002.0.part.m4s', 'a part');
  const calls = source.calls.length;
  tt.equal((await app.inject({ url: '/origin/default/open/run1/0-00001.m4s' })).body, 'stored segment', 'a stored segment from the directory');
  tt.equal(source.calls.length, calls, 'without asking the holder');
  tt.equal((await app.inject({ url: '/origin/default/open/run1/1-00002.m4s' })).body, 'held run1/1-00002.m4s', 'a segment not yet stored: the holder');
  tt.equal((await app.inject({ url: '/origin/default/open/index.m3u8?_HLS_msn=x' })).statusCode, 400, 'bad values: 400 here too');

  live = false;
  const ended = await app.inject({ url: '/origin/default/open/index.m3u8' });
  tt.equal(ended.statusCode, 200);
  tt.match(ended.body, '# stored', 'not held: the stored playlist');
  tt.equal((await app.inject({ url: '/origin/default/open/run1/1-00002.0.part.m4s' })).statusCode, 404, 'no part anywhere');
});

t.test('HttpLowLatencySource asks the ingest route and passes its answer on', async (tt) => {
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push(req.url ?? '');
    if (req.url?.startsWith('/ll/default/open/index.m3u8')) {
      res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'public, max-age=1' }).end('#EXTM3U\n');
    } else res.writeHead(404, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end('{"message":"not here"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const source = new HttpLowLatencySource(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const signal = AbortSignal.timeout(5000);
  const ok = await source.serve({ ref: { namespace: 'default', name: 'open' }, file: 'index.m3u8', blocking: { msn: 4, part: 1, skip: 'YES' } }, signal);
  tt.equal(ok.status, 200);
  tt.equal(new TextDecoder().decode(ok.body), '#EXTM3U\n');
  tt.equal(ok.cacheControl, 'public, max-age=1');
  tt.equal(seen[0], '/ll/default/open/index.m3u8?_HLS_msn=4&_HLS_part=1&_HLS_skip=YES');
  const missing = await source.serve({ ref: { namespace: 'default', name: 'open' }, file: 'run1/2-00003.1.part.m4s', blocking: {} }, signal);
  tt.equal(missing.status, 404);
  tt.equal(seen[1], '/ll/default/open/run1/2-00003.1.part.m4s');
});

t.test('the claim annotation names an http origin and nothing more', async (tt) => {
  tt.equal(llOriginUrl('http://10.1.2.3:9935'), 'http://10.1.2.3:9935');
  tt.equal(llOriginUrl('http://[fd00::12]:9935'), 'http://[fd00::12]:9935');
  for (const bad of [
    undefined,
    '',
    'https://10.1.2.3:9935',
    'http://10.1.2.3',
    'http://10.1.2.3:9935/x',
    'http://user@10.1.2.3:9935',
    'http://10.1.2.3:99999',
    'file:///etc',
  ])
    tt.equal(llOriginUrl(bad), undefined, String(bad));
});
