// The ingest's PUT path into S3 (common/storage/s3-put-client.ts, through
// S3Store) against a real S3-compatible server that checks signatures
// (SeaweedFS): what it stores reads back whole with its headers through the
// AWS SDK, bad credentials and dead or silent endpoints fail the way the
// uploader's retry and metrics expect. (Its connection pool:
// test/common/storage/s3-store-pool.test.ts.)
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { failureReason } from '../../../common/storage/object-store.ts';
import { S3PutClient } from '../../../common/storage/s3-put-client.ts';
import { S3Store } from '../../../common/storage/s3-store.ts';
import { freePort } from '../../../harness/ports.ts';
import { getObject, headObject } from '../../../harness/s3-objects.ts';
import { startS3Server, TEST_ACCESS_KEY, TEST_SECRET_KEY } from '../../../harness/s3-server.ts';

const s3 = await startS3Server('put-client');
process.env.AWS_ACCESS_KEY_ID = TEST_ACCESS_KEY;
process.env.AWS_SECRET_ACCESS_KEY = TEST_SECRET_KEY;
const store = (endpoint: string, extra: { requestTimeoutMs?: number; maxConnections?: number } = {}) =>
  new S3Store({
    bucket: s3.bucket,
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestTimeoutMs: extra.requestTimeoutMs ?? 5000,
    ...(extra.maxConnections ? { maxConnections: extra.maxConnections } : {}),
  });

const servers: Server[] = [];
t.teardown(async () => {
  for (const s of servers) s.close();
  await s3.stop();
});

t.test('a PUT stores the bytes whole, with their content type and cache control', async (tt) => {
  // The server's first write allocates its volume, which can take seconds.
  const s = store(s3.endpoint, { requestTimeoutMs: 60_000 });
  const body = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  await s.put('default/demo/abc/1.m4s', body, { contentType: 'video/iso.segment', cacheControl: 'public, max-age=31536000, immutable' });
  const stored = await getObject(s3.client, s3.bucket, 'default/demo/abc/1.m4s');
  tt.ok(stored && Buffer.compare(stored.body, body) === 0, 'the stored bytes are the bytes put');
  const head = await headObject(s3.client, s3.bucket, 'default/demo/abc/1.m4s');
  tt.equal(head?.contentType, 'video/iso.segment');
  tt.equal(head?.cacheControl, 'public, max-age=31536000, immutable');
  // Keys are encoded per path segment: what reads back is the same key.
  await s.put('odd keys/ü+a=b&c/x y.m3u8', Buffer.from('#EXTM3U\n'), { contentType: 'application/vnd.apple.mpegurl', cacheControl: 'max-age=0' });
  tt.equal(
    (await getObject(s3.client, s3.bucket, 'odd keys/ü+a=b&c/x y.m3u8'))?.body.toString(),
    '#EXTM3U\n',
    'a key with spaces and reserved characters round-trips',
  );
  s.destroy();
});

t.test("a prefix with the characters encodeURIComponent leaves (!'()*), spaces and non-ASCII is signed as S3 checks it", async (tt) => {
  const s = store(s3.endpoint, { requestTimeoutMs: 60_000 });
  // TTEOK_S3_PREFIX is any S3 key prefix; SigV4 signs the path escaped per RFC 3986, which escapes !'()* too.
  for (const prefix of ["a!b'c(d)e*f", 'with space', 'ünïcödé/日本', "mixed (1)/it's*/!"]) {
    const key = `${prefix}/default/demo/run/0.m4s`;
    const body = Buffer.from(`segment under ${prefix}`);
    const error = await s.put(key, body, { contentType: 'video/iso.segment', cacheControl: 'max-age=1' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    tt.equal(error?.message, undefined, `PUT under "${prefix}" is accepted`);
    tt.equal((await getObject(s3.client, s3.bucket, key))?.body.toString(), body.toString(), `"${key}" reads back through the AWS SDK under the same key`);
  }
  s.destroy();
});

t.test('wrong credentials are refused by the server and reported as access denied', async (tt) => {
  const saved = process.env.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
  const s = store(s3.endpoint);
  // The SDK's provider chain reads the environment at the first request.
  const error = await s.put('default/demo/denied.m4s', new Uint8Array(10), { contentType: 'video/iso.segment', cacheControl: 'max-age=1' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  process.env.AWS_SECRET_ACCESS_KEY = saved;
  tt.ok(error, 'the PUT fails');
  tt.equal(failureReason(error), 'access_denied', `counted as access_denied (${(error as Error).message})`);
  tt.match((error as Error).name, /SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/, "the error carries S3's code");
  tt.notOk(await headObject(s3.client, s3.bucket, 'default/demo/denied.m4s'), 'nothing was stored');
  s.destroy();
});

t.test('a dead endpoint and one that never answers fail as network errors, within the request timeout', async (tt) => {
  const dead = store(`http://127.0.0.1:${await freePort()}`);
  const refused = await dead.put('k', new Uint8Array(1), { contentType: 'video/mp4', cacheControl: 'max-age=1' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  tt.equal(failureReason(refused), 'network', 'connection refused is a network failure');
  dead.destroy();

  const silent = createServer(() => undefined); // accepts, never answers
  servers.push(silent);
  const port = await freePort();
  await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
  const slow = store(`http://127.0.0.1:${port}`, { requestTimeoutMs: 300 });
  const started = performance.now();
  const timedOut = await slow.put('k', new Uint8Array(1), { contentType: 'video/mp4', cacheControl: 'max-age=1' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  tt.equal(failureReason(timedOut), 'network', `a silent server is a network failure (${(timedOut as Error)?.name})`);
  tt.ok(performance.now() - started < 5000, 'given up on at the request timeout, not hung');
  slow.destroy();
});

t.test('the URL of a key: path style, virtual-hosted on AWS, path style for a dotted bucket', async (tt) => {
  const credentials = async () => ({ accessKeyId: 'a', secretAccessKey: 'b' });
  const common = { region: 'eu-west-1', requestTimeoutMs: 1000, maxSockets: 1, credentials };
  const aws = new S3PutClient({ ...common, bucket: 'media', forcePathStyle: false });
  tt.equal(aws.urlOf('live/default/demo/index.m3u8').href, 'https://media.s3.eu-west-1.amazonaws.com/live/default/demo/index.m3u8');
  const dotted = new S3PutClient({ ...common, bucket: 'media.example.com', forcePathStyle: false });
  tt.equal(dotted.urlOf('a/b.m4s').href, 'https://s3.eu-west-1.amazonaws.com/media.example.com/a/b.m4s');
  const compatible = new S3PutClient({ ...common, bucket: 'media', endpoint: 'http://seaweed:8333', forcePathStyle: true });
  tt.equal(compatible.urlOf('a/b c.m4s').href, 'http://seaweed:8333/media/a/b%20c.m4s');
  // RFC 3986: everything but A-Z a-z 0-9 - . _ ~ is escaped, as SigV4 signs it (encodeURIComponent leaves !'()*).
  tt.equal(aws.urlOf("a!b'c(d)e*f/ü~x-y_z.m4s").pathname, '/a%21b%27c%28d%29e%2Af/%C3%BC~x-y_z.m4s');
  for (const c of [aws, dotted, compatible]) c.destroy();
});
