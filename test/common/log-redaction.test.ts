// Log redaction: stream keys are secrets and never reach a log line, but the
// redaction must hide only them. It used to redact every field named `key`,
// which is also what the uploader calls the object key, so an upload failure
// never said which object failed. Checked on the logger itself (every field
// name a stream key could travel under), then on the real ingest process:
// ffmpeg publishes while the S3 endpoint refuses connections, and the upload
// failure it logs names the object and never the stream key.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger } from '../../common/log.ts';
import { startIngestProcess, writeKeyFile } from '../../harness/ingest-process.ts';
import { freePort } from '../../harness/ports.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { waitFor } from '../../harness/wait.ts';

const STREAM_KEY = 'redaction_key_AAAAAAAAAAAAAAAAAAAA1';

t.teardown(() => stopAll());

/** A logger writing its JSON lines into an array. */
function capturedLogger(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('redaction-test', 'debug', sink), lines };
}

t.test('the logger shows object keys and hides stream keys', async (tt) => {
  const { log, lines } = capturedLogger();
  const objectKey = 'tteok/default/demo/mabc123-0000aaaa/7.m4s';
  log.warn({ stream: 'default/demo', key: objectKey }, 'upload failed; retrying');
  log.info({ objects: { key: objectKey } }, 'nested object key');
  log.info({ streamKey: STREAM_KEY }, 'field streamKey');
  log.info({ publish: { streamKey: STREAM_KEY } }, 'nested streamKey');
  log.info({ data: { streamKey: STREAM_KEY } }, "a Secret's data");
  log.info({ streamPath: `/live/${STREAM_KEY}` }, 'node-media-server stream path');
  log.info({ session: { streamPath: `/live/${STREAM_KEY}`, streamName: STREAM_KEY } }, 'node-media-server session fields');
  log.info({ streamName: STREAM_KEY }, 'RTMP publish name');
  log.info({ stream_key: STREAM_KEY }, 'snake case');
  tt.equal(lines.length, 9);
  tt.equal(lines[0]!.key, objectKey, 'the object key is in the upload failure line');
  tt.same(lines[1]!.objects, { key: objectKey }, 'also nested');
  const text = JSON.stringify(lines);
  tt.notOk(text.includes(STREAM_KEY), 'the stream key is in no line');
  tt.equal(lines[2]!.streamKey, '[redacted]', 'redacted, not dropped: the line says a key was there');
});

t.test('the ingest names the object when an upload fails, never the stream key', async (tt) => {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-redaction-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'demo', key: STREAM_KEY }]);
  const refusing = await freePort(); // nothing listens: every PUT fails with ECONNREFUSED
  const ingest = await startIngestProcess({
    TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
    TTEOK_MEDIA_DIR: join(dir, 'media'),
    TTEOK_STORAGE: 's3',
    TTEOK_S3_BUCKET: 'tteok-test',
    TTEOK_S3_ENDPOINT: `http://127.0.0.1:${refusing}`,
    TTEOK_S3_REGION: 'us-east-1',
    TTEOK_S3_FORCE_PATH_STYLE: 'true',
    TTEOK_S3_PREFIX: 'media',
    AWS_ACCESS_KEY_ID: 'redaction-test',
    AWS_SECRET_ACCESS_KEY: 'redaction-test-secret',
    TTEOK_SHUTDOWN_TIMEOUT_SECONDS: '2',
  });
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(STREAM_KEY), seconds: 20 });
  tt.teardown(() => publisher.stop('SIGKILL'));
  const parsed = () =>
    ingest.proc.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  const failure = await waitFor(
    'an upload failure in the ingest log',
    () => parsed().find((l) => (l.level === 'warn' || l.level === 'error') && /upload/i.test(String(l.msg)) && /fail/i.test(String(l.msg))),
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const line = JSON.stringify(failure);
  tt.match(line, /"media\/default\/demo\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\.(m4s|mp4)"/, `the failure names the object: ${line}`);
  tt.notMatch(line, /\[redacted\]/, 'nothing in it is redacted');
  await publisher.stop('SIGINT', 10_000);
  await ingest.proc.stop('SIGTERM', 30_000);
  tt.notOk(
    ingest.proc.lines.some((l) => l.includes(STREAM_KEY)),
    `the stream key is in none of the ingest's ${ingest.proc.lines.length} log lines`,
  );
});
