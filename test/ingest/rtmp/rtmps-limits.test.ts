// The RTMPS door on the real ingest process: one address that opens many TCP
// connections to the RTMPS port and never sends a byte of TLS holds no more
// than its per-address allowance (plus the few refusal slots) — counted at TCP
// accept, before TLS — so a real ffmpeg streamer from another address still
// publishes over rtmps://; the idle sockets are closed by the TLS handshake
// timeout. The flood comes from 127.0.0.2 and the streamer from 127.0.0.1,
// because ffmpeg cannot choose its source address.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { metricValue, startIngestProcess, writeKeyFile } from '../../../harness/ingest-process.ts';
import { freePort } from '../../../harness/ports.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

const KEY = 'rtmps_door_key_aaaaaaaaaaaa1';
const ATTACKER = '127.0.0.2';
const PER_ADDRESS = 10;
const REFUSAL_SLOTS = 16;
/** Small, so that the flood below exceeds the whole pod's allowance (the pod cap plus its refusal slots). */
const POD_CAP = 40;
const FLOOD = POD_CAP + REFUSAL_SLOTS + 24;
/** Long enough that the flood is still held when ffmpeg (slow to start on a busy machine) publishes. */
const HANDSHAKE_TIMEOUT_SECONDS = 10;

const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmps-limits-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, [{ name: 'door', key: KEY }]);
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    '/CN=tteok-test',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ],
  { stdio: 'ignore' },
);

const rtmpsPort = await freePort();
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin'),
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_RTMPS_PORT: String(rtmpsPort),
  TTEOK_RTMPS_CERT_FILE: certFile,
  TTEOK_RTMPS_KEY_FILE: keyFile,
  TTEOK_RTMP_MAX_CONNECTIONS: String(POD_CAP),
  TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
  TTEOK_RTMPS_HANDSHAKE_TIMEOUT_SECONDS: String(HANDSHAKE_TIMEOUT_SECONDS),
});

const held: Socket[] = [];
t.teardown(async () => {
  for (const socket of held) socket.destroy();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

interface IdleConnection {
  socket: Socket;
  isClosed(): boolean;
  /** When the ingest closed it (Date.now()), once it has. */
  closedAt(): number | undefined;
}

/** The first 5 bytes of a TLS ClientHello: a handshake record header announcing 512 bytes that never come. */
const HALF_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]);

/** A TCP connection from `localAddress` that sends nothing, or only the start of a TLS handshake. */
function idleConnection(localAddress: string, firstBytes?: Buffer): Promise<IdleConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: rtmpsPort, localAddress });
    held.push(socket);
    let closedAt: number | undefined;
    socket.on('close', () => (closedAt = Date.now()));
    socket.on('data', () => undefined); // read, so a close after data is seen
    socket.once('error', (error) => (closedAt ? undefined : reject(error)));
    socket.once('connect', () => {
      socket.on('error', () => undefined);
      if (firstBytes) socket.write(firstBytes);
      resolve({ socket, isClosed: () => closedAt !== undefined, closedAt: () => closedAt });
    });
  });
}

t.test('idle TCP connections from one address do not keep a streamer from another address off the RTMPS port', async (t) => {
  const opened = Date.now();
  // Every other one sends half a TLS record header: a handshake started and left hanging.
  const flood = await Promise.all(Array.from({ length: FLOOD }, (_, i) => idleConnection(ATTACKER, i % 2 ? HALF_CLIENT_HELLO : undefined)));
  // The kernel hands connections to the ingest in the order they came, so the flood is accepted before ffmpeg's.
  const streamer = publishTestPattern({ url: `rtmps://127.0.0.1:${rtmpsPort}/live/${KEY}`, seconds: 3, name: 'ffmpeg-rtmps-streamer' });
  let streamerExited = false;
  void streamer.exited.then(() => (streamerExited = true));
  const accepted = await waitFor(
    'the publish to be accepted or ffmpeg to exit',
    () => {
      if (ingest.proc.lines.some((l) => l.includes('"msg":"publish accepted"'))) return 'accepted';
      return streamerExited && 'ffmpeg exited';
    },
    { timeoutMs: 30_000, intervalMs: 20 },
  );
  const openAtPublish = flood.filter((c) => !c.isClosed()).length;
  const exit = await streamer.exited;
  t.equal(exit.code, 0, `ffmpeg published over rtmps:// from 127.0.0.1 while ${ATTACKER} flooded the port: ${streamer.lines.slice(-3).join(' | ')}`);
  t.equal(accepted, 'accepted', 'the ingest accepted the publish');
  t.equal(
    openAtPublish,
    PER_ADDRESS + REFUSAL_SLOTS,
    `the flooding address held ${PER_ADDRESS} connections and the ${REFUSAL_SLOTS} refusal slots when the streamer was admitted; the rest were closed at accept`,
  );

  const metrics = await ingest.metrics();
  t.equal(
    metricValue(metrics, 'tteok_ingest_rtmp_connections_refused_total', 'reason="address_full"'),
    REFUSAL_SLOTS,
    'over the per-address cap, counted before any TLS',
  );
  t.equal(
    metricValue(metrics, 'tteok_ingest_rtmp_connections_refused_total', 'reason="over_capacity"'),
    FLOOD - PER_ADDRESS - REFUSAL_SLOTS,
    'beyond the refusal slots, closed at once',
  );

  await waitFor('the idle connections to be closed by the TLS handshake timeout', () => flood.every((c) => c.isClosed()), { timeoutMs: 20_000 });
  const closedAfter = Date.now() - opened;
  t.ok(closedAfter >= HANDSHAKE_TIMEOUT_SECONDS * 1000 - 100, `not before the handshake timeout (${closedAfter} ms)`);
  const heldUntilTimeout = (c: IdleConnection) => c.closedAt()! - opened >= HANDSHAKE_TIMEOUT_SECONDS * 1000 - 100;
  t.ok(
    flood.some((c, i) => i % 2 === 1 && heldUntilTimeout(c)),
    'among them, connections with half a ClientHello (closed in the TLS handshake itself)',
  );
  t.ok(
    flood.some((c, i) => i % 2 === 0 && heldUntilTimeout(c)),
    'and connections that sent nothing',
  );
  t.equal(
    metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_deadline_closes_total', 'stage="tls_handshake"'),
    PER_ADDRESS + REFUSAL_SLOTS,
    'counted as closed at the TLS handshake stage',
  );
  t.ok(
    ingest.proc.lines.some((l) => l.includes(`no TLS handshake within ${HANDSHAKE_TIMEOUT_SECONDS} s of connecting`)),
    'each close is logged',
  );
  await waitFor('every slot to be released', async () => metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections') === 0);
});
