// Viewer latency: tteok's player page in headless Chromium, sampled once a
// second for 60 s while a publisher replays the 720p input in real time.
// Two figures per setup, both from hls.js:
//   - now − hls.playingDate: the frame on screen against the wall-clock time
//     it arrived at the ingest (EXT-X-PROGRAM-DATE-TIME). nginx-rtmp writes no
//     program date time: bench/lib/pdt-proxy.ts adds the arrival time its
//     fragment names carry (hls_fragment_naming system);
//   - hls.latency: how far behind the playlist's live edge the player sits, as
//     hls.js estimates it; the same measure for every setup.
// Setups: through the S3 server (SeaweedFS), through the one-machine origin,
// and the same player on nginx-rtmp's HLS.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { launchBrowser } from '../harness/browser.ts';
import { startIngestProcess, tteokCommand, writeKeyFile } from '../harness/ingest-process.ts';
import { localModePorts, spawnLocalMode } from '../harness/local-mode.ts';
import { freePort } from '../harness/ports.ts';
import { spawnManaged, type ManagedProcess } from '../harness/process.ts';
import { startS3Server } from '../harness/s3-server.ts';
import { httpReady, waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { replay } from './lib/media.ts';
import { startNginxRtmp } from './lib/nginx-rtmp.ts';
import { startPdtProxy } from './lib/pdt-proxy.ts';
import { median, p95 } from './lib/stats.ts';

const ROOT = join(import.meta.dirname, '..');
const KEY = 'viewer_bench_key_0123456789ab';

export interface ViewerResult {
  setup: string;
  /** now − playingDate, seconds (empty without program date times). */
  endToEnd: number[];
  /** hls.latency, seconds. */
  edge: number[];
  stalls: number;
}

interface Stats {
  playing: boolean;
  latency: number | null;
  edgeDistance: number | null;
  stalls: number;
  waits: Array<{ start: number; end: number }>;
  waitingSince: number | null;
}

export interface Samples {
  endToEnd: number[];
  edge: number[];
  /** Times the video waited for data while sampling. */
  stalls: number;
  /** Seconds the video spent waiting for data while sampling. */
  stalledSeconds: number;
}

/** Seconds of the waits (and the one going on at `to`) inside [from, to], all in ms since the epoch. */
export function waitedSeconds(waits: Array<{ start: number; end: number }>, waitingSince: number | null, from: number, to: number): number {
  const all = waitingSince === null ? waits : [...waits, { start: waitingSince, end: to }];
  return all.reduce((sum, w) => sum + Math.max(0, Math.min(w.end, to) - Math.max(w.start, from)), 0) / 1000;
}

/** Opens the player page, waits until it plays and settles, then samples its stats once a second. */
export async function sample(pageUrl: string, seconds: number): Promise<Samples> {
  const browser = await launchBrowser();
  try {
    await browser.page.goto(pageUrl);
    await waitFor(
      'the player to play',
      async () => (await browser.page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats.playing)) || undefined,
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch(async (error: Error) => {
      const stats = await browser.page.evaluate(() => JSON.stringify((window as unknown as { tteokStats: Stats }).tteokStats)).catch(() => '');
      throw new Error(`${error.message} at ${pageUrl}\nstats: ${stats}\nconsole:\n${browser.console.slice(-15).join('\n')}`);
    });
    // Let the player settle at its target before measuring.
    await sleep(5000);
    const endToEnd: number[] = [];
    const edge: number[] = [];
    const read = () => browser.page.evaluate(() => (window as unknown as { tteokStats: Stats }).tteokStats);
    const stallsBefore = (await read()).stalls;
    const from = Date.now();
    let last: Stats | undefined;
    for (let i = 0; i < seconds; i++) {
      await sleep(1000);
      last = await read();
      if (last.latency !== null) endToEnd.push(last.latency);
      if (last.edgeDistance !== null) edge.push(last.edgeDistance);
    }
    const stalls = (last?.stalls ?? stallsBefore) - stallsBefore;
    const stalledSeconds = last ? waitedSeconds(last.waits, last.waitingSince, from, Date.now()) : 0;
    return { endToEnd, edge, stalls, stalledSeconds };
  } finally {
    await browser.close();
  }
}

function gatewayProcess(env: Record<string, string>): ManagedProcess {
  const command = tteokCommand('gateway', BENCH_BUILD);
  return spawnManaged('gateway', process.execPath, command.args, {
    cwd: ROOT,
    env: { ...command.env, TTEOK_GATEWAY_HOST: '127.0.0.1', TTEOK_LOG_LEVEL: 'warn', ...env },
  });
}

export async function viewerLatency(input: string, seconds = 60): Promise<ViewerResult[]> {
  const results: ViewerResult[] = [];

  // 1. Through the S3 server: ingest → SeaweedFS ← player, the gateway only looks up.
  {
    const s3 = await startS3Server('viewer');
    const dir = mkdtempSync(join(tmpdir(), 'tteok-viewer-'));
    try {
      writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'bench', key: KEY }]);
      const ingest = await startIngestProcess(
        { ...s3.ingestEnv, TTEOK_KEYS_FILE: join(dir, 'keys.yaml'), TTEOK_MEDIA_DIR: join(dir, 'media'), TTEOK_LOG_LEVEL: 'info' },
        undefined,
        { build: BENCH_BUILD },
      );
      const port = await freePort();
      const gateway = gatewayProcess({
        TTEOK_GATEWAY_PORT: String(port),
        TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
        TTEOK_PLAYBACK_BASE_URL: `${s3.endpoint}/${s3.bucket}`,
      });
      await httpReady(`http://127.0.0.1:${port}/readyz`);
      const pub = replay(input, ingest.rtmpUrl(KEY), 'publisher');
      // A standalone gateway with the local view cannot know which streams are
      // live (that comes from the ingest in the same process, or from the
      // LiveStream status in Kubernetes), so the page plays the S3 URL directly.
      const playlist = `${s3.endpoint}/${s3.bucket}/default/bench/index.m3u8`;
      await waitFor('the first playlist in S3', async () => (await fetch(playlist)).ok || undefined, { timeoutMs: 30_000, intervalMs: 200 });
      const r = await sample(`http://127.0.0.1:${port}/?src=${encodeURIComponent(playlist)}`, seconds);
      results.push({ setup: 'tteok, through S3 (SeaweedFS)', ...r });
      await pub.stop('SIGKILL');
      await gateway.stop();
      await ingest.proc.stop('SIGTERM', 20_000);
    } finally {
      await s3.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // 2. The one-machine mode: the gateway serves the origin itself.
  const home = mkdtempSync(join(tmpdir(), 'tteok-viewer-local-'));
  const ports = await localModePorts();
  const { rtmpPort, gatewayPort } = ports;
  // Started first: the player page plays ?src= only from origins its gateway allows (case 3).
  const nginx = await startNginxRtmp({ systemNaming: true });
  const proxy = await startPdtProxy(`http://127.0.0.1:${nginx.httpPort}`);
  const local = spawnLocalMode(home, ports, { TTEOK_LOG_LEVEL: 'warn', TTEOK_PLAYER_SRC_ORIGINS: proxy.origin }, BENCH_BUILD);
  try {
    await httpReady(`http://127.0.0.1:${gatewayPort}/readyz`);
    const doc = parseAllDocuments(readFileSync(join(home, 'keys.yaml'), 'utf8'))[0]!.toJSON() as {
      streamKey: string;
      metadata: { name: string; namespace?: string };
    };
    const pub = replay(input, `rtmp://127.0.0.1:${rtmpPort}/live/${doc.streamKey}`, 'publisher');
    // As in the other two setups, the page opens once the first playlist is there: the stream is
    // announced live at publish, a moment before its first segment, and a player that asks for the
    // playlist in between gets a 404 from the origin.
    const origin = `http://127.0.0.1:${gatewayPort}/origin/${doc.metadata.namespace ?? 'default'}/${doc.metadata.name}/index.m3u8`;
    await waitFor('the first playlist at the one-machine origin', async () => (await fetch(origin)).ok || undefined, { timeoutMs: 30_000, intervalMs: 200 });
    const r = await sample(`http://127.0.0.1:${gatewayPort}/?stream=${doc.metadata.namespace ?? 'default'}/${doc.metadata.name}`, seconds);
    results.push({ setup: 'tteok, one-machine origin', ...r });
    await pub.stop('SIGKILL');

    // 3. The peer: the same page and player on nginx-rtmp's HLS.
    {
      const pubNginx = replay(input, `rtmp://127.0.0.1:${nginx.rtmpPort}/live/${KEY}`, 'nginx-publisher');
      const playlist = `${proxy.origin}/hls/${KEY}.m3u8`;
      await waitFor("nginx-rtmp's first playlist", async () => (await fetch(playlist)).ok || undefined, { timeoutMs: 30_000, intervalMs: 200 });
      const src = encodeURIComponent(playlist);
      const rn = await sample(`http://127.0.0.1:${gatewayPort}/?src=${src}`, seconds);
      results.push({ setup: 'nginx-rtmp HLS (same player)', ...rn });
      await pubNginx.stop('SIGKILL');
    }
  } finally {
    await proxy.close();
    await nginx.stop();
    await local.stop();
    rmSync(home, { recursive: true, force: true });
  }
  return results;
}

export function summarize(r: ViewerResult): string[] {
  const s = (v: number[], f: (x: number[]) => number) => (v.length ? f(v).toFixed(2) : 'n/a');
  return [r.setup, s(r.endToEnd, median), s(r.endToEnd, p95), s(r.edge, median), s(r.edge, p95), String(r.stalls)];
}
