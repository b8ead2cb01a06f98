// The controller as it runs in a pod: `tteok controller` child processes on
// one kube-apiserver, with a service account holding exactly the RBAC the
// chart gives it. Killed mid-way and restarted, it converges with one Secret
// per LiveStream; two replicas elect one leader, and the other takes over
// when the leader stops (at once on SIGTERM, after the lease on SIGKILL).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import { adminWithLiveStreams, chartRoles, serviceAccountKubeconfig, startControllerProcess, waitForOneLeader } from '../../harness/kube-fixtures.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };

const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-controller-proc-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);

// The controller runs as its own service account with exactly the RBAC the chart gives it.
const controllerKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-controller', await chartRoles('controller', SYSTEM));

t.teardown(async () => {
  await stopAll();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

const startReplica = (name: string) => startControllerProcess(name, controllerKubeconfig, SYSTEM);

async function createLs(name: string): Promise<void> {
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec: { title: name } },
  });
}
async function allReady(names: string[]): Promise<boolean> {
  const list = (await custom.listNamespacedCustomObject({ ...GROUP, namespace: NS })) as {
    items: Array<{ metadata: { name: string }; status?: { phase?: string } }>;
  };
  const ready = new Set(list.items.filter((i) => i.status?.phase === 'Ready').map((i) => i.metadata.name));
  return names.every((n) => ready.has(n));
}
async function keySecrets(): Promise<Array<{ name: string; owner: string | undefined; livestream: string | undefined }>> {
  const list = await core.listNamespacedSecret({ namespace: NS, labelSelector: 'tteok.dev/stream-key=true' });
  return list.items.map((s) => ({
    name: s.metadata!.name!,
    owner: s.metadata?.ownerReferences?.[0]?.uid,
    livestream: s.metadata?.labels?.['tteok.dev/livestream'],
  }));
}

t.test('killed mid-way and restarted, the controller converges with no duplicate Secrets', async (t) => {
  const first = await startReplica('controller-a');
  await waitFor('controller-a leads', () => first.leader(), { timeoutMs: 10_000, intervalMs: 100 });
  const names = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, '0')}`);
  const creating = Promise.all(names.map((n) => createLs(n)));
  await waitFor('some Secrets made', async () => (await keySecrets()).length >= 5, { timeoutMs: 15_000, intervalMs: 20 });
  await first.proc.stop('SIGKILL', 1000);
  await creating;
  const before = (await keySecrets()).length;
  t.ok(before < names.length, `killed with ${before} of ${names.length} Secrets made`);

  const second = await startReplica('controller-b');
  const started = Date.now();
  await waitFor('every LiveStream Ready', () => allReady(names), { timeoutMs: 30_000, intervalMs: 200 });
  t.pass(`converged ${((Date.now() - started) / 1000).toFixed(1)} s after the restart (the dead leader's 3 s lease had to expire first)`);
  const secrets = await keySecrets();
  t.equal(secrets.length, names.length, 'exactly one key Secret per LiveStream');
  t.same(secrets.map((s) => s.livestream).sort(), names, 'each names its LiveStream');
  const list = (await custom.listNamespacedCustomObject({ ...GROUP, namespace: NS })) as {
    items: Array<{ metadata: { name: string; uid: string; finalizers?: string[] } }>;
  };
  const uids = new Map(list.items.map((i) => [i.metadata.name, i.metadata.uid]));
  t.ok(
    secrets.every((s) => s.owner === uids.get(s.livestream!)),
    'each is owned by its LiveStream',
  );
  t.ok(
    list.items.every((i) => i.metadata.finalizers?.filter((f) => f === 'tteok.dev/cleanup').length === 1),
    'one finalizer each',
  );
  t.notOk(
    second.proc.lines.some((l) => /"level":"(error|fatal)"/.test(l)),
    'no errors logged',
  );
  await second.proc.stop('SIGTERM', 5000);
});

t.test('two replicas: one leader; the other takes over when it stops', async (t) => {
  const a = await startReplica('replica-a');
  const b = await startReplica('replica-b');
  const leader = await waitForOneLeader(a, b, 10_000);
  const standby = leader === a ? b : a;
  await createLs('failover-1');
  await waitFor('reconciled by the leader', () => allReady(['failover-1']), { timeoutMs: 5000, intervalMs: 50 });
  t.notOk(await standby.leader(), 'the standby does not act');
  t.notOk(
    standby.proc.lines.some((l) => /stream key allocated/.test(l)),
    'the standby made no Secret',
  );

  // A clean stop releases the lease: the standby takes over at once.
  const stoppedAt = Date.now();
  await leader.proc.stop('SIGTERM', 5000);
  await waitFor('the standby leads', () => standby.leader(), { timeoutMs: 5000, intervalMs: 50 });
  t.ok(Date.now() - stoppedAt < 2500, `took over ${Date.now() - stoppedAt} ms after the leader stopped`);
  await createLs('failover-2');
  await waitFor('reconciled by the new leader', () => allReady(['failover-2']), { timeoutMs: 5000, intervalMs: 50 });
  t.ok(
    standby.proc.lines.some((l) => /stream key allocated/.test(l)),
    'the new leader acts',
  );
  await standby.proc.stop('SIGTERM', 5000);
});
