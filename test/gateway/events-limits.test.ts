// The live-state event streams cannot be taken over by one client (issue 17):
// `tteok gateway` as a process, its key file holding 1,500 streams.
// - One address fills its TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS quota and
//   the next stream from it is answered 429 JSON with a sentence and
//   Retry-After, while another address (127.0.0.2) still gets a stream. An
//   X-Forwarded-For is believed only from a proxy in
//   TTEOK_GATEWAY_TRUSTED_PROXIES (127.0.0.3 here): through it each client
//   has its own quota, and a client cannot step around its quota by sending
//   the header itself.
// - Slow readers: 30 clients (each from its own address, so the per-address
//   cap does not stop them) ask to resume from an id 12,000 events back
//   (about 5 MB each) and never read, with a 4 KiB receive buffer so the
//   kernel takes almost nothing off the gateway. Each is closed once what it
//   has not taken passes the 1 MiB bound, long before the connection timeout
//   (60 s here), and the gateway's RSS grows by less than 1 MiB per reader
//   meanwhile. A client that reads gets the whole backlog.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { metricValue, tteokCommand, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { freePort } from '../../harness/ports.ts';
import { spawnManaged, stopAll } from '../../harness/process.ts';
import { openEventStream, type SseClient } from '../../harness/sse-client.ts';
import { httpReady, waitFor } from '../../harness/wait.ts';
import { ROOT } from '../../harness/chart-tools.ts';

const home = mkdtempSync(join(tmpdir(), 'tteok-events-limits-'));
const clients: SseClient[] = [];
t.teardown(async () => {
  for (const c of clients) c.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const PER_ADDRESS = 3;
const STREAMS = 1500;
const REWRITES = 8;
const SLOW_READERS = 30;
const HEARTBEAT_MS = 1000;
const MIB = 1 << 20;

const keysFile = join(home, 'keys.yaml');
/** 1,500 streams whose titles (200 characters, the most a LiveStream allows) all change with `round`. */
const streams = (round: number): TestStream[] =>
  Array.from({ length: STREAMS }, (_, i) => ({
    name: `s${String(i).padStart(4, '0')}`,
    key: `limits-key-${String(i).padStart(4, '0')}-0123456789abcdefghijklmnop`,
    spec: { title: `round ${round} `.padEnd(200, 'abcdefghij') },
  }));
writeKeyFile(keysFile, streams(0));

const port = await freePort();
const command = tteokCommand('gateway');
const gatewayProcess = spawnManaged('gateway', process.execPath, command.args, {
  cwd: ROOT,
  env: {
    ...command.env,
    TTEOK_GATEWAY_HOST: '127.0.0.1',
    TTEOK_GATEWAY_PORT: String(port),
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(home, 'origin'),
    TTEOK_VIEW: 'local',
    TTEOK_KEYS_FILE: keysFile,
    TTEOK_FOLLOW_INTERVAL_MS: '0',
    TTEOK_LOG_LEVEL: 'info',
    TTEOK_EVENTS_MAX_CONNECTIONS: '100',
    TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
    TTEOK_EVENTS_BUFFER_SIZE: '20000',
    TTEOK_EVENTS_HEARTBEAT_MS: String(HEARTBEAT_MS),
    // Long: a slow reader must be closed by the memory bound, not by this.
    TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '60000',
    TTEOK_GATEWAY_TRUSTED_PROXIES: '127.0.0.3',
  },
});
const gateway = `http://127.0.0.1:${port}`;
await gatewayProcess.waitForLine(/"msg":"gateway ready"/, 60_000);
await httpReady(`${gateway}/readyz`);

async function open(path: string, localAddress: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const c = await openEventStream(`${gateway}${path}`, headers, { localAddress });
  clients.push(c);
  return c;
}
const metrics = async (): Promise<string> => (await fetch(`${gateway}/metrics`)).text();
const openStreams = async (): Promise<number> => metricValue(await metrics(), 'tteok_gateway_event_connections');
/** The gateway process's resident set, in bytes. */
function rss(): number {
  const line = readFileSync(`/proc/${gatewayProcess.child.pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) * 1024;
}
const ONE_STREAM = '/v1/streams/default/s0001/events';

// Each subtest starts with no stream open, whatever the one before left.
t.afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await waitFor('every stream closed', async () => ((await openStreams()) === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
});

function refusedPerAddress(tt: Test, c: SseClient, what: string): void {
  tt.equal(c.status, 429, `${what}: 429`);
  tt.equal(c.headers['retry-after'], '10', 'with Retry-After');
  tt.match(c.headers['content-type'], /application\/json/);
  tt.match(
    JSON.parse(c.errorBody ?? '{}'),
    { statusCode: 429, error: 'Too Many Requests', message: /too many open event streams from your address/ },
    'and a sentence',
  );
}

t.test('one address fills its quota; the next stream from it is 429, another address still gets one', async (tt) => {
  const mine: SseClient[] = [];
  for (let i = 0; i < PER_ADDRESS; i++) mine.push(await open(ONE_STREAM, '127.0.0.1'));
  tt.same(
    mine.map((c) => c.status),
    Array(PER_ADDRESS).fill(200),
    `${PER_ADDRESS} streams from 127.0.0.1`,
  );
  const over = await open(ONE_STREAM, '127.0.0.1');
  refusedPerAddress(tt, over, 'one more from 127.0.0.1');
  const overAll = await open('/v1/streams/events?namespace=default', '127.0.0.1');
  tt.equal(overAll.status, 429, 'on the all-streams route too: one quota per address');

  const other = await open(ONE_STREAM, '127.0.0.2');
  tt.equal(other.status, 200, '127.0.0.2 still gets a stream');
  await other.next('its state', (e) => e.event === 'changed');
  tt.same(
    other.events.map((e) => e.event),
    ['reset', 'changed'],
  );
  for (const c of mine) tt.notOk(c.ended(), 'the streams of 127.0.0.1 stay open');
  tt.equal(metricValue(await metrics(), 'tteok_gateway_event_connections_refused_per_address_total'), 2, 'refusals counted');

  mine[0]!.close();
  await waitFor('the freed slot', async () => ((await openStreams()) === PER_ADDRESS ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 }).catch(() =>
    tt.fail('the freed slot was not seen'),
  );
  const again = await open(ONE_STREAM, '127.0.0.1');
  tt.equal(again.status, 200, "a slot freed is 127.0.0.1's again");
});

t.test('X-Forwarded-For counts only from a trusted proxy', async (tt) => {
  const direct: SseClient[] = [];
  for (let i = 0; i < PER_ADDRESS; i++) direct.push(await open(ONE_STREAM, '127.0.0.1'));
  const spoofed = await open(ONE_STREAM, '127.0.0.1', { 'x-forwarded-for': '203.0.113.9' });
  refusedPerAddress(tt, spoofed, 'from 127.0.0.1 (not a trusted proxy), claiming to be 203.0.113.9');

  const viaProxy: SseClient[] = [];
  for (let i = 0; i < PER_ADDRESS; i++) viaProxy.push(await open(ONE_STREAM, '127.0.0.3', { 'x-forwarded-for': '203.0.113.9' }));
  tt.same(
    viaProxy.map((c) => c.status),
    Array(PER_ADDRESS).fill(200),
    'through the proxy, 203.0.113.9 has its own quota',
  );
  refusedPerAddress(tt, await open(ONE_STREAM, '127.0.0.3', { 'x-forwarded-for': '203.0.113.9' }), 'one more for 203.0.113.9 through the proxy');
  const neighbour = await open(ONE_STREAM, '127.0.0.3', { 'x-forwarded-for': '203.0.113.10' });
  tt.equal(neighbour.status, 200, 'another client behind the same proxy is unaffected');
});

t.test("slow readers on a large Last-Event-ID backlog are closed; the gateway's memory stays bounded", async (tt) => {
  // The id before every rewrite: resuming from it is a backlog of all their events.
  const watcher = await open('/v1/streams/events?namespace=default', '127.0.0.4');
  const reset = await watcher.next('the reset', (e) => e.event === 'reset');
  for (let round = 1; round <= REWRITES; round++) {
    const from = watcher.events.length;
    writeKeyFile(keysFile, streams(round));
    await watcher.next(
      `round ${round}'s last change`,
      (e) => e.event === 'changed' && e.data.includes(`"name":"s${STREAMS - 1}"`) && e.data.includes(`round ${round} `),
      { from, timeoutMs: 60_000 },
    );
  }
  watcher.close();
  const seq = (id: string | undefined) => Number(id?.split('-')[1]);
  const backlogEvents = watcher.events.filter((e) => seq(e.id) > seq(reset.id)).length;
  tt.ok(backlogEvents >= STREAMS * REWRITES, `${backlogEvents} events since the reset`);

  // A client that reads gets all of it.
  const reader = await open('/v1/streams/events?namespace=default', '127.0.0.5', { 'last-event-id': reset.id! });
  await reader.next('the last event of the backlog', (e) => e.data.includes(`"name":"s${STREAMS - 1}"`) && e.data.includes(`round ${REWRITES} `), {
    timeoutMs: 60_000,
  });
  tt.equal(reader.events.length, backlogEvents, `a reading client gets the whole backlog (${backlogEvents} events)`);
  const backlogBytes = reader.events.reduce((n, e) => n + e.data.length, 0);
  tt.ok(backlogBytes > 4 * MIB, `the backlog is ${(backlogBytes / MIB).toFixed(1)} MiB of data`);
  reader.close();
  await waitFor('no stream open', async () => ((await openStreams()) === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });

  const before = rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
  const slow = spawnManaged('slow-readers', 'python3', [
    join(ROOT, 'test/tools/slow-readers.py'),
    '127.0.0.1',
    String(port),
    '/v1/streams/events?namespace=default',
    reset.id!,
    String(SLOW_READERS),
    '127.0.1.',
    '4096',
  ]);
  try {
    await slow.waitForLine(/^all open$/, 30_000);
    const opened = Date.now();
    // Each is closed by the gateway (its gauge shows it) well before the 60 s connection timeout.
    await waitFor(
      'every slow reader closed by the gateway',
      async () => {
        peak = Math.max(peak, rss());
        return (await openStreams()) === 0 ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    const closedAfter = Date.now() - opened;
    tt.ok(closedAfter < 20_000, `all ${SLOW_READERS} closed ${closedAfter} ms after they connected (connection timeout 60 s)`);
    tt.equal(metricValue(await metrics(), 'tteok_gateway_event_connections_cut_slow_total'), SLOW_READERS, 'each counted as cut for not reading');
    clearInterval(sampler);
    const growth = peak - before;
    tt.comment(`gateway RSS ${(before / MIB).toFixed(1)} MiB before, peak ${(peak / MIB).toFixed(1)} MiB with ${SLOW_READERS} slow readers`);
    tt.ok(growth < SLOW_READERS * MIB, `RSS grew by ${(growth / MIB).toFixed(1)} MiB, less than 1 MiB per slow reader (${SLOW_READERS} MiB)`);

    // What the readers see once they do read: a 200 that ends before the backlog did.
    const from = slow.lines.length;
    slow.child.kill('SIGUSR1');
    await slow.waitForLine(/^done$/, 60_000, from);
    const closed = slow.lines.slice(from).filter((l) => l.startsWith('closed '));
    tt.equal(closed.length, SLOW_READERS);
    for (const line of closed) {
      const [, , bytes = '0', how = '', ...status] = line.split(' ');
      tt.match(status.join(' '), /^HTTP\/1\.1 200/, `${line.slice(0, 40)}: the stream had begun`);
      tt.not(how, 'timeout', 'the connection ended');
      tt.ok(Number(bytes) < backlogBytes, `received ${bytes} bytes, less than the backlog`);
    }
  } finally {
    clearInterval(sampler);
    await slow.stop('SIGTERM', 5_000);
  }
});
