// The controller and private streams, on a real kube-apiserver and a real
// S3 server (SeaweedFS): status.playbackUrl of a private stream points under
// _private/ (where a token goes in front), and deleting a LiveStream deletes
// its media under both the public and the private path (its access may have
// changed during its life), and nothing of a neighbour's.
import t from 'tap';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createLogger } from '../../common/log.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { startController } from '../../controller/controller.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { stopAll } from '../../harness/process.ts';
import { startS3Server, TEST_ACCESS_KEY, TEST_SECRET_KEY } from '../../harness/s3-server.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'members';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };

const kube = await startKubeApiServer();
const s3 = await startS3Server('tteok-private-controller');
const { kc, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
process.env.AWS_ACCESS_KEY_ID = TEST_ACCESS_KEY;
process.env.AWS_SECRET_ACCESS_KEY = TEST_SECRET_KEY;
const config = loadControllerConfig({
  TTEOK_POD_NAME: 'controller-test',
  TTEOK_POD_NAMESPACE: SYSTEM,
  TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
  TTEOK_CONTROLLER_HTTP_PORT: '0',
  TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net',
  TTEOK_S3_BUCKET: s3.bucket,
  TTEOK_S3_PREFIX: 'media',
  TTEOK_S3_ENDPOINT: s3.endpoint,
  TTEOK_S3_FORCE_PATH_STYLE: 'true',
  TTEOK_LEADER_ELECTION: 'false',
});
const controller = await startController(config, { kc, log: createLogger('controller-test', 'warn') });
await controller.ready();

t.teardown(async () => {
  await controller.shutdown();
  await stopAll();
  await s3.stop();
  await kube.stop();
});

interface LS {
  status?: { phase?: string; playbackUrl?: string };
}
const createLs = (name: string, spec: Record<string, unknown>) =>
  custom.createNamespacedCustomObject({ ...GROUP, namespace: NS, body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec } });
const getLs = async (name: string): Promise<LS | undefined> =>
  (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name }).catch(() => undefined)) as LS | undefined;
const keysUnder = async (prefix: string): Promise<number> =>
  (await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).KeyCount ?? 0;
// SeaweedFS sometimes answers a first write with a 500 while it grows a volume: retry.
const put = (key: string) =>
  waitFor(`PUT ${key}`, async () => Boolean(await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'x' }))), {
    timeoutMs: 10_000,
    intervalMs: 200,
  });

t.test("status.playbackUrl: a private stream's is under _private/, a public one's unchanged", async (t) => {
  await createLs('secret', { playback: { access: 'private' } });
  await createLs('open', {});
  const [secret, open] = await waitFor(
    'both Ready',
    async () => {
      const both = [await getLs('secret'), await getLs('open')];
      return both.every((l) => l?.status?.phase === 'Ready') ? both : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  t.equal(secret!.status!.playbackUrl, `https://d123.cloudfront.net/media/_private/${NS}/secret/index.m3u8`);
  t.equal(open!.status!.playbackUrl, `https://d123.cloudfront.net/media/${NS}/open/index.m3u8`);
});

t.test("deleting a LiveStream deletes its media under both paths, nothing of a neighbour's", async (t) => {
  for (const root of ['media', 'media/_private']) {
    await put(`${root}/${NS}/secret/index.m3u8`);
    await put(`${root}/${NS}/secret/run1/0-1.m4s`);
    await put(`${root}/${NS}/secret-2/run1/0-1.m4s`);
  }
  t.equal(await keysUnder(`media/_private/${NS}/secret/`), 2);
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'secret' });
  await waitFor('the LiveStream gone', async () => ((await getLs('secret')) === undefined ? true : undefined), { timeoutMs: 20_000, intervalMs: 100 });
  t.equal(await keysUnder(`media/_private/${NS}/secret/`), 0, 'private path emptied');
  t.equal(await keysUnder(`media/${NS}/secret/`), 0, 'public path emptied');
  t.equal(await keysUnder(`media/_private/${NS}/secret-2/`), 1, 'a neighbour keeps its private media');
  t.equal(await keysUnder(`media/${NS}/secret-2/`), 1, 'and its public media');
});
