// `tteok local` (`make run`) as a person at a terminal meets it: pretty,
// coloured log lines on a terminal (JSON when piped, as a pod's logs), and a
// second Ctrl-C that exits at once while the first still waits for uploads.
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { metricValue, writeKeyFile } from '../../harness/ingest-process.ts';
import { localModePorts, spawnLocalMode } from '../../harness/local-mode.ts';
import { freePort } from '../../harness/ports.ts';
import { spawnManaged, stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { waitFor } from '../../harness/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
t.teardown(async () => {
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function home(): string {
  const d = mkdtempSync(join(tmpdir(), 'tteok-terminal-'));
  dirs.push(d);
  return d;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const KEY = 'terminal-demo-key-0123456789abcdefghij';

t.test('on a terminal the log lines are pretty and coloured', async (tt) => {
  const ports = await localModePorts();
  const h = home();
  // `exec`: script runs the command with $SHELL -c; Debian's dash (a CI's /bin/sh) stays as tteok's parent without
  // it, and the SIGTERM below would reach the shell instead of tteok (the failure CI saw; bash execs by itself).
  const command = `exec ${[process.execPath, '--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), 'local'].map((a) => `'${a}'`).join(' ')}`;
  // util-linux script(1) gives the command a pseudo-terminal of its own, as a terminal window does.
  const p = spawnManaged('script-tteok-local', 'script', ['-qfec', command, '/dev/null'], {
    cwd: ROOT,
    env: {
      SHELL: '/bin/sh',
      TTEOK_LOCAL_HOME: h,
      TTEOK_RTMP_PORT: String(ports.rtmpPort),
      TTEOK_HTTP_PORT: String(ports.httpPort),
      TTEOK_GATEWAY_PORT: String(ports.gatewayPort),
      TTEOK_LOG_LEVEL: 'info',
    },
  });
  await p.waitForLine(/tteok is running on this machine/, 60_000);
  const ready = p.lines.find((l) => l.replace(ANSI, '').includes('gateway: gateway ready'));
  tt.ok(ready, 'a line names its component and says what happened');
  tt.match(ready ?? '', /^\[\d\d:\d\d:\d\d\.\d{3}\] \x1b\[32mINFO\x1b\[39m: /, 'with the time of day and a green INFO');
  tt.notOk(
    p.lines.some((l) => l.trimStart().startsWith('{"level"')),
    'no JSON lines',
  );
  // script runs tteok as its child: stop that one, and script exits with its code (-e).
  const child = Number(readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  tt.match(readFileSync(`/proc/${child}/cmdline`, 'utf8'), /bin\/tteok\.ts\0local/, 'tteok runs under script, as its child');
  const from = p.lines.length;
  process.kill(child, 'SIGTERM');
  const exit = await p.exited;
  tt.equal(exit.code, 0, 'and stops cleanly', { signal: exit.signal, said: p.lines.slice(from).map((l) => l.replace(ANSI, '')) });
});

t.test('piped, the same lines are JSON', async (tt) => {
  const ports = await localModePorts();
  const p = spawnLocalMode(home(), ports, { TTEOK_LOG_LEVEL: 'info' });
  const line = await p.waitForLine(/gateway ready/, 60_000);
  tt.match(JSON.parse(line), { level: 'info', component: 'gateway', msg: 'gateway ready' });
  await p.stop('SIGTERM');
});

t.test('a second Ctrl-C exits at once while the first waits for uploads, saying they stay on the volume', async (tt) => {
  // An S3 endpoint that accepts connections and never answers: every upload waits.
  const held = new Set<Socket>();
  const blackhole = createServer((socket) => {
    held.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => held.delete(socket));
  });
  const s3Port = await freePort();
  await new Promise<void>((resolve) => blackhole.listen(s3Port, '127.0.0.1', resolve));
  tt.teardown(() => {
    for (const s of held) s.destroy();
    blackhole.close();
  });

  const h = home();
  writeKeyFile(join(h, 'keys.yaml'), [{ name: 'demo', key: KEY }]);
  const ports = await localModePorts();
  const local = spawnLocalMode(h, ports, {
    TTEOK_STORAGE: 's3',
    TTEOK_S3_BUCKET: 'media',
    TTEOK_S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    TTEOK_S3_FORCE_PATH_STYLE: 'true',
    TTEOK_S3_REQUEST_TIMEOUT_MS: '60000',
    TTEOK_PLAYBACK_BASE_URL: 'https://cdn.example.test',
    TTEOK_SHUTDOWN_TIMEOUT_SECONDS: '600',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_REGION: 'us-east-1',
    TTEOK_LOG_LEVEL: 'info',
  });
  await local.waitForLine(/tteok is running on this machine/, 60_000);
  const publisher = publishTestPattern({ url: `rtmp://127.0.0.1:${ports.rtmpPort}/live/${KEY}`, seconds: 4 });
  await waitFor(
    'segments waiting for the blocked S3',
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${ports.httpPort}/metrics`)).text();
      return metricValue(text, 'tteok_ingest_upload_backlog_segments') >= 2;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  await publisher.exited;

  const from = local.lines.length;
  local.child.kill('SIGINT');
  await local.waitForLine(/SIGINT: shutting down \(waiting for uploads/, 10_000, from);
  tt.equal(local.child.exitCode, null, 'the first Ctrl-C waits for the uploads');
  local.child.kill('SIGINT');
  const exit = await Promise.race([local.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 5000))]);
  tt.not(exit, 'still running', 'the second Ctrl-C exits within 5 s');
  if (exit !== 'still running') tt.equal(exit.code, 130, 'with 130, interrupted');
  const said = local.lines.slice(from).find((l) => /SIGINT again/.test(l));
  tt.match(said ?? '', /uploads still waiting stay on the media volume \(.*media\); the next start uploads them first/);
  const waiting = readdirSync(join(h, 'media'), { recursive: true })
    .map(String)
    .filter((f) => /\.(m4s|mp4)$/.test(f));
  tt.ok(waiting.length > 0, `the segments are still on the volume (${waiting.length} files)`);
});
