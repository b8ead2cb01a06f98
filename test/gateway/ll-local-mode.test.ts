// LL-HLS in the one-machine mode (`tteok local`, as `make run` starts it):
// the gateway's /origin/ serves a live stream's playlist and parts from the
// ingest in the same process (blocking reloads included), its stored
// segments from the directory, and once the stream has ended the directory's
// playlist again.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { localModePorts, spawnLocalMode } from '../../harness/local-mode.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { httpReady, waitFor } from '../../harness/wait.ts';

const home = mkdtempSync(join(tmpdir(), 'tteok-ll-local-'));
const ports = await localModePorts();
t.teardown(async () => {
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});
const KEY = 'll-local-stream-key-0123456789abcdef';
writeFileSync(
  join(home, 'keys.yaml'),
  ['apiVersion: tteok.dev/v1alpha1', 'kind: LiveStream', 'metadata: { name: demo, namespace: default }', 'spec: { title: LL }', `streamKey: ${KEY}`, ''].join(
    '\n',
  ),
);
const local = spawnLocalMode(home, ports, {
  TTEOK_FOLLOW_INTERVAL_MS: '0',
  TTEOK_LL_PART_SECONDS: '0.333',
  TTEOK_RECONNECT_GRACE_SECONDS: '1',
  TTEOK_LOG_LEVEL: 'info',
});
const gateway = `http://127.0.0.1:${ports.gatewayPort}`;
await local.waitForLine(/^\s+Watch:\s+http\S+\/$/, 60_000);
await httpReady(`${gateway}/readyz`);
const base = `${gateway}/origin/default/demo/`;

async function get(path: string): Promise<{ status: number; text: string; body: Buffer; headers: Headers; ms: number }> {
  const started = performance.now();
  const res = await fetch(base + path);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, text: body.toString(), body, headers: res.headers, ms: performance.now() - started };
}
const hintOf = (text: string) => {
  const m = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*\/(\d+)\.(\d+)\.part\.m4s"/.exec(text);
  return m ? { msn: Number(m[1]), part: Number(m[2]) } : undefined;
};

const publisher = publishTestPattern({ url: `rtmp://127.0.0.1:${ports.rtmpPort}/live/${KEY}`, gopSeconds: 2, name: 'll-local-publisher' });

t.test("a live stream: the ingest's LL playlist, blocking, its parts; stored segments from the directory", async (t) => {
  const first = await waitFor(
    'an LL playlist at /origin/',
    async () => {
      const res = await get('index.m3u8');
      // A whole segment listed too (its parts, then its EXTINF line).
      return res.status === 200 && res.text.includes('#EXT-X-PART:') && /\n[^#\n][^\n]*\.m4s\n/.test(res.text) && hintOf(res.text) ? res : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  t.match(first.text, /CAN-BLOCK-RELOAD=YES/);
  const target = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(first.text)?.[1]);
  t.equal(first.headers.get('cache-control'), `public, max-age=${Math.floor(target / 2)}`, 'a plain reload: half a target duration, as stored playlists');
  const hint = hintOf(first.text)!;
  const blocked = await get(`index.m3u8?_HLS_msn=${hint.msn}&_HLS_part=${hint.part}`);
  t.equal(blocked.status, 200, 'the blocking reload is answered');
  t.equal(blocked.headers.get('cache-control'), 'public, max-age=1', 'a blocking answer: one second, for the CDN to collapse on');
  t.match(blocked.text, new RegExp(`/${hint.msn}\\.${hint.part}\\.part\\.m4s"`), 'with the part it waited for');
  const part = /#EXT-X-PART:[^\n]*URI="([^"]+)"/.exec(blocked.text)![1]!;
  const partRes = await get(part);
  t.equal(partRes.status, 200, `a part (${part})`);
  t.equal(partRes.body.subarray(4, 8).toString('latin1'), 'moof');
  t.equal((await get('index.m3u8?_HLS_msn=x')).status, 400, 'bad values: 400');
  const segment = first.text.split('\n').find((l) => l.endsWith('.m4s') && !l.startsWith('#'))!;

  const stored = await waitFor('the first segment stored', async () => ((await get(segment)).status === 200 ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  t.ok(stored, `a segment (${segment})`);
});

t.test('the stream ended: the stored playlist from the directory', async (t) => {
  await publisher.stop('SIGTERM');
  const ended = await waitFor(
    'the ended playlist',
    async () => {
      const res = await get('index.m3u8');
      return res.status === 200 && res.text.includes('#EXT-X-ENDLIST') ? res : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  t.notMatch(ended.text, /#EXT-X-PART:/, 'no parts in the stored playlist');
});
