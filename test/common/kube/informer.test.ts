// The shared informer (common/kube/informer.ts) against a real kube-apiserver,
// with a loopback TCP proxy in between to break, stall and restore its
// connections: it follows changes within a second, recovers from a watch
// that expired (a real 410 Gone: the API server runs without a watch cache so
// watches are served by etcd, and the test compacts etcd through its API),
// re-lists after a silent stall, and keeps retrying after a non-410 error
// (403 until RBAC allows it). Then the ingest's key source and the gateway's
// view, both built on it, follow changes within a second.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { createLogger } from '../../../common/log.ts';
import { rawJson } from '../../../common/kube/client.ts';
import { Informer } from '../../../common/kube/informer.ts';
import { KubeStreamView } from '../../../gateway/views/kube-stream-view.ts';
import { KubeKeySource } from '../../../ingest/keys/kube-key-source.ts';
import { startKubeApiServer } from '../../../harness/kube.ts';
import { freePort } from '../../../harness/ports.ts';
import { spawnManaged } from '../../../harness/process.ts';
import { waitFor } from '../../../harness/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const sha256 = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');
const NS = 'inf';
const log = createLogger('informer-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');

// No watch cache: watches go to etcd, so a compacted revision is a real 410.
const kube = await startKubeApiServer({ apiServerArgs: ['--watch-cache=false'] });
const dir = mkdtempSync(join(tmpdir(), 'tteok-informer-'));
const admin = new KubeConfig();
admin.loadFromFile(kube.kubeconfigPath);
const core = admin.makeApiClient(CoreV1Api);
await core.createNamespace({ body: { metadata: { name: NS } } });

// ---- a TCP proxy in front of the API server -------------------------------
type ProxyMode = 'pass' | 'refuse';
const apiPort = Number(new URL(kube.url).port);
const conns = new Set<{ client: Socket; upstream: Socket }>();
let mode: ProxyMode = 'pass';
const proxy: Server = createServer((client) => {
  if (mode === 'refuse') {
    client.destroy();
    return;
  }
  const upstream = connect(apiPort, '127.0.0.1');
  const pair = { client, upstream };
  conns.add(pair);
  client.pipe(upstream);
  upstream.pipe(client);
  const drop = () => {
    conns.delete(pair);
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop).on('close', drop);
  upstream.on('error', drop).on('close', drop);
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxyPort = (proxy.address() as { port: number }).port;
const proxied = kubeconfigVia(`https://127.0.0.1:${proxyPort}`);
function breakAll(): void {
  for (const { client, upstream } of conns) {
    client.destroy();
    upstream.destroy();
  }
  conns.clear();
}
/** Existing connections stay open but deliver nothing more: a silent watch. */
function stallAll(): void {
  for (const { client, upstream } of conns) {
    upstream.unpipe(client);
    upstream.pause();
  }
}

t.teardown(async () => {
  breakAll();
  proxy.close();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

function kubeconfigVia(server: string, token?: string): KubeConfig {
  const config = JSON.parse(readFileSync(kube.kubeconfigPath, 'utf8')) as {
    clusters: Array<{ cluster: { server: string } }>;
    users: Array<{ user: { token: string } }>;
  };
  config.clusters[0]!.cluster.server = server;
  if (token) config.users[0]!.user.token = token;
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, JSON.stringify(config));
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

interface Seen {
  type: string;
  name: string;
  at: number;
}
function configMapInformer(kc: KubeConfig, opts: { idleRelistMs?: number; labelSelector?: string } = {}): { informer: Informer<V1ConfigMap>; seen: Seen[] } {
  const informer = new Informer<V1ConfigMap>({
    kc,
    path: `/api/v1/namespaces/${NS}/configmaps`,
    labelSelector: opts.labelSelector ?? 'test=informer',
    log,
    backoffInitialMs: 100,
    backoffMaxMs: 500,
    ...(opts.idleRelistMs ? { idleRelistMs: opts.idleRelistMs } : {}),
  });
  const seen: Seen[] = [];
  informer.on((type, obj) => seen.push({ type, name: obj.metadata?.name ?? '', at: Date.now() }));
  informer.start();
  return { informer, seen };
}
const cm = (name: string, data: Record<string, string> = {}, label = 'informer') =>
  core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name, labels: { test: label } }, data } });
const put = (name: string, data: Record<string, string>, label = 'informer') =>
  core.replaceNamespacedConfigMap({ namespace: NS, name, body: { metadata: { name, labels: { test: label } }, data } });
const del = (name: string) => core.deleteNamespacedConfigMap({ namespace: NS, name });
const seenWithin = (seen: Seen[], type: string, name: string, since: number) => seen.find((s) => s.type === type && s.name === name && s.at >= since);

t.test('follows adds, updates and deletes within a second', async (t) => {
  const { informer, seen } = configMapInformer(proxied);
  await informer.ready();
  t.ok(informer.synced);
  for (const [type, action] of [
    ['add', () => cm('a', { v: '1' })],
    ['update', () => put('a', { v: '2' })],
    ['delete', () => del('a')],
  ] as const) {
    const at = Date.now();
    await action();
    const s = await waitFor(`${type} a`, () => seenWithin(seen, type, 'a', at), { timeoutMs: 1000, intervalMs: 10 });
    t.ok(s.at - at < 1000, `${type} seen after ${s.at - at} ms`);
  }
  t.equal(informer.get(NS, 'a'), undefined);
  await informer.stop();
});

t.test('a watch resumed from a compacted revision gets 410 Gone and re-lists', async (t) => {
  await cm('keep', { v: '1' });
  await cm('change', { v: '1' });
  await cm('remove', { v: '1' });
  const { informer, seen } = configMapInformer(proxied);
  await informer.ready();
  t.equal(informer.list().length, 3);

  // The informer loses its connection and cannot reconnect for a while…
  mode = 'refuse';
  breakAll();
  const at = Date.now();
  // …meanwhile the world changes, and etcd compacts the history it would resume from.
  await put('change', { v: '2' });
  await del('remove');
  await cm('added', { v: '1' });
  for (let i = 0; i < 5; i++) await put('keep', { v: String(i + 10) }, 'other'); // moves it out of the selector
  await compactEtcd();
  await sleep(300);
  t.equal(informer.stats.goneRelists, 0, 'no 410 yet');
  mode = 'pass';

  await waitFor('a 410 and a re-list', () => informer.stats.goneRelists > 0, { timeoutMs: 5000, intervalMs: 20 });
  await waitFor('caught up', () => informer.get(NS, 'added') && !informer.get(NS, 'remove') && informer.get(NS, 'change')?.data?.v === '2', {
    timeoutMs: 5000,
    intervalMs: 20,
  });
  t.ok(seenWithin(seen, 'add', 'added', at), 'the add it missed was delivered');
  t.ok(seenWithin(seen, 'update', 'change', at), 'the update it missed was delivered');
  t.ok(seenWithin(seen, 'delete', 'remove', at), 'the delete it missed was delivered');
  t.ok(seenWithin(seen, 'delete', 'keep', at), 'an object that left the selector was deleted');
  t.equal(seen.filter((s) => s.at >= at && s.name === 'added').length, 1, 'no duplicate event');
  // And it watches again.
  const after = Date.now();
  await cm('later');
  await waitFor('watching again', () => seenWithin(seen, 'add', 'later', after), { timeoutMs: 1000, intervalMs: 10 });
  await informer.stop();
  for (const n of ['change', 'added', 'keep', 'later']) await del(n);
});

t.test('a watch that goes silent is re-listed after the idle time', async (t) => {
  const { informer, seen } = configMapInformer(proxied, { idleRelistMs: 1500 });
  await informer.ready();
  await sleep(200);
  stallAll(); // the open watch still looks connected, but nothing comes through
  const at = Date.now();
  await cm('during-stall');
  const s = await waitFor('the object after an idle re-list', () => seenWithin(seen, 'add', 'during-stall', at), { timeoutMs: 4000, intervalMs: 20 });
  t.ok(informer.stats.idleRelists >= 1, 'an idle re-list happened');
  t.ok(s.at - at <= 2500, `seen after ${s.at - at} ms (idle limit 1500 ms)`);
  await informer.stop();
  await del('during-stall');
});

t.test('keeps retrying after a non-410 error (403) until it is allowed', async (t) => {
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'reader' } } });
  const tr = await rawJson<{ status: { token: string } }>(admin, `/api/v1/namespaces/${NS}/serviceaccounts/reader/token`, {
    method: 'POST',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const { informer } = configMapInformer(kubeconfigVia(kube.url, tr.status.token));
  await waitFor('some failures', () => informer.stats.errors >= 2, { timeoutMs: 5000, intervalMs: 20 });
  t.notOk(informer.synced, 'not synced while forbidden');
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}`;
  await rawJson(admin, `${rbac}/roles`, {
    method: 'POST',
    body: { metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch'] }] },
  });
  await rawJson(admin, `${rbac}/rolebindings`, {
    method: 'POST',
    body: {
      metadata: { name: 'reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: NS }],
    },
  });
  await waitFor('synced once allowed', () => informer.synced, { timeoutMs: 5000, intervalMs: 20 });
  t.pass(`synced after ${informer.stats.errors} failed attempts`);
  await informer.stop();
});

t.test('the ingest key source and the gateway view follow changes within a second', async (t) => {
  await applyCrd();
  const keys = new KubeKeySource({ kc: admin, log, namespace: NS });
  const view = new KubeStreamView({ kc: admin, log });
  await Promise.all([keys.ready(), view.ready()]);
  t.ok(view.synced && keys.synced);
  let keyChanges = 0;
  let viewChanges = 0;
  keys.onChange(() => keyChanges++);
  view.onChange(() => viewChanges++);
  const key = 'k_' + 'a'.repeat(30);
  /** Makes the change, then expects the view to show it within a second of the request. */
  const within = async (what: string, change: () => Promise<unknown>, probe: () => boolean) => {
    const at = Date.now();
    await change();
    await waitFor(what, probe, { timeoutMs: Math.max(10, 1000 - (Date.now() - at)), intervalMs: 5 });
    t.ok(Date.now() - at <= 1000, `${what} within ${Date.now() - at} ms of the request`);
  };

  const custom = admin.makeApiClient(CustomObjectsApi);
  const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
  const keyedPath = `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/keyed`;
  const publishHash = (k: string | null) =>
    rawJson(admin, `${keyedPath}/status`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { status: { streamKeySha256: k === null ? null : sha256(k) } },
    });
  const patchSpec = (spec: Record<string, unknown>) =>
    rawJson(admin, keyedPath, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec } });
  // A LiveStream the controller has not published a key hash for yet: no key publishes to it.
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'keyed', finalizers: ['tteok.dev/cleanup'] }, spec: { title: 'Show' } },
  });
  // A second one with a hash: once the key source has it, it has seen the first (one watch, in order).
  const otherKey = 'k_' + 'o'.repeat(30);
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'other' } },
  });
  await rawJson(admin, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/other/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { status: { streamKeySha256: sha256(otherKey) } },
  });
  await waitFor('the other stream granted', () => keys.lookup(otherKey)?.ref.name === 'other', { timeoutMs: 2000, intervalMs: 5 });
  t.same(
    keys.streams().map((g) => g.ref.name),
    ['other'],
    'a LiveStream without a published key hash grants nothing',
  );
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'other' });
  await within(
    'key source: a new key',
    () => publishHash(key),
    () => keys.lookup(key)?.ref.name === 'keyed',
  );
  t.equal(keys.lookup(key)?.settings.title, 'Show', 'settings come from the spec');
  t.equal(keys.lookup('k_' + 'a'.repeat(29) + 'b'), undefined, 'another key is unknown');
  t.equal(keys.lookup(sha256(key)), undefined, 'the hash itself is not a key');
  await within(
    'key source: disabled',
    () => patchSpec({ enabled: false }),
    () => keys.lookup(key)?.settings.enabled === false,
  );
  await patchSpec({ enabled: true });
  const rotated = 'k_' + 'b'.repeat(30);
  await within(
    'key source: rotated',
    () => publishHash(rotated),
    () => keys.lookup(key) === undefined && keys.lookup(rotated) !== undefined,
  );
  // Deleting: the finalizer holds the object, and the key stops working at once.
  await within(
    'key source: deleted',
    () => custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'keyed' }),
    () => keys.lookup(rotated) === undefined,
  );
  t.ok(keyChanges >= 4, 'onChange on every change');
  await rawJson(admin, keyedPath, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { metadata: { finalizers: null } } });

  await within(
    'view: a new stream',
    () =>
      custom.createNamespacedCustomObject({
        ...GROUP,
        namespace: NS,
        body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'show' }, spec: { title: 'The Show' } },
      }),
    () => view.get({ namespace: NS, name: 'show' })?.title === 'The Show',
  );
  t.equal(view.get({ namespace: NS, name: 'show' })?.phase, 'Pending');
  const since = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const goLive = () =>
    rawJson(admin, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/show/status`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: 'Live',
          liveSince: since,
          conditions: [{ type: 'Live', status: 'True', reason: 'Publishing', message: 'x', lastTransitionTime: since }],
        },
      },
    });
  await within('view: live', goLive, () => view.get({ namespace: NS, name: 'show' })?.live === true);
  t.same(view.get({ namespace: NS, name: 'show' }), {
    namespace: NS,
    name: 'show',
    title: 'The Show',
    phase: 'Live',
    live: true,
    liveSince: since,
    access: 'public',
  });
  await within(
    'view: deleted',
    () => custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'show' }),
    () => view.get({ namespace: NS, name: 'show' }) === undefined,
  );
  t.ok(viewChanges >= 3, 'onChange on every change');
  await keys.close();
  await view.close();
});

t.test('the gateway role with TTEOK_VIEW=kubernetes serves streams from LiveStreams', async (t) => {
  const port = await freePort();
  const gateway = spawnManaged('gateway', process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), 'gateway'], {
    cwd: ROOT,
    env: {
      KUBECONFIG: kube.kubeconfigPath,
      TTEOK_VIEW: 'kubernetes',
      TTEOK_GATEWAY_HOST: '127.0.0.1',
      TTEOK_GATEWAY_PORT: String(port),
      TTEOK_PLAYBACK_BASE_URL: 'https://cdn.example.com',
    },
  });
  t.teardown(() => gateway.stop('SIGTERM', 5000));
  await gateway.waitForLine(/gateway ready/, 30_000);
  const path = `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams`;
  await rawJson(admin, path, {
    method: 'POST',
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'via-gateway' }, spec: { title: 'Via the gateway' } },
  });
  const body = await waitFor(
    'the stream in the gateway',
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/streams/${NS}/via-gateway`);
      return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.match(body, {
    namespace: NS,
    name: 'via-gateway',
    title: 'Via the gateway',
    phase: 'Pending',
    live: false,
    playbackUrl: `https://cdn.example.com/${NS}/via-gateway/index.m3u8`,
  });
  await rawJson(admin, `${path}/via-gateway`, { method: 'DELETE' });
  await waitFor('gone from the gateway', async () => (await fetch(`http://127.0.0.1:${port}/v1/streams/${NS}/via-gateway`)).status === 404, {
    timeoutMs: 2000,
    intervalMs: 20,
  });
});

/** Compacts etcd at its current revision through etcd's v3 JSON API. */
async function compactEtcd(): Promise<void> {
  const range = (await (
    await fetch(`${kube.etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) })
  ).json()) as { header: { revision: string } };
  const res = await fetch(`${kube.etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: range.header.revision, physical: true }) });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
}

async function applyCrd(): Promise<void> {
  const crd = parse(readFileSync(join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml'), 'utf8')) as { metadata: { name: string } };
  await rawJson(admin, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
  await waitFor(
    'LiveStreams served',
    async () => {
      await rawJson(admin, '/apis/tteok.dev/v1alpha1/livestreams');
      return true;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  // The first writes of a CRD established moments ago take the API server ~2 s; not what is timed here.
  const path = `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams`;
  await rawJson(admin, path, { method: 'POST', body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'warm-up' } } });
  await rawJson(admin, `${path}/warm-up`, { method: 'DELETE' });
}
