// Webhooks survive the controller: `tteok controller` processes on a real
// kube-apiserver, with the chart's RBAC, deliver stream.live,
// stream.offline, stream.recording_ready and stream.key_rotated to two real
// HTTP receivers (the chart's global webhook and the LiveStream's own, each
// with its signing key) that refuse the first attempts. The controller is
// killed with SIGKILL in the middle of the retries and a new one (after the
// dead leader's lease expires) delivers the same events, by the same ids,
// from the LiveStream's status. With two replicas, the standby that takes
// over from a leader stopped mid-retry delivers what it could not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { rawJson } from '../../common/kube/client.ts';
import { LeaseClient, microTime } from '../../common/kube/lease.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import {
  adminWithLiveStreams,
  chartRoles,
  serviceAccountKubeconfig,
  startControllerProcess,
  waitForOneLeader,
  type ControllerProcess,
} from '../../harness/kube-fixtures.ts';
import { startWebhookReceiver } from '../../harness/webhook-receiver.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const GLOBAL_KEY = 'global-signing-key-0123456789abcdef';
const STREAM_KEY = 'per-stream-signing-key-fedcba9876543210';

const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-webhooks-proc-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const controllerKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-controller', await chartRoles('controller', SYSTEM));
const globalReceiver = await startWebhookReceiver(GLOBAL_KEY, '/global');
const streamReceiver = await startWebhookReceiver(STREAM_KEY, '/stream');

t.teardown(async () => {
  await stopAll();
  await globalReceiver.close();
  await streamReceiver.close();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface WebhookEventStatus {
  id: string;
  type: string;
  pendingTargets: string[];
}
interface LS {
  metadata: { uid: string };
  status?: { phase?: string; streamKeySha256?: string; webhookEvents?: WebhookEventStatus[]; conditions?: Array<{ type: string; status: string }> };
}
const getLs = async (name: string) => (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as LS;

function startReplica(name: string): Promise<ControllerProcess> {
  return startControllerProcess(name, controllerKubeconfig, SYSTEM, {
    TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net',
    TTEOK_WEBHOOK_URL: globalReceiver.url,
    TTEOK_WEBHOOK_SECRET: GLOBAL_KEY,
    TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS: '0.2',
    TTEOK_WEBHOOK_RETRY_MAX_SECONDS: '1',
    // The LiveStream's receiver listens on loopback, which the address policy refuses unless allowed.
    TTEOK_WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  });
}

const leases = new LeaseClient(kc);
const claimName = (name: string) => `claim.${NS}.${name}`;

t.test('every event reaches both webhooks, signed, once by id, across a SIGKILL of the controller mid-retry', async (t) => {
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'show-webhook', labels: { 'tteok.dev/webhook-signing-key': 'true' } }, stringData: { signingKey: STREAM_KEY } },
  });
  // Both receivers are down at first: the events pile up in the status while the first controller retries.
  globalReceiver.down = true;
  streamReceiver.down = true;
  const first = await startReplica('controller-a');
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: {
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name: 'show' },
      spec: { title: 'Show', retention: { keepAfterEnd: true }, webhooks: [{ url: streamReceiver.url, secretRef: { name: 'show-webhook' } }] },
    },
  });
  await waitFor('show Ready', async () => (await getLs('show')).status?.phase === 'Ready', { timeoutMs: 20_000, intervalMs: 100 });
  const firstHash = (await getLs('show')).status?.streamKeySha256;

  // Live, then the ingest releases its claim (a kept run's last objects are stored), then a key rotation.
  const now = microTime();
  await leases.create(SYSTEM, {
    metadata: { name: claimName('show'), labels: { 'tteok.dev/claim': 'true', 'tteok.dev/livestream-namespace': NS, 'tteok.dev/livestream': 'show' } },
    spec: { holderIdentity: 'ingest-0', leaseDurationSeconds: 30, acquireTime: now, renewTime: now },
  });
  await waitFor('show Live', async () => (await getLs('show')).status?.phase === 'Live', { timeoutMs: 10_000, intervalMs: 100 });
  await leases.delete(SYSTEM, claimName('show'));
  await waitFor('show Ready again', async () => (await getLs('show')).status?.phase === 'Ready', { timeoutMs: 10_000, intervalMs: 100 });
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/show`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { keyRotation: 1 } },
  });
  await waitFor(
    'the key rotated',
    async () => {
      const h = (await getLs('show')).status?.streamKeySha256;
      return h !== undefined && h !== firstHash;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );

  const recorded = await waitFor(
    'four events pending for both webhooks',
    async () => {
      const events = (await getLs('show')).status?.webhookEvents ?? [];
      return events.length === 4 && events.every((e) => e.pendingTargets.length === 2) ? events : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  t.same(
    recorded.map((e) => e.type),
    ['stream.live', 'stream.offline', 'stream.recording_ready', 'stream.key_rotated'],
    'the status records the four events in order',
  );
  await waitFor(
    'retries under way at both receivers',
    () =>
      recorded.every(
        (e) => globalReceiver.attempts.filter((a) => a.id === e.id).length >= 2 && streamReceiver.attempts.filter((a) => a.id === e.id).length >= 2,
      ),
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  t.match(await first.metrics(), /tteok_controller_webhook_deliveries_total\{event="stream.live",outcome="failed"\} [1-9]/, 'failed attempts are counted');

  await first.proc.stop('SIGKILL', 1000);
  // From now on each receiver refuses the first two attempts of every event, then accepts.
  globalReceiver.down = false;
  streamReceiver.down = false;
  globalReceiver.failFirst = 2;
  streamReceiver.failFirst = 2;
  t.same(
    ((await getLs('show')).status?.webhookEvents ?? []).map((e) => e.id),
    recorded.map((e) => e.id),
    'the killed controller left the events in the status',
  );

  const second = await startReplica('controller-b');
  await waitFor('the status queue drained', async () => ((await getLs('show')).status?.webhookEvents ?? []).length === 0, {
    timeoutMs: 30_000,
    intervalMs: 200,
  });

  // Deliveries are independent (a retried event may arrive after a later one): receivers order by createdAt.
  // (offline and recording_ready of one run share their createdAt: the same moment.)
  const rank = new Map(['stream.live', 'stream.offline', 'stream.recording_ready', 'stream.key_rotated'].map((type, i) => [type, i]));
  const byCreation = (events: typeof globalReceiver.processed) =>
    [...events].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || rank.get(a.type)! - rank.get(b.type)!);
  for (const [name, receiver] of [
    ['global', globalReceiver],
    ['per-stream', streamReceiver],
  ] as const) {
    t.same(
      receiver.processed.map((e) => e.id).sort(),
      recorded.map((e) => e.id).sort(),
      `${name}: every recorded event arrived, by the ids recorded before the kill, each processed once`,
    );
    t.same(
      byCreation(receiver.processed).map((e) => e.type),
      ['stream.live', 'stream.offline', 'stream.recording_ready', 'stream.key_rotated'],
      `${name}: the event types, in order of createdAt`,
    );
    t.equal(receiver.badSignatures, 0, `${name}: every signature verified with its own key`);
    t.ok(
      recorded.every((e) => receiver.attempts.filter((a) => a.id === e.id && a.status === 200).length >= 1),
      `${name}: each acknowledged`,
    );
    t.comment(`${name}: ${receiver.attempts.length} attempts, ${receiver.duplicates} duplicate deliveries after an acknowledgement`);
  }
  const [live, offline, ready, rotated] = byCreation(globalReceiver.processed);
  t.same(live!.stream, { namespace: NS, name: 'show' }, 'the body names the stream');
  t.equal(live!.data['playbackUrl'], `https://d123.cloudfront.net/${NS}/show/index.m3u8`, 'live: the playback URL');
  t.equal(live!.data['ingestPod'], 'ingest-0', 'live: the ingest pod');
  t.ok(typeof offline!.data['endedAt'] === 'string' && offline!.data['liveSince'] === live!.data['liveSince'], 'offline: when the run began and ended');
  t.equal(ready!.data['playbackUrl'], live!.data['playbackUrl'], 'recording_ready: the VOD playlist URL');
  t.same(rotated!.data, { keyRotation: 1, streamKeySecret: 'show-stream-key' }, 'key_rotated: the rotation, and where the new key is; never the key');
  t.notOk(JSON.stringify(globalReceiver.processed).includes((await getLs('show')).status!.streamKeySha256!), 'no body carries the key hash');

  const metrics = await second.metrics();
  t.match(metrics, /tteok_controller_webhook_deliveries_total\{event="stream.key_rotated",outcome="delivered"\} 2/, 'deliveries counted by event and outcome');
  t.notMatch(metrics, /tteok_controller_webhook_deliveries_total\{[^}]*(namespace|name)=/, 'no per-stream label');
  // Events are recorded in the background, after the status write.
  const events = await waitFor(
    'WebhookFailed and WebhookDelivered Events',
    async () => {
      const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=show' });
      const reasons = list.items.map((e) => e.reason);
      return reasons.includes('WebhookFailed') && reasons.includes('WebhookDelivered') ? list : undefined;
    },
    { timeoutMs: 5000 },
  );
  t.pass('failures and deliveries are Events on the LiveStream');
  t.notOk(
    events.items.some((e) => (e.message ?? '').includes('?')),
    'Event messages carry no query string',
  );
  t.notOk(
    second.proc.lines.some((l) => l.includes(STREAM_KEY) || l.includes(GLOBAL_KEY)),
    'no signing key in the logs',
  );
  await second.proc.stop('SIGTERM', 5000);
});

t.test('two replicas: the standby that takes over delivers what the leader could not', async (t) => {
  globalReceiver.down = true;
  streamReceiver.down = true;
  const a = await startReplica('replica-a');
  const b = await startReplica('replica-b');
  const leader = await waitForOneLeader(a, b, 15_000);
  const standby = leader === a ? b : a;
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: {
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name: 'handover' },
      spec: { webhooks: [{ url: streamReceiver.url, secretRef: { name: 'show-webhook' } }] },
    },
  });
  await waitFor('handover Ready', async () => (await getLs('handover')).status?.phase === 'Ready', { timeoutMs: 15_000, intervalMs: 100 });
  const now = microTime();
  await leases.create(SYSTEM, {
    metadata: { name: claimName('handover'), labels: { 'tteok.dev/claim': 'true', 'tteok.dev/livestream-namespace': NS, 'tteok.dev/livestream': 'handover' } },
    spec: { holderIdentity: 'ingest-0', leaseDurationSeconds: 60, acquireTime: now, renewTime: now },
  });
  const [event] = await waitFor(
    'stream.live pending',
    async () => {
      const e = (await getLs('handover')).status?.webhookEvents ?? [];
      return e.length === 1 && e[0]!.pendingTargets.length === 2 ? e : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  await waitFor('the leader retrying', () => streamReceiver.attempts.filter((x) => x.id === event!.id).length >= 2, { timeoutMs: 10_000, intervalMs: 100 });

  globalReceiver.down = false;
  streamReceiver.down = false;
  globalReceiver.failFirst = 1;
  streamReceiver.failFirst = 1;
  await leader.proc.stop('SIGTERM', 5000); // a clean stop hands the lease over at once
  await waitFor('the status queue drained', async () => ((await getLs('handover')).status?.webhookEvents ?? []).length === 0, {
    timeoutMs: 20_000,
    intervalMs: 100,
  });
  for (const receiver of [globalReceiver, streamReceiver]) {
    t.same(
      receiver.processed.filter((e) => e.stream.name === 'handover').map((e) => [e.id, e.type]),
      [[event!.id, 'stream.live']],
      'the event arrived by the id the old leader recorded, processed once',
    );
  }
  t.ok(
    standby.proc.lines.some((l) => /"msg":"webhook delivered"/.test(l) && l.includes(event!.id)),
    'the new leader delivered it',
  );
  t.equal(globalReceiver.badSignatures + streamReceiver.badSignatures, 0, 'signatures verified');
  await standby.proc.stop('SIGTERM', 5000);
});
