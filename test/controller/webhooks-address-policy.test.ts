// Webhooks cannot be turned into a port scanner of the cluster: the
// controller in process on a real kube-apiserver, LiveStreams whose
// spec.webhooks point at loopback (a real receiver, a closed port, and the
// name localhost), and the WebhookFailed Events their authors can read.
// Without TTEOK_WEBHOOK_ALLOWED_CIDRS nothing is requested and the Event
// says "blocked by address policy"; with 127.0.0.0/8 allowed, a closed port
// is "refused", with neither the address nor the port in the reason. And the
// CRD refuses URLs with encoded path separators or dot segments at admission.
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import { createLogger } from '../../common/log.ts';
import { LeaseClient, microTime } from '../../common/kube/lease.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { startController, type RunningController } from '../../controller/controller.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { freePort } from '../../harness/ports.ts';
import { startWebhookReceiver } from '../../harness/webhook-receiver.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const KEY = 'a-signing-key-of-enough-length-42';

const kube = await startKubeApiServer();
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const receiver = await startWebhookReceiver(KEY);
const receiverPort = new URL(receiver.url).port;
const closedPort = await freePort(); // nothing listens there
const log = createLogger('webhooks-address-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'warn');
await core.createNamespacedSecret({
  namespace: NS,
  body: { metadata: { name: 'hook-key', labels: { 'tteok.dev/webhook-signing-key': 'true' } }, stringData: { signingKey: KEY } },
});

let controller: RunningController | undefined;
async function runController(env: Record<string, string>): Promise<void> {
  await controller?.shutdown();
  controller = await startController(
    loadControllerConfig({
      TTEOK_POD_NAME: 'controller-address-policy',
      TTEOK_POD_NAMESPACE: SYSTEM,
      TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
      TTEOK_CONTROLLER_HTTP_PORT: '0',
      TTEOK_LEADER_ELECTION: 'false',
      TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS: '0.2',
      TTEOK_WEBHOOK_RETRY_MAX_SECONDS: '0.5',
      ...env,
    }),
    { kc, log },
  );
  await controller.ready();
}

t.teardown(async () => {
  await controller?.shutdown();
  await receiver.close();
  await kube.stop();
});

const createLs = (name: string, spec: Record<string, unknown>) =>
  custom.createNamespacedCustomObject({ ...GROUP, namespace: NS, body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec } });
const phase = async (name: string) =>
  ((await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as { status?: { phase?: string } }).status?.phase;
const failures = async (name: string) =>
  (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items
    .filter((e) => e.reason === 'WebhookFailed')
    .map((e) => e.message ?? '');
/** The reason part of a WebhookFailed message: "Delivering <event> to <url> failed: <reason>; retrying with backoff". */
const reasonOf = (message: string) => /failed: (.*); retrying with backoff$/.exec(message)?.[1] ?? message;
const leases = new LeaseClient(kc);
/** A LiveStream with this one webhook, gone live (a claim Lease held), so the controller owes it stream.live. */
async function liveWithWebhook(name: string, url: string): Promise<void> {
  await createLs(name, { webhooks: [{ url, secretRef: { name: 'hook-key' } }] });
  await waitFor(`${name} Ready`, async () => (await phase(name)) === 'Ready', { timeoutMs: 15_000 });
  const now = microTime();
  await leases.create(SYSTEM, {
    metadata: { name: `claim.${NS}.${name}`, labels: { 'tteok.dev/claim': 'true', 'tteok.dev/livestream-namespace': NS, 'tteok.dev/livestream': name } },
    spec: { holderIdentity: 'ingest-0', leaseDurationSeconds: 600, acquireTime: now, renewTime: now },
  });
}
async function failureReason(name: string): Promise<string> {
  const messages = await waitFor(
    `a WebhookFailed Event on ${name}`,
    async () => {
      const m = await failures(name);
      return m.length > 0 ? m : undefined;
    },
    { timeoutMs: 15_000 },
  );
  return reasonOf(messages[0]!);
}

t.test('without an allowed range, loopback is not requested: "blocked by address policy"', async (t) => {
  await runController({});
  await liveWithWebhook('to-receiver', receiver.url);
  await liveWithWebhook('to-closed-port', `http://127.0.0.1:${closedPort}/hooks/x`);
  await liveWithWebhook('to-localhost', `http://localhost:${receiverPort}/hooks/tteok`);
  for (const name of ['to-receiver', 'to-closed-port', 'to-localhost']) {
    t.equal(await failureReason(name), 'blocked by address policy', `${name}: the Event says the address policy blocked it`);
  }
  // Attempts are retried every 0.5 s at most: several have been made by now.
  await waitFor(
    'a few retries',
    async () => (await controller!.metrics.webhookDeliveries.get()).values.some((v) => v.labels.outcome === 'failed' && v.value >= 6),
    { timeoutMs: 10_000 },
  );
  t.same(receiver.requests, [], 'the receiver on loopback got no request, neither by its address nor by the name localhost');
});

t.test('with 127.0.0.0/8 allowed, a closed port is "refused", without the address or the port', async (t) => {
  await runController({ TTEOK_WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });
  await liveWithWebhook('refused', `http://127.0.0.1:${closedPort}/hooks/x`);
  const reason = await failureReason('refused');
  t.equal(reason, 'refused', 'the reason is the class only');
  t.notMatch(reason, String(closedPort), 'no port');
  t.notMatch(reason, /127\.0\.0\.1|ECONNREFUSED/, 'no address, no error code');
  // And the receiver the first controller would not call is delivered to now (the event is still owed).
  await waitFor('to-receiver delivered', () => receiver.processed.some((e) => e.stream.name === 'to-receiver'), { timeoutMs: 15_000 });
  t.pass('an allowed range is reached');
});

t.test('the CRD refuses encoded path separators and dot segments, saying why, and creates nothing', async (t) => {
  for (const url of [
    'https://api.example.com/tteok/..%2fadmin',
    'https://api.example.com/tteok/%2e%2e/admin',
    'https://api.example.com/tteok/a%5Cb',
    'https://api.example.com/tteok/./x',
    'https://api.example.com/tteok/.%2E',
  ]) {
    const err = await createLs('bad-url', { webhooks: [{ url, secretRef: { name: 'hook-key' } }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ApiException && err.code === 422, `${url}: 422`);
    t.match(
      String((err as ApiException<string>)?.body),
      /spec\.webhooks\[0\]\.url.*(encoded path separator|dot segment)/,
      `${url}: the message names the field and the reason`,
    );
  }
  const ok = await createLs('good-url', { webhooks: [{ url: 'https://api.example.com/tteok/hooks?next=%2fdashboard', secretRef: { name: 'hook-key' } }] }).then(
    () => true,
    () => false,
  );
  t.ok(ok, 'an encoded slash in the query string is fine');
});
