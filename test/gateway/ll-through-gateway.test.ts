// LL-HLS through the gateway's LL origin, as CloudFront asks it in
// Kubernetes: a real ingest process (ffmpeg publishing over RTMP) holds the
// stream, and the gateway (TTEOK_VIEW-independent: the holder is named the
// way a claim Lease's tteok.dev/ll-origin names it) serves its blocking
// playlists and parts on the CDN's paths, over HTTP to the ingest's
// `/ll/…` route.
// - the LL playlist and every part it names, with the ingest's headers;
// - a blocking request waits for its part; bad values are 400 at once;
// - 12 viewers' identical blocking requests reach the ingest once
//   (tteok_gateway_ll_requests_total: one upstream, the rest collapsed);
// - the holding ingest killed under a viewer: the gateway answers 502 at
//   once (the CDN's failover to the bucket), not a hang.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { createLogger } from '../../common/log.ts';
import { createGateway } from '../../gateway/gateway.ts';
import { HttpLowLatencySource } from '../../gateway/low-latency/http-source.ts';
import { LocalStreamView } from '../../gateway/views/local-stream-view.ts';
import { startIngestProcess, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { waitFor } from '../../harness/wait.ts';

const stream: TestStream = { name: 'lowlat', key: 'lowlat_key_aaaaaaaaaaaaaaaaaa1' };
const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-gateway-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, [stream]);
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin'),
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_LL_PART_SECONDS: '0.333',
});
const log = createLogger('gateway', 'silent');
const view = LocalStreamView.fromFile(keysFile, log);
await view.ready();
const upstream = `http://127.0.0.1:${ingest.httpPort}`;
const app: FastifyInstance = await createGateway({
  view,
  log,
  player: false,
  followIntervalMs: 0,
  playbackBaseUrl: 'https://cdn.example.com',
  prefix: 'live',
  lowLatency: {
    holders: { holderOf: () => ({ id: upstream, source: new HttpLowLatencySource(upstream) }), close: async () => undefined },
    upstreamTimeoutMs: 10_000,
  },
});
await app.listen({ host: '127.0.0.1', port: 0 });
const gateway = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
const base = `${gateway}/origin/live/default/${stream.name}/`;
t.teardown(async () => {
  await app.close();
  await view.close();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string): Promise<{ status: number; body: Buffer; headers: Headers; ms: number }> {
  const started = performance.now();
  const res = await fetch(base + path);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body, headers: res.headers, ms: performance.now() - started };
}

interface Ll {
  text: string;
  lastSequence: number;
  parts: string[];
  hint: { msn: number; part: number } | undefined;
}
function parseLl(text: string): Ll {
  let sequence = 0;
  let segments = 0;
  const parts: string[] = [];
  let hint: Ll['hint'];
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) sequence = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART:')) parts.push(/URI="([^"]+)"/.exec(line)![1]!);
    else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) {
      const m = /\/(\d+)\.(\d+)\.part\.m4s"/.exec(line);
      if (m) hint = { msn: Number(m[1]), part: Number(m[2]) };
    } else if (line.length > 0 && !line.startsWith('#')) segments++;
  }
  return { text, lastSequence: sequence + segments - 1, parts, hint };
}

const metric = async (outcome: string): Promise<number> =>
  (await app.gatewayMetrics.llRequests.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

t.equal((await get('index.m3u8')).status, 404, 'not live: 404 (the CDN serves the bucket instead)');
const publisher = publishTestPattern({ url: ingest.rtmpUrl(stream.key), gopSeconds: 2, name: 'll-publisher' });

t.test('the LL playlist and its parts through the gateway', async (t) => {
  const first = await waitFor(
    'an LL playlist with parts',
    async () => {
      const res = await get('index.m3u8');
      const playlist = res.status === 200 ? parseLl(res.body.toString()) : undefined;
      return playlist && playlist.lastSequence >= 1 && playlist.parts.length > 0 && playlist.hint ? { res, playlist } : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const target = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(first.playlist.text)?.[1]);
  t.equal(first.res.headers.get('cache-control'), `public, max-age=${Math.floor(target / 2)}`, "the ingest's Cache-Control for a plain reload");
  t.match(first.playlist.text, /CAN-BLOCK-RELOAD=YES/);
  const parts = await Promise.all(first.playlist.parts.map((uri) => get(uri)));
  t.same(
    parts.map((p) => [p.status, p.body.subarray(4, 8).toString('latin1')]),
    parts.map(() => [200, 'moof']),
    `all ${parts.length} parts are served, each a moof`,
  );
  t.equal(parts[0]?.headers.get('cache-control'), 'public, max-age=31536000, immutable');

  const bad = await get('index.m3u8?_HLS_msn=abc');
  t.equal(bad.status, 400, 'a bad _HLS_msn: 400');
  t.ok(bad.ms < 1000, 'at once');
  const ahead = await get(`index.m3u8?_HLS_msn=${first.playlist.lastSequence + 10}`);
  t.equal(ahead.status, 400, "too far ahead: the ingest's 400, passed on");
  t.match(JSON.parse(ahead.body.toString()).message, /past/, 'with its sentence');
  t.equal(ahead.headers.get('cache-control'), 'no-store');
});

t.test("viewers' identical blocking requests reach the ingest once", async (t) => {
  const now = parseLl((await get('index.m3u8')).body.toString());
  // One part past the hint: every viewer is asking while the ingest waits for it.
  const { msn, part } = now.hint!;
  const upstreamBefore = await metric('upstream');
  const collapsedBefore = await metric('collapsed');
  const viewers = 12;
  const answers = await Promise.all(Array.from({ length: viewers }, () => get(`index.m3u8?_HLS_msn=${msn}&_HLS_part=${part + 1}`)));
  t.ok(
    answers.every((a) => a.status === 200),
    'all answered',
  );
  t.equal(new Set(answers.map((a) => a.body.toString())).size, 1, 'the same playlist for all');
  t.equal((await metric('upstream')) - upstreamBefore, 1, 'one request to the ingest');
  t.equal((await metric('collapsed')) - collapsedBefore, viewers - 1, 'the others shared it');
});

t.test('the holding ingest killed under a viewer: 502 at once, the CDN falls back to the bucket', async (t) => {
  const now = parseLl((await get('index.m3u8')).body.toString());
  const waiting = get(`index.m3u8?_HLS_msn=${now.hint!.msn}&_HLS_part=${now.hint!.part + 1}`);
  await ingest.proc.stop('SIGKILL');
  const answer = await waiting;
  t.ok([200, 502].includes(answer.status), `the waiting viewer gets an answer (${answer.status}), not a hang`);
  const after = await get('index.m3u8');
  t.equal(after.status, 502, 'then: 502, one of the failover codes');
  t.equal(after.headers.get('cache-control'), 'no-store');
  t.ok(after.ms < 2000, `at once (${after.ms.toFixed(0)} ms)`);
  await publisher.stop('SIGKILL');
});
