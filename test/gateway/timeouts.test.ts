// The gateway's connection timeouts, on a real listening gateway over real
// TCP sockets, configured through its environment variables as a pod is:
// an idle keep-alive connection is closed after the keep-alive timeout,
// connections that never send a request are closed, a client trickling its
// headers is cut at the headers timeout (answered 408), and a client that
// keeps asking is never cut. Timeouts are short here so the test is quick;
// every wait is bounded far above them and far below the old behaviour
// (no timeouts: idle connections were held for 100 s and more).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ConfigError } from '../../common/env-config.ts';
import { createLogger } from '../../common/log.ts';
import { gatewayOptionsFrom, loadGatewayConfig } from '../../gateway/config.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { LocalStreamView } from '../../gateway/views/local-stream-view.ts';
import { writeKeyFile } from '../../harness/ingest-process.ts';
import { waitFor } from '../../harness/wait.ts';

const log = createLogger('gateway-timeouts-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');
const CDN = 'https://cdn.example.test';

const dir = mkdtempSync(join(tmpdir(), 'tteok-gateway-timeouts-'));
writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'demo', key: 'timeouts_key_AAAAAAAAAAAAAAAA1' }]);
const view = LocalStreamView.fromFile(join(dir, 'keys.yaml'), log);
await view.ready();

const KEEP_ALIVE_MS = 1000;
const HEADERS_MS = 1500;
const config = loadGatewayConfig({
  TTEOK_PLAYBACK_BASE_URL: CDN,
  TTEOK_GATEWAY_HOST: '127.0.0.1',
  TTEOK_GATEWAY_PORT: '0',
  TTEOK_FOLLOW_INTERVAL_MS: '0',
  TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_MS),
  TTEOK_GATEWAY_HEADERS_TIMEOUT_MS: String(HEADERS_MS),
  TTEOK_GATEWAY_REQUEST_TIMEOUT_MS: '3000',
  // Long, so that what cuts the clients below is the timeout each test is about.
  TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '60000',
});
const gateway = await startGateway({ ...gatewayOptionsFrom(config), view, log });

t.teardown(async () => {
  await gateway.close();
  await view.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw client socket that records what it received and whether it was closed. */
interface RawClient {
  socket: Socket;
  received: () => string;
  closed: () => boolean;
}

async function rawClient(): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port: gateway.port });
  let data = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined); // a reset by the server is one way of closing
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed: () => closed };
}

/** The complete responses (headers and Content-Length body) in what a client received. */
function responses(text: string): Array<{ status: number; headers: string }> {
  const out: Array<{ status: number; headers: string }> = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const headers = rest.slice(0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? 0);
    if (rest.length < end + 4 + length) return out;
    out.push({ status: Number(headers.split(' ')[1]), headers });
    rest = rest.slice(end + 4 + length);
  }
}

const LOOKUP = 'GET /v1/streams/default/demo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

t.test('an idle keep-alive connection is closed after the keep-alive timeout', async (tt) => {
  const client = await rawClient();
  tt.teardown(() => client.socket.destroy());
  client.socket.write(LOOKUP);
  const [first] = await waitFor(
    "the lookup's response",
    () => {
      const got = responses(client.received());
      return got.length > 0 ? got : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  tt.equal(first!.status, 200);
  tt.match(first!.headers, /\r\nconnection: keep-alive/i, 'the connection is kept alive');
  tt.match(first!.headers, new RegExp(`\\r\\nkeep-alive: timeout=${KEEP_ALIVE_MS / 1000}`, 'i'), 'and the client is told for how long');
  tt.notOk(client.closed(), 'open right after the response');
  await waitFor('the idle connection to be closed', () => client.closed(), { timeoutMs: 15_000, intervalMs: 50 });
  tt.pass('the server closed the idle connection');
});

t.test('a client that keeps asking is never cut by the keep-alive timeout', async (tt) => {
  const client = await rawClient();
  tt.teardown(() => client.socket.destroy());
  // Requests 300 ms apart for three times the keep-alive timeout, on one connection.
  const count = Math.ceil((3 * KEEP_ALIVE_MS) / 300);
  for (let i = 1; i <= count; i++) {
    client.socket.write(LOOKUP);
    await waitFor(`response ${i}`, () => responses(client.received()).length >= i, { timeoutMs: 10_000, intervalMs: 10 });
    await sleep(300);
  }
  tt.notOk(client.closed(), `still open after ${count} requests`);
  tt.ok(
    responses(client.received()).every((r) => r.status === 200),
    'every one answered 200',
  );
});

t.test('connections that never send a request are closed', async (tt) => {
  const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient()));
  tt.teardown(() => clients.forEach((c) => c.socket.destroy()));
  await waitFor('all 20 silent connections to be closed', () => clients.every((c) => c.closed()), { timeoutMs: 15_000, intervalMs: 100 });
  tt.pass('the server closed every connection that sent nothing');
});

t.test('a client trickling its headers is cut at the headers timeout', async (tt) => {
  const client = await rawClient();
  tt.teardown(() => client.socket.destroy());
  client.socket.write('GET /v1/streams/default/demo HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  // One header line every 200 ms keeps the socket busy (no idle timeout
  // applies) but never completes the headers. Bounded: 15 s at most.
  for (let i = 0; i < 75 && !client.closed(); i++) {
    client.socket.write(`X-Slow-${i}: ${'a'.repeat(10)}\r\n`);
    await sleep(200);
  }
  tt.ok(client.closed(), 'the server closed the connection');
  tt.match(client.received(), /^HTTP\/1\.1 408 /, 'with 408 Request Timeout');
});

t.test("the configured timeouts are the server's", async (tt) => {
  const server = gateway.app.server;
  tt.equal(server.keepAliveTimeout, KEEP_ALIVE_MS, 'keepAliveTimeout');
  tt.equal(server.headersTimeout, HEADERS_MS, 'headersTimeout');
  tt.equal(server.requestTimeout, 3000, 'requestTimeout');
  tt.equal(server.timeout, 60_000, 'connection (socket idle) timeout');
});

t.test('timeout configuration: documented defaults, clear errors', async (tt) => {
  const d = loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: CDN });
  tt.same(
    { request: d.requestTimeoutMs, headers: d.headersTimeoutMs, keepAlive: d.keepAliveTimeoutMs, connection: d.connectionTimeoutMs },
    { request: 30_000, headers: 10_000, keepAlive: 5_000, connection: 30_000 },
    'defaults (README, Gateway table)',
  );
  const refused = (env: Record<string, string>): string => {
    try {
      loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: CDN, ...env });
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    return '(accepted)';
  };
  tt.match(refused({ TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS: 'long' }), /TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS/);
  tt.match(refused({ TTEOK_GATEWAY_REQUEST_TIMEOUT_MS: '0' }), /TTEOK_GATEWAY_REQUEST_TIMEOUT_MS/, 'no way to turn a timeout off');
  tt.match(refused({ TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '-1' }), /TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS/);
  tt.match(
    refused({ TTEOK_GATEWAY_HEADERS_TIMEOUT_MS: '40000', TTEOK_GATEWAY_REQUEST_TIMEOUT_MS: '20000' }),
    /TTEOK_GATEWAY_HEADERS_TIMEOUT_MS.*TTEOK_GATEWAY_REQUEST_TIMEOUT_MS/,
    'headers must arrive within the request timeout',
  );
});

t.test('a client trickling a request body is cut at the request timeout', async (tt) => {
  const client = await rawClient();
  tt.teardown(() => client.socket.destroy());
  // Complete headers (so the headers timeout is satisfied), then a body that
  // never completes: one byte every 200 ms of 100 000. Bounded: 15 s at most.
  client.socket.write('POST /v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n');
  for (let i = 0; i < 75 && !client.closed(); i++) {
    client.socket.write(' ');
    await sleep(200);
  }
  tt.ok(client.closed(), 'the server closed the connection');
  tt.match(client.received(), /^HTTP\/1\.1 408 /, 'with 408 Request Timeout');
});
