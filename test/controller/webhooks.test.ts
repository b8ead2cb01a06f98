// Webhooks, with the controller in process on a real kube-apiserver and real
// HTTP receivers on loopback: what the CRD refuses, which events a webhook
// gets (its filter; no recording_ready when the ingest died instead of
// releasing its claim), and what happens to an event nobody acknowledges:
// given up at TTEOK_WEBHOOK_MAX_AGE_SECONDS, or dropped with its webhook.
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import { MERGE_PATCH, rawJson, statusCode } from '../../common/kube/client.ts';
import { createLogger } from '../../common/log.ts';
import { LeaseClient, microTime } from '../../common/kube/lease.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { startController } from '../../controller/controller.ts';
import { webhookTargetId } from '../../controller/webhooks.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { startWebhookReceiver } from '../../harness/webhook-receiver.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const KEY = 'a-signing-key-of-enough-length-42';
const MAX_AGE_SECONDS = 4;

const kube = await startKubeApiServer();
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const receiver = await startWebhookReceiver(KEY);
const config = loadControllerConfig({
  TTEOK_POD_NAME: 'controller-webhooks',
  TTEOK_POD_NAMESPACE: SYSTEM,
  TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
  TTEOK_CONTROLLER_HTTP_PORT: '0',
  TTEOK_LEADER_ELECTION: 'false',
  TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS: '0.1',
  TTEOK_WEBHOOK_RETRY_MAX_SECONDS: '0.5',
  TTEOK_WEBHOOK_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS),
  // The receiver listens on loopback, which the address policy refuses unless allowed.
  TTEOK_WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  // The receiver's /hooks/ only: every other URL on the same server is refused.
  TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: `${new URL(receiver.url).origin}/hooks/`,
});
const log = createLogger('webhooks-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'warn');
const controller = await startController(config, { kc, log });
await controller.ready();
await core.createNamespacedSecret({
  namespace: NS,
  body: { metadata: { name: 'hook-key', labels: { 'tteok.dev/webhook-signing-key': 'true' } }, stringData: { signingKey: KEY } },
});

t.teardown(async () => {
  await controller.shutdown();
  await receiver.close();
  await kube.stop();
});

interface LS {
  status?: { phase?: string; webhookEvents?: Array<{ id: string; type: string; pendingTargets: string[] }> };
}
const getLs = async (name: string) => (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as LS;
const createLs = (name: string, spec: Record<string, unknown>) =>
  custom.createNamespacedCustomObject({ ...GROUP, namespace: NS, body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec } });
const eventsOf = async (name: string) =>
  (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items.map((e) => ({
    reason: e.reason ?? '',
    message: e.message ?? '',
    type: e.type ?? '',
  }));
const metricValue = async (event: string, outcome: string) => {
  const m = (await controller.metrics.webhookDeliveries.get()).values.find((v) => v.labels.event === event && v.labels.outcome === outcome);
  return m?.value ?? 0;
};
const leases = new LeaseClient(kc);
async function claim(name: string, seconds: number): Promise<void> {
  const now = microTime();
  await leases.create(SYSTEM, {
    metadata: { name: `claim.${NS}.${name}`, labels: { 'tteok.dev/claim': 'true', 'tteok.dev/livestream-namespace': NS, 'tteok.dev/livestream': name } },
    spec: { holderIdentity: 'ingest-0', leaseDurationSeconds: seconds, acquireTime: now, renewTime: now },
  });
}
const hook = (extra: Record<string, unknown> = {}) => ({ url: receiver.url, secretRef: { name: 'hook-key' }, ...extra });

t.test('the CRD refuses a bad webhook with a message naming the field, and creates nothing', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not http', [{ url: 'ftp://example.com/x', secretRef: { name: 'hook-key' } }], /spec\.webhooks\[0\]\.url/],
    ['credentials in the URL', [{ url: 'https://user:pw@example.com/x', secretRef: { name: 'hook-key' } }], /spec\.webhooks\[0\]\.url/],
    ['no Secret', [{ url: 'https://example.com/x' }], /spec\.webhooks\[0\]\.secretRef/],
    [
      'the same URL twice',
      [
        { url: 'https://example.com/x', secretRef: { name: 'a' } },
        { url: 'https://example.com/x', secretRef: { name: 'b' } },
      ],
      /spec\.webhooks\[1\].*[Dd]uplicate/,
    ],
    ['an unknown event', [{ url: 'https://example.com/x', secretRef: { name: 'a' }, events: ['stream.exploded'] }], /spec\.webhooks\[0\]\.events\[0\]/],
  ];
  for (const [what, webhooks, field] of cases) {
    const err = await createLs('refused', { webhooks }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ApiException && err.code === 422, `${what}: 422`);
    t.match(String((err as ApiException<string>)?.body), field, `${what}: the message names the field`);
  }
  const list = (await custom.listNamespacedCustomObject({ ...GROUP, namespace: NS })) as { items: unknown[] };
  t.equal(list.items.length, 0, 'nothing was created');
});

t.test('a webhook gets only its events; an ingest that died (claim expired) reports no recording', async (t) => {
  await createLs('filtered', { retention: { keepAfterEnd: true }, webhooks: [hook({ events: ['stream.offline', 'stream.recording_ready'] })] });
  await waitFor('filtered Ready', async () => (await getLs('filtered')).status?.phase === 'Ready', { timeoutMs: 15_000 });
  await claim('filtered', 2); // never renewed: it expires, as when the ingest pod dies
  await waitFor('filtered Live', async () => (await getLs('filtered')).status?.phase === 'Live', { timeoutMs: 10_000 });
  await waitFor('filtered Ready after the claim expired', async () => (await getLs('filtered')).status?.phase === 'Ready', { timeoutMs: 10_000 });
  await waitFor('the queue drained', async () => ((await getLs('filtered')).status?.webhookEvents ?? []).length === 0, { timeoutMs: 10_000 });
  const got = receiver.processed.filter((e) => e.stream.name === 'filtered').map((e) => e.type);
  t.same(got, ['stream.offline'], 'only stream.offline: live is filtered out, and an expired claim says nothing about the recording');
  t.equal(receiver.badSignatures, 0, "signed with the Secret's key");
});

t.test('an event nobody acknowledges is given up once it is TTEOK_WEBHOOK_MAX_AGE_SECONDS old', async (t) => {
  receiver.down = true;
  t.teardown(() => void (receiver.down = false));
  const expiredBefore = await metricValue('stream.live', 'expired');
  await createLs('unheard', { webhooks: [hook()] });
  await waitFor('unheard Ready', async () => (await getLs('unheard')).status?.phase === 'Ready', { timeoutMs: 15_000 });
  await claim('unheard', 60);
  const pending = await waitFor('stream.live pending', async () => (await getLs('unheard')).status?.webhookEvents?.[0], { timeoutMs: 10_000 });
  t.same(pending.pendingTargets, [webhookTargetId(receiver.url)], "owed to the LiveStream's webhook (by a hash of its URL)");
  await waitFor('the queue emptied', async () => ((await getLs('unheard')).status?.webhookEvents ?? []).length === 0, {
    timeoutMs: (MAX_AGE_SECONDS + 8) * 1000,
  });
  t.ok(receiver.attempts.filter((a) => a.id === pending.id).length >= 3, 'retried meanwhile');
  t.equal(await metricValue('stream.live', 'expired'), expiredBefore + 1, 'counted as expired');
  const events = await waitFor(
    'a WebhookGaveUp Event',
    async () => {
      const e = await eventsOf('unheard');
      return e.some((x) => x.reason === 'WebhookGaveUp') ? e : undefined;
    },
    { timeoutMs: 5000 },
  );
  t.ok(
    events.some((e) => e.reason === 'WebhookFailed' && e.type === 'Warning' && /HTTP 503/.test(e.message)),
    'the failures are Warning Events saying why',
  );
  await leases.delete(SYSTEM, `claim.${NS}.unheard`);
});

t.test('a LiveStream deleted while live says stream.offline (and recording_ready) once its publish ends, before it goes', async (t) => {
  await createLs('deleted', { retention: { keepAfterEnd: true }, webhooks: [hook()] });
  await waitFor('deleted Ready', async () => (await getLs('deleted')).status?.phase === 'Ready', { timeoutMs: 15_000 });
  await claim('deleted', 60);
  await waitFor('stream.live delivered', async () => receiver.processed.some((e) => e.stream.name === 'deleted' && e.type === 'stream.live'), {
    timeoutMs: 10_000,
  });
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'deleted' });
  // The ingest refuses a LiveStream being deleted: the publish ends and its claim is released.
  await leases.delete(SYSTEM, `claim.${NS}.deleted`);
  await waitFor(
    'the LiveStream to be gone',
    async () =>
      (await getLs('deleted').then(
        () => false,
        (e: unknown) => statusCode(e) === 404,
      )) || undefined,
    { timeoutMs: 20_000 },
  );
  const got = receiver.processed.filter((e) => e.stream.name === 'deleted').map((e) => e.type);
  // Each event is its own delivery: offline and recording_ready may arrive in either order.
  t.same(
    [...got].sort(),
    ['stream.live', 'stream.offline', 'stream.recording_ready'],
    'the backend learns the stream ended, and that its recording is complete',
  );
  t.equal(got[0], 'stream.live');
});

t.test('a deletion waits for webhook deliveries only so long: a receiver that is down does not keep the LiveStream', async (t) => {
  await createLs('deleted-unheard', { webhooks: [hook({ events: ['stream.offline'] })] });
  await waitFor('deleted-unheard Ready', async () => (await getLs('deleted-unheard')).status?.phase === 'Ready', { timeoutMs: 15_000 });
  await claim('deleted-unheard', 60);
  await waitFor('deleted-unheard Live', async () => (await getLs('deleted-unheard')).status?.phase === 'Live', { timeoutMs: 10_000 });
  receiver.down = true;
  t.teardown(() => void (receiver.down = false));
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'deleted-unheard' });
  await leases.delete(SYSTEM, `claim.${NS}.deleted-unheard`);
  const owed = await waitFor(
    'stream.offline owed',
    async () => (await getLs('deleted-unheard')).status?.webhookEvents?.find((e) => e.type === 'stream.offline'),
    { timeoutMs: 10_000 },
  );
  t.ok(owed, 'the end is recorded while the receiver is down');
  // Given up at TTEOK_WEBHOOK_MAX_AGE_SECONDS here (4 s); at most 30 s after the deletion otherwise.
  await waitFor(
    'the LiveStream to be gone',
    async () =>
      (await getLs('deleted-unheard').then(
        () => false,
        (e: unknown) => statusCode(e) === 404,
      )) || undefined,
    { timeoutMs: (MAX_AGE_SECONDS + 15) * 1000 },
  );
  t.notOk(
    receiver.processed.some((e) => e.stream.name === 'deleted-unheard' && e.type === 'stream.offline'),
    'nothing was delivered, and the deletion finished anyway',
  );
});

t.test('a signing key Secret must opt in with its label; an unusable one is a failure the user sees', async (t) => {
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'not-for-webhooks' }, stringData: { signingKey: KEY } } });
  await createLs('unlabelled', { webhooks: [{ url: receiver.url, secretRef: { name: 'not-for-webhooks' } }] });
  await createLs('keyless', { webhooks: [{ url: receiver.url, secretRef: { name: 'no-such-secret' } }] });
  for (const name of ['unlabelled', 'keyless']) {
    await waitFor(`${name} Ready`, async () => (await getLs(name)).status?.phase === 'Ready', { timeoutMs: 15_000 });
    await claim(name, 60);
  }
  const why = (secret: string) =>
    new RegExp(`signing key Secret ${secret} not found, not labelled tteok.dev/webhook-signing-key=true, or without a key "signingKey"`);
  await waitFor(
    'WebhookFailed Events naming each Secret',
    async () => {
      const [a, b] = await Promise.all([eventsOf('unlabelled'), eventsOf('keyless')]);
      return (
        a.some((e) => e.reason === 'WebhookFailed' && why('not-for-webhooks').test(e.message)) &&
        b.some((e) => e.reason === 'WebhookFailed' && why('no-such-secret').test(e.message))
      );
    },
    { timeoutMs: 10_000 },
  );
  t.pass('an unlabelled Secret and a missing one fail alike (the Events do not tell which Secrets exist)');
  t.equal(receiver.processed.filter((e) => ['unlabelled', 'keyless'].includes(e.stream.name)).length, 0, 'nothing was sent');
  await core.patchNamespacedSecret(
    { namespace: NS, name: 'not-for-webhooks', body: { metadata: { labels: { 'tteok.dev/webhook-signing-key': 'true' } } } },
    MERGE_PATCH,
  );
  await waitFor('delivered once the Secret opted in', () => receiver.processed.some((e) => e.stream.name === 'unlabelled' && e.type === 'stream.live'), {
    timeoutMs: 10_000,
  });
  t.pass('delivered once the Secret is labelled');
  await leases.delete(SYSTEM, `claim.${NS}.unlabelled`);
});

t.test('removing a webhook drops what it was still owed', async (t) => {
  const droppedBefore = await metricValue('stream.live', 'dropped');
  t.ok(((await getLs('keyless')).status?.webhookEvents ?? []).length > 0, 'keyless still owes its webhook stream.live');
  await custom.patchNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'keyless', body: [{ op: 'remove', path: '/spec/webhooks' }] }, undefined);
  await waitFor('the queue emptied', async () => ((await getLs('keyless')).status?.webhookEvents ?? []).length === 0, { timeoutMs: 10_000 });
  // Counted once the write that removed it returned to the controller, a moment after the API server has it.
  await waitFor('counted as dropped', async () => (await metricValue('stream.live', 'dropped')) === droppedBefore + 1, { timeoutMs: 5000 });
  t.pass('counted as dropped');
  // Events are recorded in the background, after the status write.
  await waitFor('a WebhookDropped Event', async () => (await eventsOf('keyless')).some((e) => e.reason === 'WebhookDropped'), { timeoutMs: 5000 });
  t.pass('a WebhookDropped Event');
  await leases.delete(SYSTEM, `claim.${NS}.keyless`);
});

t.test('a status write over a stale resourceVersion is refused (what keeps two replicas from rewriting the queue)', async (t) => {
  const ls = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'filtered' })) as { metadata: { resourceVersion: string } };
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/filtered`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { title: 'changed' } },
  });
  const err = await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/filtered/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { metadata: { resourceVersion: ls.metadata.resourceVersion }, status: { webhookEvents: [] } },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal(statusCode(err), 409, "the reconciler's patch shape, over an old version: 409 Conflict");
});

t.test('TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: a webhook outside them gets nothing, and the user is told', async (t) => {
  const origin = new URL(receiver.url).origin;
  await createLs('outside', {
    webhooks: [{ url: `${origin}/admin/hooks/x`, secretRef: { name: 'hook-key' } }, { url: `${origin}/hooks.evil/x`, secretRef: { name: 'hook-key' } }, hook()],
  });
  await waitFor('outside Ready', async () => (await getLs('outside')).status?.phase === 'Ready', { timeoutMs: 15_000 });
  await claim('outside', 60);
  await waitFor('the allowed webhook got stream.live', () => receiver.processed.some((e) => e.stream.name === 'outside'), { timeoutMs: 10_000 });
  const events = await waitFor(
    'WebhookNotAllowed Events',
    async () => {
      const e = (await eventsOf('outside')).filter((x) => x.reason === 'WebhookNotAllowed');
      return e.length >= 2 ? e : undefined;
    },
    { timeoutMs: 5000 },
  );
  t.ok(
    events.some((e) => e.message.includes(`${origin}/admin/hooks/x`)) && events.some((e) => e.message.includes(`${origin}/hooks.evil/x`)),
    'one for each refused URL',
  );
  t.notOk(
    receiver.requests.some((p) => p.startsWith('/admin') || p.startsWith('/hooks.evil')),
    'no request went to a refused URL',
  );
  t.same(
    ((await getLs('outside')).status?.webhookEvents ?? []).flatMap((e) => e.pendingTargets),
    [],
    'nothing is owed to a refused URL',
  );
  await leases.delete(SYSTEM, `claim.${NS}.outside`);
});
