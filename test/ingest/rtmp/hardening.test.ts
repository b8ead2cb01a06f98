// The RTMP port as the open internet sees it, against the real ingest process:
// byte sequences that once ended the process now close only their own
// connection (with a log line and a counter), and a real ffmpeg publisher is
// still accepted and stored afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { REGRESSIONS } from './fuzz/regressions.ts';
import { metricValue, startIngestProcess, writeKeyFile } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { openRaw } from '../../../harness/rtmp-wire.ts';
import { waitFor } from '../../../harness/wait.ts';

const KEY = 'hardening_key_aaaaaaaaaaaa1';
const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmp-hardening-'));
const keysFile = join(dir, 'keys.yaml');
const originDir = join(dir, 'origin');
writeKeyFile(keysFile, [{ name: 'hardened', key: KEY }]);
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: originDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS: '2',
});

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const alive = () => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;

for (const regression of REGRESSIONS) {
  t.test(`regression "${regression.name}" closes only its connection`, async (t) => {
    const before = await ingest.metrics();
    const conn = await openRaw(ingest.rtmpPort);
    conn.send(regression.bytes);
    await waitFor(`the connection sending ${regression.name} to be closed`, () => conn.isClosed(), { timeoutMs: 15_000 });
    t.ok(alive(), `the ingest is still running (${regression.why})`);
    const health = await fetch(`http://127.0.0.1:${ingest.httpPort}/healthz`);
    t.equal(health.status, 200, '/healthz answers');
    const after = await ingest.metrics();
    const metric = regression.closedBy === 'protocol_error' ? 'tteok_ingest_rtmp_protocol_errors_total' : 'tteok_ingest_rtmp_deadline_closes_total';
    const sum = (text: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${metric}{`))
        .reduce((total, l) => total + Number(l.split(' ').at(-1)), 0);
    t.ok(sum(after) > sum(before), `${metric} counted it`);
  });
}

t.test('protocol errors are logged with the session, never a key', async (t) => {
  const lines = ingest.proc.lines.filter((l) => l.includes('RTMP protocol error') || l.includes('no publish within'));
  t.ok(lines.length >= REGRESSIONS.length, 'one log line per closed connection');
  t.notOk(
    ingest.proc.lines.some((l) => l.includes(KEY)),
    'no log line holds the key',
  );
});

t.test('a legitimate ffmpeg publisher is accepted afterwards and its stream stored', async (t) => {
  const before = metricValue(await ingest.metrics(), 'tteok_ingest_publishes_total', 'outcome="accepted"');
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(KEY), seconds: 4 });
  const playlist = join(originDir, 'default', 'hardened', 'index.m3u8');
  const exit = await publisher.exited;
  t.equal(exit.code, 0, `ffmpeg published and ended cleanly: ${publisher.lines.slice(-5).join(' | ')}`);
  const text = await waitFor(
    'the final playlist to be stored',
    () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST') && readFileSync(playlist, 'utf8'),
  );
  t.match(text, /\.m4s/, 'the stored playlist lists segments');
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_publishes_total', 'outcome="accepted"'), before + 1, 'the publish was accepted');
  t.ok(alive(), 'the ingest is still running');
});
