// The LiveStream controller, in process, against a real kube-apiserver (and a
// real S3-compatible server for the finalizer's media cleanup): the CRD's
// validation, key Secrets, status, Events, live state from claim Leases,
// capacity through the StatefulSet scale subresource, and deletion.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createLogger } from '../../common/log.ts';
import { rawJson } from '../../common/kube/client.ts';
import { LeaseClient, microTime } from '../../common/kube/lease.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { startController, type RunningController } from '../../controller/controller.ts';
import { STREAM_KEY_PATTERN } from '../../common/keys/key-source.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import { startS3Server, TEST_ACCESS_KEY, TEST_SECRET_KEY } from '../../harness/s3-server.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };

const kube = await startKubeApiServer();
const s3 = await startS3Server('tteok-controller-test');
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
await rawJson(kc, `/apis/apps/v1/namespaces/${SYSTEM}/statefulsets`, {
  method: 'POST',
  body: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'ingest' },
    spec: {
      replicas: 1,
      serviceName: 'ingest',
      selector: { matchLabels: { app: 'ingest' } },
      template: { metadata: { labels: { app: 'ingest' } }, spec: { containers: [{ name: 'ingest', image: 'tteok:test' }] } },
    },
  },
});

process.env.AWS_ACCESS_KEY_ID = TEST_ACCESS_KEY;
process.env.AWS_SECRET_ACCESS_KEY = TEST_SECRET_KEY;
const config = loadControllerConfig({
  TTEOK_POD_NAME: 'controller-test',
  TTEOK_POD_NAMESPACE: SYSTEM,
  TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
  TTEOK_CONTROLLER_HTTP_PORT: '0',
  TTEOK_INGEST_STATEFULSET: 'ingest',
  TTEOK_STREAMS_PER_INGEST: '2',
  TTEOK_INGEST_MIN_REPLICAS: '1',
  TTEOK_INGEST_MAX_REPLICAS: '4',
  TTEOK_SCALE_DOWN_DELAY_SECONDS: '0',
  TTEOK_INGEST_PUBLIC_URL: 'rtmp://live.example.com:1935/live',
  TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net',
  TTEOK_S3_BUCKET: s3.bucket,
  TTEOK_S3_PREFIX: 'media',
  TTEOK_S3_ENDPOINT: s3.endpoint,
  TTEOK_S3_FORCE_PATH_STYLE: 'true',
  TTEOK_LEADER_LEASE_SECONDS: '4',
  TTEOK_LEADER_RENEW_DEADLINE_SECONDS: '3',
  TTEOK_LEADER_RETRY_SECONDS: '0.5',
  TTEOK_KUBE_RELIST_IDLE_SECONDS: '60',
});
const log = createLogger('controller-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'warn');
const controller: RunningController = await startController(config, { kc, log });
await controller.ready();
await waitFor('the controller to lead', () => controller.isLeader, { timeoutMs: 10_000, intervalMs: 50 });
// For its first seconds a newly established CRD's watch events reach watchers
// ~2 s late (the API server's watch cache for it is still initializing); a
// first LiveStream, reconciled end to end, gets past that before the timings.
await custom.createNamespacedCustomObject({
  ...GROUP,
  namespace: SYSTEM,
  body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'warm-up' }, spec: { enabled: false } },
});
await waitFor(
  'the warm-up LiveStream reconciled',
  async () => ((await custom.getNamespacedCustomObject({ ...GROUP, namespace: SYSTEM, name: 'warm-up' })) as LS).status?.phase === 'Disabled',
  { timeoutMs: 15_000, intervalMs: 50 },
);

t.teardown(async () => {
  await controller.shutdown();
  await stopAll();
  await s3.stop();
  await kube.stop();
});

interface LS {
  metadata: { name: string; uid: string; generation: number; finalizers?: string[]; deletionTimestamp?: string };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    observedGeneration?: number;
    streamKeySecret?: string;
    streamKeySha256?: string;
    ingestUrl?: string;
    playbackUrl?: string;
    liveSince?: string;
    ingestPod?: string;
    conditions?: Array<{ type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }>;
  };
}

async function createLs(name: string, spec: Record<string, unknown> = {}, namespace = NS): Promise<LS> {
  return (await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec },
  })) as LS;
}
async function getLs(name: string, namespace = NS): Promise<LS | undefined> {
  try {
    return (await custom.getNamespacedCustomObject({ ...GROUP, namespace, name })) as LS;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined;
    throw err;
  }
}
async function patchSpec(name: string, spec: Record<string, unknown>): Promise<void> {
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/${name}`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec },
  });
}
async function secretOf(
  name: string,
): Promise<{ key: string; labels: Record<string, string>; annotations: Record<string, string>; owners: Array<{ uid: string; kind: string }> } | undefined> {
  try {
    const s = await core.readNamespacedSecret({ namespace: NS, name: `${name}-stream-key` });
    return {
      key: Buffer.from(s.data?.streamKey ?? '', 'base64').toString(),
      labels: s.metadata?.labels ?? {},
      annotations: s.metadata?.annotations ?? {},
      owners: (s.metadata?.ownerReferences ?? []).map((o) => ({ uid: o.uid, kind: o.kind })),
    };
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined;
    throw err;
  }
}
async function eventsOf(name: string): Promise<Array<{ reason: string; message: string; type: string; count: number }>> {
  const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '', count: e.count ?? 0 }));
}
const sha256 = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');
const cond = (ls: LS | undefined, type: string) => ls?.status?.conditions?.find((c) => c.type === type);
const leases = new LeaseClient(kc);
async function claim(name: string, holder: string, seconds: number): Promise<void> {
  const now = microTime();
  await leases.create(SYSTEM, {
    metadata: { name: `claim.${NS}.${name}`, labels: { 'tteok.dev/claim': 'true', 'tteok.dev/livestream-namespace': NS, 'tteok.dev/livestream': name } },
    spec: { holderIdentity: holder, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now },
  });
}
async function replicas(): Promise<number> {
  const scale = await rawJson<{ spec: { replicas: number } }>(kc, `/apis/apps/v1/namespaces/${SYSTEM}/statefulsets/ingest/scale`);
  return scale.spec.replicas;
}

t.test('a LiveStream gets its key Secret and status Ready within 2 s', async (t) => {
  const started = Date.now();
  const created = await createLs('first', { title: 'First stream', hls: { segmentSeconds: 2 } });
  const ls = await waitFor(
    'status Ready',
    async () => {
      const ls = await getLs('first');
      return ls?.status?.phase === 'Ready' && (await secretOf('first')) ? ls : undefined;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.ok(Date.now() - started < 2000, `Ready after ${Date.now() - started} ms`);

  const secret = (await secretOf('first'))!;
  t.match(secret.key, STREAM_KEY_PATTERN, 'the key is URL-safe and matches STREAM_KEY_PATTERN');
  t.ok(Buffer.from(secret.key, 'base64url').length * 8 >= 128, 'at least 128 random bits');
  t.equal(secret.labels['tteok.dev/stream-key'], 'true');
  t.equal(secret.labels['tteok.dev/livestream'], 'first');
  t.same(secret.owners, [{ uid: created.metadata.uid, kind: 'LiveStream' }], 'owned by the LiveStream');
  t.equal(ls.status?.streamKeySha256, sha256(secret.key), 'the status carries the SHA-256 of the key, for the ingest to verify keys against');

  t.same(ls.metadata.finalizers, ['tteok.dev/cleanup']);
  t.equal(ls.status?.streamKeySecret, 'first-stream-key');
  t.equal(ls.status?.ingestUrl, 'rtmp://live.example.com:1935/live');
  t.equal(ls.status?.playbackUrl, 'https://d123.cloudfront.net/media/streams/first/index.m3u8');
  t.equal(ls.status?.observedGeneration, ls.metadata.generation);
  t.match(cond(ls, 'Ready'), { status: 'True', reason: 'KeyAllocated', observedGeneration: ls.metadata.generation });
  t.match(cond(ls, 'Live'), { status: 'False', reason: 'NoPublisher' });
  t.notOk(JSON.stringify(ls.status).includes(secret.key), 'the key is not in the status');

  const events = await waitFor(
    'the KeyAllocated event',
    async () => {
      const ev = await eventsOf('first');
      return ev.some((e) => e.reason === 'KeyAllocated') ? ev : undefined;
    },
    { timeoutMs: 3000 },
  );
  t.notOk(JSON.stringify(events).includes(secret.key), 'the key is in no event');
});

t.test('invalid LiveStreams are refused by the API server with the CRD message', async (t) => {
  const cases: Array<[string, string, Record<string, unknown>, RegExp]> = [
    ['segment too long', 'bad-seg', { hls: { segmentSeconds: 11 } }, /spec\.hls\.segmentSeconds.*less than or equal to 10/],
    ['segment zero', 'bad-seg0', { hls: { segmentSeconds: 0 } }, /spec\.hls\.segmentSeconds.*greater than or equal to 1/],
    ['short playlist', 'bad-len', { hls: { playlistLength: 2 } }, /spec\.hls\.playlistLength.*greater than or equal to 3/],
    ['enabled not a boolean', 'bad-enabled', { enabled: 'yes' }, /spec\.enabled.*boolean/],
    ['title with a newline', 'bad-title', { title: 'two\nlines' }, /spec\.title must be a single line/],
    ['negative keyRotation', 'bad-rot', { keyRotation: -1 }, /spec\.keyRotation.*greater than or equal to 0/],
  ];
  for (const [what, name, spec, message] of cases) {
    const err = await createLs(name, spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ApiException && err.code === 422, `${what}: refused with 422`);
    t.match(String((err as ApiException<string>)?.body), message, `${what}: the message says what is wrong`);
  }
  const long = 'x'.repeat(64);
  const err = await createLs(long).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ApiException && err.code === 422, 'a 64-character name is refused');
  t.match(String((err as ApiException<string>)?.body), /metadata\.name must be at most 63 characters/);
  t.notOk(await getLs('bad-seg'), 'nothing was stored');
});

t.test('spec changes: settings follow, disable, key rotation', async (t) => {
  await createLs('second', { title: 'Second' });
  const first = await waitFor('second Ready', async () => ((await getLs('second'))?.status?.phase === 'Ready' ? secretOf('second') : undefined), {
    timeoutMs: 3000,
    intervalMs: 20,
  });

  const firstHash = (await getLs('second'))?.status?.streamKeySha256;
  t.equal(firstHash, sha256(first.key));
  await patchSpec('second', { title: 'Renamed', hls: { playlistLength: 10 }, retention: { keepAfterEnd: true } });
  await waitFor(
    'the settings change reconciled',
    async () => {
      const ls = await getLs('second');
      return ls?.status?.observedGeneration === ls?.metadata.generation;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.equal((await secretOf('second'))?.key, first.key, 'a settings change keeps the key');
  t.equal((await getLs('second'))?.status?.streamKeySha256, firstHash, 'and its hash');

  await patchSpec('second', { enabled: false });
  const disabled = await waitFor(
    'phase Disabled',
    async () => {
      const ls = await getLs('second');
      return ls?.status?.phase === 'Disabled' && ls.status.observedGeneration === ls.metadata.generation ? ls : undefined;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.match(cond(disabled, 'Ready'), { status: 'False', reason: 'Disabled' });
  await patchSpec('second', { enabled: true });
  await waitFor('Ready again', async () => (await getLs('second'))?.status?.phase === 'Ready', { timeoutMs: 2000, intervalMs: 20 });

  await patchSpec('second', { keyRotation: 1 });
  const rotated = await waitFor(
    'a new key',
    async () => {
      const s = await secretOf('second');
      return s && s.key !== first.key && s.annotations['tteok.dev/key-rotation'] === '1' ? s : undefined;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.match(rotated.key, STREAM_KEY_PATTERN);
  await waitFor("the new key's hash in the status", async () => (await getLs('second'))?.status?.streamKeySha256 === sha256(rotated.key), {
    timeoutMs: 2000,
    intervalMs: 20,
  });
  await waitFor('the KeyRotated event', async () => (await eventsOf('second')).some((e) => e.reason === 'KeyRotated'), { timeoutMs: 3000 });
  await sleep(300);
  t.equal((await secretOf('second'))?.key, rotated.key, 'rotated exactly once');
  const secrets = await core.listNamespacedSecret({ namespace: NS, labelSelector: 'tteok.dev/livestream=second' });
  t.equal(secrets.items.length, 1, 'one Secret per LiveStream');

  // A key written into the Secret by hand: the published hash follows it.
  const handMade = 'hand-made-key-' + 'x'.repeat(24);
  await rawJson(kc, `/api/v1/namespaces/${NS}/secrets/second-stream-key`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { data: { streamKey: Buffer.from(handMade).toString('base64') } },
  });
  await waitFor("the hand-made key's hash in the status", async () => (await getLs('second'))?.status?.streamKeySha256 === sha256(handMade), {
    timeoutMs: 2000,
    intervalMs: 20,
  });
  t.equal((await secretOf('second'))?.key, handMade, 'the controller keeps a well-formed key it finds');
});

t.test('live state comes from claim Leases; expiry ends it', async (t) => {
  await createLs('third');
  await waitFor('third Ready', async () => (await getLs('third'))?.status?.phase === 'Ready', { timeoutMs: 3000, intervalMs: 20 });
  await claim('third', 'ingest-0', 2);
  const live = await waitFor(
    'phase Live',
    async () => {
      const ls = await getLs('third');
      return ls?.status?.phase === 'Live' ? ls : undefined;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.equal(live.status?.ingestPod, 'ingest-0');
  t.ok(live.status?.liveSince && Math.abs(Date.parse(live.status.liveSince) - Date.now()) < 5000, 'liveSince is the claim acquire time');
  t.match(cond(live, 'Live'), { status: 'True', reason: 'Publishing' });
  // Nobody renews it: like a pod that died.
  const ended = await waitFor(
    'Ready after the claim expired',
    async () => {
      const ls = await getLs('third');
      return ls?.status?.phase === 'Ready' ? ls : undefined;
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
  t.notOk(ended.status?.ingestPod, 'no ingest pod when not live');
  t.notOk(ended.status?.liveSince, 'no liveSince when not live');
  const events = await waitFor(
    'Live and Ended events',
    async () => {
      const ev = await eventsOf('third');
      return ev.some((e) => e.reason === 'Live') && ev.some((e) => e.reason === 'Ended') ? ev : undefined;
    },
    { timeoutMs: 3000 },
  );
  t.ok(events.find((e) => e.reason === 'Live')?.message.includes('ingest-0'));
  await leases.delete(SYSTEM, 'claim.streams.third');
});

t.test('capacity follows demand and never removes a pod holding a live stream', async (t) => {
  // first, second, third exist: 3 enabled streams at 2 per pod → 2 pods.
  await waitFor('2 replicas', async () => (await replicas()) === 2, { timeoutMs: 3000, intervalMs: 50 });
  for (const n of ['cap-a', 'cap-b', 'cap-c', 'cap-d']) await createLs(n);
  await waitFor('4 replicas (7 streams, capped at max 4)', async () => (await replicas()) === 4, { timeoutMs: 3000, intervalMs: 50 });
  await claim('cap-d', 'ingest-3', 3);
  for (const n of ['cap-a', 'cap-b', 'cap-c']) await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: n });
  await patchSpec('cap-d', { enabled: true });
  await sleep(1000);
  t.equal(await replicas(), 4, 'ingest-3 holds a live stream: not scaled away');
  await waitFor('scaled down once the claim expired', async () => (await replicas()) === 2, { timeoutMs: 6000, intervalMs: 100 });
  await leases.delete(SYSTEM, 'claim.streams.cap-d');
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'cap-d' });
});

t.test('delete: the key is revoked, media deleted unless retained, then the finalizer removed', async (t) => {
  await createLs('gone');
  await createLs('kept', { retention: { keepAfterEnd: true } });
  await waitFor('both Ready', async () => (await getLs('gone'))?.status?.phase === 'Ready' && (await getLs('kept'))?.status?.phase === 'Ready', {
    timeoutMs: 3000,
    intervalMs: 20,
  });
  // SeaweedFS sometimes answers a first write with a 500 while it grows a volume: retry.
  const put = (key: string) =>
    waitFor(`PUT ${key}`, async () => Boolean(await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'x' }))), {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
  for (const name of ['gone', 'kept', 'gone-other']) {
    await put(`media/${NS}/${name}/index.m3u8`);
    await put(`media/${NS}/${name}/run1/0-1.m4s`);
  }
  // A live publish holds the deletion until it ends.
  await claim('gone', 'ingest-0', 30);
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'gone' });
  await waitFor('the key Secret deleted', async () => (await secretOf('gone')) === undefined, { timeoutMs: 10_000, intervalMs: 20 });
  await sleep(500);
  t.ok(await getLs('gone'), 'the LiveStream waits for the live publish to end');
  t.equal(await keysUnder(`media/${NS}/gone/`), 2, 'media kept while live');
  await leases.delete(SYSTEM, `claim.${NS}.gone`); // the ingest ended the publish and released its claim
  await waitFor('the LiveStream gone', async () => (await getLs('gone')) === undefined, { timeoutMs: 10_000, intervalMs: 50 });
  t.equal(await keysUnder(`media/${NS}/gone/`), 0, 'its media deleted');
  t.equal(await keysUnder(`media/${NS}/gone-other/`), 2, 'a stream whose name starts the same keeps its media');

  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'kept' });
  await waitFor('kept gone', async () => (await getLs('kept')) === undefined, { timeoutMs: 10_000, intervalMs: 50 });
  t.equal(await keysUnder(`media/${NS}/kept/`), 2, 'retention keeps the media');
  t.equal(await secretOf('kept'), undefined, 'the key Secret is deleted');
  const body = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `media/${NS}/kept/index.m3u8` }));
  t.ok(body.Body, 'still readable');
});

t.test('a problem the user must fix shows as phase Error with a Warning event', async (t) => {
  // Somebody else's Secret already has the name the key Secret needs.
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'taken-stream-key' }, data: { other: 'eA==' } } });
  await createLs('taken');
  const ls = await waitFor(
    'phase Error',
    async () => {
      const ls = await getLs('taken');
      return ls?.status?.phase === 'Error' ? ls : undefined;
    },
    { timeoutMs: 3000, intervalMs: 20 },
  );
  t.match(cond(ls, 'Ready'), { status: 'False', reason: 'SecretConflict', message: /taken-stream-key already exists/ });
  t.notOk(ls.status?.streamKeySha256, 'no key hash published: nothing can publish to it');
  const secret = await core.readNamespacedSecret({ namespace: NS, name: 'taken-stream-key' });
  t.same(secret.data, { other: 'eA==' }, 'the foreign Secret is left alone');
  await waitFor('a Warning event', async () => (await eventsOf('taken')).some((e) => e.type === 'Warning' && e.reason === 'SecretConflict'), {
    timeoutMs: 3000,
  });
  // Fixed by the user: the next reconcile (here triggered by a spec change) recovers.
  await core.deleteNamespacedSecret({ namespace: NS, name: 'taken-stream-key' });
  await patchSpec('taken', { title: 'now it works' });
  await waitFor('Ready once fixed', async () => (await getLs('taken'))?.status?.phase === 'Ready', { timeoutMs: 3000, intervalMs: 20 });
});

t.test('a Secret the LiveStream does not own is never updated or deleted, even when the LiveStream is deleted', async (t) => {
  // Two kinds of foreign Secret in the key Secret's place: an unrelated one,
  // and one that looks like a tteok key Secret (its labels copied, a key in
  // it) but is owned by no LiveStream of that uid.
  const foreign = {
    plain: { metadata: { name: 'plain-stream-key', labels: { app: 'billing' } }, data: { password: Buffer.from('hunter2-hunter2').toString('base64') } },
    lookalike: {
      metadata: {
        name: 'lookalike-stream-key',
        labels: { 'tteok.dev/stream-key': 'true', 'tteok.dev/livestream': 'lookalike' },
        annotations: { 'tteok.dev/key-rotation': '0' },
      },
      data: { streamKey: Buffer.from('someone-elses-key-0123456789abcdef').toString('base64') },
    },
  };
  const before = new Map<string, { resourceVersion: string; uid: string; data: unknown; labels: unknown; annotations: unknown; owners: unknown }>();
  const snapshot = async (name: string) => {
    const s = await core.readNamespacedSecret({ namespace: NS, name: `${name}-stream-key` });
    return {
      resourceVersion: s.metadata!.resourceVersion!,
      uid: s.metadata!.uid!,
      data: s.data,
      labels: s.metadata?.labels,
      annotations: s.metadata?.annotations,
      owners: s.metadata?.ownerReferences,
    };
  };
  for (const [name, body] of Object.entries(foreign)) {
    await core.createNamespacedSecret({ namespace: NS, body });
    before.set(name, await snapshot(name));
    await createLs(name);
  }
  for (const name of Object.keys(foreign)) {
    const ls = await waitFor(
      `${name}: phase Error`,
      async () => {
        const ls = await getLs(name);
        return ls?.status?.phase === 'Error' ? ls : undefined;
      },
      { timeoutMs: 3000, intervalMs: 20 },
    );
    t.match(
      cond(ls, 'Ready'),
      { status: 'False', reason: 'SecretConflict', message: new RegExp(`${name}-stream-key`) },
      `${name}: the condition names the Secret`,
    );
    t.notOk(ls.status?.streamKeySha256, `${name}: no key hash published`);
    await waitFor(`${name}: a Warning event`, async () => (await eventsOf(name)).some((e) => e.type === 'Warning' && e.reason === 'SecretConflict'), {
      timeoutMs: 3000,
    });
    // More reconciles (a spec change) still leave it alone.
    await patchSpec(name, { title: 'again' });
  }
  await waitFor(
    'the spec changes reconciled',
    async () => {
      for (const name of Object.keys(foreign)) if ((await getLs(name))?.status?.observedGeneration !== 2) return false;
      return true;
    },
    { timeoutMs: 3000, intervalMs: 20 },
  );
  for (const name of Object.keys(foreign)) t.same(await snapshot(name), before.get(name), `${name}: the foreign Secret is unchanged after reconciles`);

  for (const name of Object.keys(foreign)) await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name });
  for (const name of Object.keys(foreign)) {
    await waitFor(`${name}: the LiveStream deleted`, async () => (await getLs(name)) === undefined, { timeoutMs: 5000, intervalMs: 50 });
    t.same(await snapshot(name), before.get(name), `${name}: the foreign Secret is unchanged after the LiveStream was deleted`);
    await core.deleteNamespacedSecret({ namespace: NS, name: `${name}-stream-key` });
  }
});

t.test("the key Secret is taken over behind the controller's back: it is not deleted with the LiveStream", async (t) => {
  // Somebody rewrites the key Secret for another use (its owner reference and
  // labels gone, other data): from then on it is not the LiveStream's.
  await createLs('swapped');
  const ls = await waitFor(
    'swapped Ready',
    async () => {
      const ls = await getLs('swapped');
      return ls?.status?.phase === 'Ready' ? ls : undefined;
    },
    { timeoutMs: 3000, intervalMs: 20 },
  );
  t.equal((await secretOf('swapped'))?.owners[0]?.uid, ls.metadata.uid);
  const current = await core.readNamespacedSecret({ namespace: NS, name: 'swapped-stream-key' });
  await core.replaceNamespacedSecret({
    namespace: NS,
    name: 'swapped-stream-key',
    body: { metadata: { name: 'swapped-stream-key', resourceVersion: current.metadata!.resourceVersion! }, data: { other: 'eQ==' } },
  });
  const errored = await waitFor(
    'phase Error',
    async () => {
      const ls = await getLs('swapped');
      return ls?.status?.phase === 'Error' ? ls : undefined;
    },
    { timeoutMs: 3000, intervalMs: 20 },
  );
  t.notOk(errored.status?.streamKeySha256, "the old key's hash is withdrawn: the ingest stops accepting it");
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'swapped' });
  await waitFor('the LiveStream deleted', async () => (await getLs('swapped')) === undefined, { timeoutMs: 5000, intervalMs: 50 });
  const left = await core.readNamespacedSecret({ namespace: NS, name: 'swapped-stream-key' });
  t.same(left.data, { other: 'eQ==' }, "the Secret that is no longer the LiveStream's is still there");
  await core.deleteNamespacedSecret({ namespace: NS, name: 'swapped-stream-key' });
});

t.test('metrics and probes', async (t) => {
  const base = `http://127.0.0.1:${controller.httpPort}`;
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  t.equal((await fetch(`${base}/readyz`)).status, 200);
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    'tteok_controller_reconcile_duration_seconds_bucket',
    'tteok_controller_queue_depth',
    'tteok_controller_leader 1',
    'tteok_controller_reconcile_errors_total',
    'tteok_controller_ingest_replicas',
  ]) {
    t.ok(text.includes(name), `exposes ${name}`);
  }
});

async function keysUnder(prefix: string): Promise<number> {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return page.KeyCount ?? 0;
}
