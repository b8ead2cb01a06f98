// RTMPS on the real ingest process, with certificates made by openssl in the
// test: Debian's ffmpeg publishes over rtmps:// and the stream is stored;
// ffmpeg speaking plain RTMP to the TLS port is answered in RTMP with a
// sentence telling it to use rtmps://, at its connect, before it sends its
// key (nothing is published; the ingest carries on); other bytes are closed, logged and counted; replacing the
// certificate files is picked up without a restart.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { metricValue, startIngestProcess, writeKeyFile } from '../../../harness/ingest-process.ts';
import { freePort } from '../../../harness/ports.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

const KEY = 'rtmps_key_aaaaaaaaaaaaaaaaa1';
const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmps-'));
const keysFile = join(dir, 'keys.yaml');
const originDir = join(dir, 'origin');
writeKeyFile(keysFile, [{ name: 'secure', key: KEY, spec: { retention: { keepAfterEnd: true } } }]);

function makeCertificate(name: string, commonName: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

const first = makeCertificate('first', 'tteok-test-first');
const second = makeCertificate('second', 'tteok-test-second');
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
copyFileSync(first.cert, certFile);
copyFileSync(first.key, keyFile);

const rtmpsPort = await freePort();
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: originDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_RTMPS_PORT: String(rtmpsPort),
  TTEOK_RTMPS_CERT_FILE: certFile,
  TTEOK_RTMPS_KEY_FILE: keyFile,
  TTEOK_RTMPS_RELOAD_SECONDS: '1',
});

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The certificate the RTMPS port presents now. */
function presentedCertificate(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: rtmpsPort, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerX509Certificate()?.subject ?? '';
      socket.destroy();
      resolve(raw);
    });
    socket.once('error', reject);
  });
}

const alive = () => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;

t.test('ffmpeg publishes over rtmps:// and the stream is stored', async (t) => {
  const publisher = publishTestPattern({ url: `rtmps://127.0.0.1:${rtmpsPort}/live/${KEY}`, seconds: 3, name: 'ffmpeg-rtmps' });
  const exit = await publisher.exited;
  t.equal(exit.code, 0, `ffmpeg published over TLS: ${publisher.lines.slice(-3).join(' | ')}`);
  const playlist = join(originDir, 'default', 'secure', 'index.m3u8');
  const text = await waitFor(
    'the final playlist to be stored',
    () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST') && readFileSync(playlist, 'utf8'),
  );
  t.match(text, /\.m4s/, 'its playlist lists segments');
  t.match(await presentedCertificate(), /CN=tteok-test-first/, 'the port presents the configured certificate');
  t.ok(
    ingest.proc.lines.some((l) => l.includes('"rtmpsPort"')),
    'the ready line names the RTMPS port',
  );
  const notAfter = metricValue(await ingest.metrics(), 'tteok_ingest_rtmps_certificate_expiry_timestamp_seconds');
  t.equal(notAfter, Date.parse(new X509Certificate(readFileSync(first.cert)).validTo) / 1000, 'the certificate expiry is a metric');
});

t.test('plain RTMP on the RTMPS port is answered in RTMP with a sentence saying to use rtmps://, before the key is sent', async (t) => {
  const sentence = 'This port takes RTMPS only: change the server URL from rtmp:// to rtmps:// (same host, port and path).';
  // ffmpeg reaches the RTMPS port through a relay that keeps what it sends, to see whether the key crossed in clear text.
  const sent: Buffer[] = [];
  let sentBytes = 0;
  const relay = createNetServer((client) => {
    const upstream = netConnect({ host: '127.0.0.1', port: rtmpsPort });
    client.on('data', (data: Buffer) => {
      if (sentBytes < 1024 * 1024) sent.push(data);
      sentBytes += data.length;
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => client.write(data));
    // end(), not destroy(): what the ingest wrote last (its refusal) must still reach ffmpeg.
    upstream.on('close', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('error', () => undefined);
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void relay.close());
  const relayPort = (relay.address() as { port: number }).port;

  const plain = publishTestPattern({ url: `rtmp://127.0.0.1:${relayPort}/live/${KEY}`, seconds: 2, name: 'ffmpeg-plain-on-tls' });
  const exit = await plain.exited;
  t.not(exit.code, 0, 'ffmpeg fails to publish');
  t.ok(
    plain.lines.some((l) => l.includes(`Server error: ${sentence}`)),
    `ffmpeg prints the sentence: ${plain.lines.slice(-3).join(' | ')}`,
  );
  t.ok(Buffer.concat(sent).includes('connect'), 'ffmpeg got as far as its connect command');
  t.notOk(Buffer.concat(sent).includes(KEY), 'the stream key never crossed the network in clear text');
  await waitFor('the refusal to be logged', () => ingest.proc.lines.some((l) => l.includes(sentence)));
  t.ok(
    ingest.proc.lines.some((l) => l.includes('plain RTMP to the RTMPS port')),
    'the ingest logs that the client spoke plain RTMP to the RTMPS port',
  );
  const metrics = await ingest.metrics();
  t.equal(metricValue(metrics, 'tteok_ingest_publishes_total', 'outcome="rtmps_required"'), 1, 'counted as a refused publish');
  t.equal(metricValue(metrics, 'tteok_ingest_publishes_total', 'outcome="accepted"'), 1, 'nothing was published');
  t.ok(alive(), 'the ingest carries on');
});

t.test('bytes that are neither TLS nor RTMP on the RTMPS port close the connection, logged and counted', async (t) => {
  const before = metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_protocol_errors_total', 'reason="tls"');
  for (const payload of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8])]) {
    const socket = netConnect({ host: '127.0.0.1', port: rtmpsPort });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.once('connect', () => socket.write(payload));
    await closed;
  }
  await waitFor('both to be counted', async () => metricValue(await ingest.metrics(), 'tteok_ingest_rtmp_protocol_errors_total', 'reason="tls"') >= before + 2);
  t.ok(
    ingest.proc.lines.some((l) => l.includes('neither TLS nor RTMP')),
    'the HTTP request is logged',
  );
  t.ok(
    ingest.proc.lines.some((l) => l.includes('TLS handshake failed')),
    'the broken TLS record is logged',
  );
  t.ok(alive(), 'the ingest carries on');
});

t.test('a replaced certificate is picked up without a restart', async (t) => {
  copyFileSync(second.key, keyFile);
  copyFileSync(second.cert, certFile);
  await waitFor('the new certificate to be presented', async () => /CN=tteok-test-second/.test(await presentedCertificate()), { timeoutMs: 15_000 });
  t.ok(
    ingest.proc.lines.some((l) => l.includes('RTMPS: certificate reloaded')),
    'the reload is logged',
  );
  const publisher = publishTestPattern({ url: `rtmps://127.0.0.1:${rtmpsPort}/live/${KEY}`, seconds: 2, name: 'ffmpeg-rtmps-after-reload' });
  t.equal((await publisher.exited).code, 0, 'ffmpeg publishes over the new certificate');
  t.equal(ingest.proc.child.exitCode, null, 'the same process throughout');
});
