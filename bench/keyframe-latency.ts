// Viewer latency by keyframe interval (issue 20): a live 720p30 2.5 Mbps x264
// veryfast zerolatency publisher (as OBS sends it) with a keyframe every 1, 2
// or 4 s, one ffmpeg feeding tteok's one-machine mode and nginx-rtmp at once
// (the tee muxer: the same frames at the same moments to both). tteok's
// player page in headless Chromium plays each in turn, settles, and is
// sampled once a second: now − playingDate (the frame on screen against the
// wall-clock time it reached the server), hls.js's distance to the live edge,
// and the stalls during the sampling. nginx-rtmp writes no program date
// time; bench/lib/pdt-proxy.ts adds the arrival time its fragment names carry
// (`hls_fragment_naming system`), so both get the same measure. Both cut at
// keyframes with a 1 s target (the example LiveStream's segmentSeconds: 1,
// nginx's hls_fragment 1s), so a segment is one GOP.
//
//   BENCH_KEYFRAME_INTERVALS=2        keyframe intervals, seconds (README's table: 1,2,4)
//   BENCH_KEYFRAME_SECONDS=60         sampling per system and interval
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { localModePorts, spawnLocalMode } from '../harness/local-mode.ts';
import { spawnManaged, type ManagedProcess } from '../harness/process.ts';
import { httpReady, waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { obsX264, testPatternInputs } from './lib/media.ts';
import { startNginxRtmp } from './lib/nginx-rtmp.ts';
import { startPdtProxy } from './lib/pdt-proxy.ts';
import { fmt, median, p95 } from './lib/stats.ts';
import { sample, type Samples } from './viewer-latency.ts';

const NGINX_KEY = 'keyframe_bench_key_0123456789';

export interface KeyframeResult extends Samples {
  keyframeSeconds: number;
  system: string;
}

export function keyframeIntervals(env: NodeJS.ProcessEnv): number[] {
  const list = (env.BENCH_KEYFRAME_INTERVALS ?? '2').split(',').map((s) => Number(s.trim()));
  for (const g of list) if (!(g >= 0.5 && g <= 10)) throw new Error(`BENCH_KEYFRAME_INTERVALS: ${g} is not a keyframe interval of 0.5 to 10 s`);
  return list;
}

/** One live encode, sent to every URL at once (OBS's settings: x264 veryfast, zerolatency, CBR 2.5 Mbps). */
function livePublisher(keyframeSeconds: number, urls: string[]): ManagedProcess {
  return spawnManaged('live-publisher', 'ffmpeg', [
    ...['-hide_banner', '-nostats', '-loglevel', 'error'],
    ...testPatternInputs(true),
    ...['-map', '0:v', '-map', '1:a'],
    ...obsX264({ keyframeFrames: Math.round(30 * keyframeSeconds), zerolatency: true }),
    '-flags',
    '+global_header',
    '-f',
    'tee',
    urls.map((u) => `[f=flv:onfail=ignore]${u}`).join('|'),
  ]);
}

export async function keyframeLatency(intervals: number[], seconds: number): Promise<KeyframeResult[]> {
  const results: KeyframeResult[] = [];
  for (const g of intervals) {
    const nginx = await startNginxRtmp({ systemNaming: true });
    const proxy = await startPdtProxy(`http://127.0.0.1:${nginx.httpPort}`);
    const home = mkdtempSync(join(tmpdir(), 'tteok-keyframe-'));
    const ports = await localModePorts();
    const { rtmpPort, gatewayPort } = ports;
    const local = spawnLocalMode(
      home,
      ports,
      {
        TTEOK_LOG_LEVEL: 'warn',
        // Renditions and thumbnails are not what is measured here: no ffmpeg children beside the publisher.
        TTEOK_TRANSCODER: 'off',
        TTEOK_PLAYER_SRC_ORIGINS: proxy.origin,
      },
      BENCH_BUILD,
    );
    let publisher: ManagedProcess | undefined;
    try {
      await httpReady(`http://127.0.0.1:${gatewayPort}/readyz`);
      const doc = parseAllDocuments(readFileSync(join(home, 'keys.yaml'), 'utf8'))[0]!.toJSON() as { streamKey: string };
      publisher = livePublisher(g, [`rtmp://127.0.0.1:${rtmpPort}/live/${doc.streamKey}`, `rtmp://127.0.0.1:${nginx.rtmpPort}/live/${NGINX_KEY}`]);
      const ours = `http://127.0.0.1:${gatewayPort}/origin/default/demo/index.m3u8`;
      const peer = `${proxy.origin}/hls/${NGINX_KEY}.m3u8`;
      for (const url of [ours, peer]) {
        await waitFor(`the first playlist at ${url}`, async () => (await fetch(url)).ok || undefined, { timeoutMs: 30_000, intervalMs: 200 });
      }
      results.push({
        keyframeSeconds: g,
        system: 'tteok, one-machine origin',
        ...(await sample(`http://127.0.0.1:${gatewayPort}/?stream=default/demo`, seconds)),
      });
      results.push({
        keyframeSeconds: g,
        system: 'nginx-rtmp HLS (same player)',
        ...(await sample(`http://127.0.0.1:${gatewayPort}/?src=${encodeURIComponent(peer)}`, seconds)),
      });
    } finally {
      await publisher?.stop('SIGKILL');
      await local.stop();
      await proxy.close();
      await nginx.stop();
      rmSync(home, { recursive: true, force: true });
    }
  }
  return results;
}

export const KEYFRAME_HEADER = ['keyframe interval', 'system', 'samples', 'now−playingDate median', 'p95', 'behind live edge median', 'stalls', 'stalled s'];

export function keyframeRow(r: KeyframeResult): string[] {
  return [
    `${r.keyframeSeconds} s`,
    r.system,
    String(r.endToEnd.length),
    fmt(median(r.endToEnd), 2, ' s'),
    fmt(p95(r.endToEnd), 2, ' s'),
    fmt(median(r.edge), 2, ' s'),
    String(r.stalls),
    fmt(r.stalledSeconds, 1),
  ];
}
