// S3Store talks to a real S3-compatible server (SeaweedFS) over a bounded
// pool of keep-alive connections: consecutive PUTs reuse one connection, and
// a burst of PUTs never opens more connections than the pool allows. A
// recording proxy in front of SeaweedFS counts the TCP connections it accepts.
import t from 'tap';
import { S3Store } from '../../../common/storage/s3-store.ts';
import { getObject } from '../../../harness/s3-objects.ts';
import { startS3Recorder } from '../../../harness/s3-recorder.ts';
import { startS3Server, TEST_ACCESS_KEY, TEST_SECRET_KEY } from '../../../harness/s3-server.ts';

const s3 = await startS3Server();
const recorder = await startS3Recorder(s3.endpoint, s3.bucket);
process.env.AWS_ACCESS_KEY_ID = TEST_ACCESS_KEY;
process.env.AWS_SECRET_ACCESS_KEY = TEST_SECRET_KEY;
t.teardown(async () => {
  await recorder.close();
  await s3.stop();
});

const POOL = 3;
const store = new S3Store({
  bucket: s3.bucket,
  region: 'us-east-1',
  endpoint: recorder.endpoint,
  forcePathStyle: true,
  requestTimeoutMs: 10_000,
  maxConnections: POOL,
});
t.teardown(() => store.destroy());
const segment = new Uint8Array(64 * 1024).fill(7);
const put = (key: string) => store.put(key, segment, { contentType: 'video/mp4', cacheControl: 'max-age=60' });

t.test('consecutive PUTs reuse one connection', async (t) => {
  const before = recorder.connectionsAccepted();
  for (let i = 0; i < 10; i++) await put(`pool/sequential/${i}.m4s`);
  t.equal(recorder.puts((key) => key.startsWith('pool/sequential/')).length, 10, 'every PUT was stored');
  t.equal(recorder.connectionsAccepted() - before, 1, 'ten PUTs, one after the other, over one connection');
  const stored = await getObject(s3.client, s3.bucket, 'pool/sequential/9.m4s');
  t.equal(stored?.body.length, segment.length, 'the last object reads back whole');
});

t.test('a burst of PUTs stays within the pool', async (t) => {
  const before = recorder.connectionsAccepted();
  await Promise.all(Array.from({ length: 24 }, (_, i) => put(`pool/burst/${i}.m4s`)));
  t.equal(recorder.puts((key) => key.startsWith('pool/burst/')).length, 24, 'every PUT was stored');
  const opened = recorder.connectionsAccepted() - before;
  t.ok(opened <= POOL, `24 PUTs at once opened ${opened} connections (pool of ${POOL}, some already open)`);
});

t.test('a pool size that is not a positive integer is refused', async (t) => {
  t.throws(() => new S3Store({ bucket: 'b', region: 'us-east-1', forcePathStyle: true, requestTimeoutMs: 1000, maxConnections: 0 }), /maxConnections/);
});
