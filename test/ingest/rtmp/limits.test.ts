// What a client without a key can make the ingest hold, and for how long,
// measured on the real ingest process: chunk headers declaring 16 MiB
// messages and hundreds of garbage connections keep its RSS growth under
// 50 MiB; connections that never publish are closed by the deadline; the
// per-address and per-pod caps refuse the connection after the cap, and a
// refused ffmpeg publisher reads why.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { metricValue, startIngestProcess, writeKeyFile, type IngestProcess } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { chunk, clientHandshake, connectCommand, createStreamCommand, openRaw, rssBytes, type RawConnection } from '../../../harness/rtmp-wire.ts';
import { waitFor } from '../../../harness/wait.ts';

const KEY = 'limits_key_aaaaaaaaaaaaaaaa1';
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmp-limits-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, [{ name: 'limits', key: KEY }]);
const baseEnv = (name: string) => ({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: join(dir, name, 'origin'),
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, name, 'media'),
  TTEOK_LOG_LEVEL: 'info',
});

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const alive = (ingest: IngestProcess) => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;

async function healthzMs(ingest: IngestProcess): Promise<number> {
  const started = Date.now();
  const res = await fetch(`http://127.0.0.1:${ingest.httpPort}/healthz`);
  if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
  return Date.now() - started;
}

async function allClosed(conns: RawConnection[], what: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${what}: all ${conns.length} connections closed by the ingest`, () => conns.every((c) => c.isClosed()), { timeoutMs });
}

/** A message header on its own chunk stream declaring 0xFFFFFF bytes, followed by one chunk of them. */
function hugeDeclaration(csid: number): Buffer {
  return chunk(randomBytes(128), { csid, type: 9, declaredLength: 0xffffff }).subarray(0, 12 + 128);
}

t.test('16 MiB declarations and garbage connections keep RSS growth under 50 MiB', async (t) => {
  const ingest = await startIngestProcess({ ...baseEnv('memory'), TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '2000', TTEOK_RTMP_MAX_CONNECTIONS: '2000' });
  const pid = ingest.proc.child.pid!;
  // Warm up the code paths once (a handshake, a publish refusal), then take the baseline.
  const warm = await openRaw(ingest.rtmpPort);
  warm.send(Buffer.concat([clientHandshake(), connectCommand()]));
  await waitFor('the warm-up connect to be answered', () => warm.received().length > 3073);
  warm.socket.destroy();
  const baseline = await rssBytes(pid);

  // 60 headers each declaring 0xFFFFFF bytes: on one connection, and on 60 connections.
  const one = await openRaw(ingest.rtmpPort);
  one.send(Buffer.concat([clientHandshake(), ...Array.from({ length: 60 }, (_, i) => hugeDeclaration(3 + i))]));
  const many = await Promise.all(Array.from({ length: 60 }, () => openRaw(ingest.rtmpPort)));
  for (const [i, c] of many.entries()) c.send(Buffer.concat([clientHandshake(), hugeDeclaration(3 + (i % 60))]));
  await allClosed([one, ...many], '16 MiB declarations');

  // 300 connections of random bytes, half of them after a valid handshake, all at once.
  const garbage = await Promise.all(Array.from({ length: 300 }, () => openRaw(ingest.rtmpPort)));
  for (const [i, c] of garbage.entries()) c.send(i % 2 ? randomBytes(8192) : Buffer.concat([clientHandshake(), randomBytes(8192)]));
  const peak = { rss: 0 };
  await waitFor(
    'the garbage connections to be closed',
    async () => {
      peak.rss = Math.max(peak.rss, await rssBytes(pid));
      return garbage.every((c) => c.isClosed());
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  peak.rss = Math.max(peak.rss, await rssBytes(pid));

  const growth = peak.rss - baseline;
  t.ok(growth < 50 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${(peak.rss / MiB).toFixed(0)} MiB)`);
  t.ok(alive(ingest), 'the ingest is still running');
  t.ok((await healthzMs(ingest)) < 1000, '/healthz answers');
  const metrics = await ingest.metrics();
  t.ok(
    metricValue(metrics, 'tteok_ingest_rtmp_protocol_errors_total', 'reason="message_too_large"') >= 61,
    'every 16 MiB declaration was refused as message_too_large',
  );
  t.ok(metricValue(metrics, 'tteok_ingest_rtmp_protocol_errors_total', 'reason="handshake"') >= 100, 'random bytes were refused at the handshake');

  // Still a working ingest: a real publisher is accepted.
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(KEY), seconds: 2 });
  t.equal((await publisher.exited).code, 0, 'ffmpeg publishes afterwards');
  await ingest.proc.stop();
});

t.test('connections that send nothing or half a handshake are closed by the publish deadline', async (t) => {
  const ingest = await startIngestProcess({ ...baseEnv('deadline'), TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS: '2', TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '200' });
  const opened = Date.now();
  const silent = await Promise.all(Array.from({ length: 40 }, () => openRaw(ingest.rtmpPort)));
  const halfHandshake = await Promise.all(Array.from({ length: 40 }, () => openRaw(ingest.rtmpPort)));
  for (const c of halfHandshake) c.send(clientHandshake().subarray(0, 700));
  const connected = await Promise.all(Array.from({ length: 20 }, () => openRaw(ingest.rtmpPort)));
  for (const c of connected) c.send(Buffer.concat([clientHandshake(), connectCommand(), createStreamCommand()]));
  await allClosed([...silent, ...halfHandshake, ...connected], 'idle connections', 15_000);
  t.ok(Date.now() - opened >= 1900, 'not before the deadline');
  const metrics = await ingest.metrics();
  t.equal(
    metricValue(metrics, 'tteok_ingest_rtmp_deadline_closes_total', 'stage="handshake"'),
    80,
    'the silent and half-handshake ones, at the handshake stage',
  );
  t.equal(metricValue(metrics, 'tteok_ingest_rtmp_deadline_closes_total', 'stage="publish"'), 20, 'the connected ones, waiting for their publish');
  t.ok(
    ingest.proc.lines.some((l) => l.includes('no publish within 2 s of connecting')),
    'each close is logged',
  );
  await ingest.proc.stop();
});

t.test('the per-address cap refuses the connection after the cap; other addresses are unaffected', async (t) => {
  const ingest = await startIngestProcess({ ...baseEnv('per-address'), TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '3', TTEOK_RTMP_HOST: '0.0.0.0' });
  const held = await Promise.all(Array.from({ length: 3 }, () => openRaw(ingest.rtmpPort)));
  for (const c of held) c.send(clientHandshake());

  const refused = publishTestPattern({ url: ingest.rtmpUrl(KEY), seconds: 2, name: 'ffmpeg-over-address-cap' });
  await refused.exited;
  t.match(refused.lines.join('\n'), /Too many connections from your address \(at most 3 at once\)/, 'ffmpeg shows the onStatus description');
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections_refused_total', 'reason="address_full"'), 1, 'counted');
  t.ok(
    ingest.proc.lines.some((l) => l.includes('over a cap') && l.includes('address_full')),
    'logged',
  );

  // Another client address (127.0.0.2 on loopback) has its own allowance.
  const other = await new Promise<RawConnection>((resolve, reject) => {
    import('node:net').then(({ connect }) => {
      const socket = connect({ port: ingest.rtmpPort, host: '127.0.0.1', localAddress: '127.0.0.2' });
      const chunks: Buffer[] = [];
      let isClosed = false;
      const closed = new Promise<void>((r) =>
        socket.once('close', () => {
          isClosed = true;
          r();
        }),
      );
      socket.on('data', (d) => chunks.push(d));
      socket.once('error', reject);
      socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed, isClosed: () => isClosed, send: (d) => socket.write(d) }));
    }, reject);
  });
  other.send(Buffer.concat([clientHandshake(), connectCommand()]));
  await waitFor('the other address to get its connect answered', () => other.received().includes('NetConnection.Connect.Success'));
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections_refused_total', 'reason="address_full"'), 1, 'not refused');

  // Beyond the refusal slots, an over-cap connection is closed at once.
  const overCap = await Promise.all(Array.from({ length: 16 }, () => openRaw(ingest.rtmpPort)));
  const dropped = await openRaw(ingest.rtmpPort);
  await waitFor('a connection beyond the refusal slots to be closed', () => dropped.isClosed(), { timeoutMs: 5000 });
  t.notOk(
    overCap.some((c) => c.isClosed()),
    'the 16 over-cap connections in refusal slots stay until their publish or deadline',
  );
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections_refused_total', 'reason="over_capacity"'), 1, 'counted as over_capacity');

  for (const c of [...held, ...overCap, other]) c.socket.destroy();
  await waitFor('the held connections to be released', async () => metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections') === 0);
  const accepted = publishTestPattern({ url: ingest.rtmpUrl(KEY), seconds: 2, name: 'ffmpeg-after-release' });
  t.equal((await accepted.exited).code, 0, 'with the held connections gone, the same address publishes');
  await ingest.proc.stop();
});

t.test('the per-pod cap refuses the connection after the cap, saying the ingest is full', async (t) => {
  const ingest = await startIngestProcess({ ...baseEnv('per-pod'), TTEOK_RTMP_MAX_CONNECTIONS: '4' });
  const held = await Promise.all(Array.from({ length: 4 }, () => openRaw(ingest.rtmpPort)));
  for (const c of held) c.send(clientHandshake());
  const refused = publishTestPattern({ url: ingest.rtmpUrl(KEY), seconds: 2, name: 'ffmpeg-over-pod-cap' });
  await refused.exited;
  t.match(refused.lines.join('\n'), /This ingest is full \(4 connections\)/, 'ffmpeg shows the onStatus description');
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_connections_refused_total', 'reason="server_full"'), 1, 'counted');
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_publishes_total', 'outcome="server_full"'), 1, 'as a refused publish too');
  await ingest.proc.stop();
});
