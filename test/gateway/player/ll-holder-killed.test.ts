// The ingest holding a stream killed under an LL-HLS viewer (issue 20), as
// the viewer sees it: a real ingest (ffmpeg publishing over RTMP, objects in a
// directory, the bucket), the gateway as LL origin, and in front of both what
// the CloudFormation template configures in CloudFront (origin groups:
// playlists the gateway first and the bucket on 404/5xx, parts the gateway
// alone, segments the bucket first and the gateway on 403/404), played by the
// project's player page (hls.js, lowLatencyMode) in headless Chromium. The
// ingest is SIGKILLed while the viewer plays with blocking reloads: the LL
// origin answers 502 at once, the front serves the bucket's playlist, and the
// viewer sees no fatal hls.js error.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { createLogger } from '../../../common/log.ts';
import { createGateway } from '../../../gateway/gateway.ts';
import { HttpLowLatencySource } from '../../../gateway/low-latency/http-source.ts';
import { LocalStreamView } from '../../../gateway/views/local-stream-view.ts';
import { launchBrowser, type Browser } from '../../../harness/browser.ts';
import { type CdnFront, startCdnFront } from '../../../harness/cdn-front.ts';
import { startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

/** How long after the kill the viewer is watched for a fatal error. */
const AFTER_KILL_MS = 15_000;

const stream: TestStream = { name: 'lowlat', key: 'lowlat_key_aaaaaaaaaaaaaaaaaa1' };
const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-killed-'));
const keysFile = join(dir, 'keys.yaml');
const bucketDir = join(dir, 'origin');
writeKeyFile(keysFile, [stream]);
const log = createLogger('gateway', 'silent');
const view = LocalStreamView.fromFile(keysFile, log);
let browser: Browser | undefined;
let front: CdnFront | undefined;
const apps: FastifyInstance[] = [];
t.teardown(async () => {
  await browser?.close();
  await front?.close();
  for (const app of apps) await app.close();
  await view.close();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

await view.ready();
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: bucketDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_LL_PART_SECONDS: '0.333',
});

async function listen(app: FastifyInstance): Promise<string> {
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}
// The bucket: the directory the ingest stores into, served as S3 serves it.
const bucket = await listen(await createGateway({ view, log, followIntervalMs: 0, player: false, originDir: bucketDir }));
// CloudFront's behaviors and origin groups as manifests/aws/cloudformation.yaml configures them.
const cdn = await startCdnFront(`${bucket}/origin`);
front = cdn;
const frontUrl = cdn.url;
const upstream = `http://127.0.0.1:${ingest.httpPort}`;
// The LL origin, which also serves the player page (allowed to play from the front).
const llGateway = await listen(
  await createGateway({
    view,
    log,
    followIntervalMs: 0,
    playbackBaseUrl: frontUrl,
    playerSrcOrigins: [frontUrl],
    lowLatency: {
      holders: { holderOf: () => ({ id: upstream, source: new HttpLowLatencySource(upstream) }), close: async () => undefined },
      upstreamTimeoutMs: 10_000,
    },
  }),
);

cdn.gateway = `${llGateway}/origin`;
/** Who answered the front's requests. */
const served = cdn.answers;

interface Stats {
  playing: boolean;
  currentTime: number;
  errors: string[];
}

t.test('the holding ingest killed under an LL viewer: the bucket’s playlist, no fatal error', async (tt) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(stream.key), gopSeconds: 2, name: 'll-killed-publisher' });
  tt.teardown(() => publisher.stop('SIGKILL'));
  await waitFor(
    'segments in the bucket',
    async () => {
      const res = await fetch(`${frontUrl}/default/${stream.name}/index.m3u8`);
      return res.ok && (await res.text()).includes('#EXTINF') ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );

  browser = await launchBrowser();
  const { page } = browser;
  const stats = () => page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
  await page.goto(`${llGateway}/?src=${encodeURIComponent(`${frontUrl}/default/${stream.name}/index.m3u8`)}`);
  const playing = await waitFor(
    'the viewer to play with blocking reloads',
    async () => {
      const s = await stats();
      const blockingReloads = served.filter((r) => r.blocking && r.by === 'gateway' && r.status === 200).length;
      const parts = served.filter((r) => r.kind === '.m4s' && r.by === 'gateway' && r.status === 200).length;
      return s?.playing && s.currentTime > 1 && blockingReloads >= 3 && parts >= 3 ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((error: unknown) => {
    tt.comment(browser?.console.slice(-20).join('\n') ?? '');
    throw error;
  });
  tt.same(playing.errors, [], 'no fatal error before the kill');

  await ingest.proc.stop('SIGKILL');
  const killedAt = Date.now();
  await waitFor(
    'the bucket to answer a playlist request after the kill',
    () => served.some((r) => r.at > killedAt && r.kind === '.m3u8' && r.by === 'bucket'),
    {
      timeoutMs: 10_000,
      intervalMs: 100,
    },
  );
  tt.pass('the front fell back to the bucket’s playlist');
  // Watched for a while: hls.js keeps reloading the (now still) playlist and must not give up.
  const deadline = Date.now() + AFTER_KILL_MS;
  let last = await stats();
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    last = await stats();
    if (last.errors.length > 0) break;
    await page.waitForTimeout(100);
  }
  tt.same(last.errors, [], `no fatal hls.js error in the ${AFTER_KILL_MS / 1000} s after the kill`);
  const after = served.filter((r) => r.at > killedAt);
  tt.comment(
    `after the kill: ${after.length} requests; playlists from the bucket ${after.filter((r) => r.kind === '.m3u8' && r.by === 'bucket').length}, ` +
      `parts answered ${[...new Set(after.filter((r) => r.kind === '.m4s' && r.by === 'gateway').map((r) => r.status))].join('/') || 'none'}`,
  );
});
