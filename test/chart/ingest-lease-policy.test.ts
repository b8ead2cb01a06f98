// The internet-facing ingest cannot stop the control plane (issue 17, item
// 7), on a real kube-apiserver with the chart's RBAC and the chart's
// ValidatingAdmissionPolicy: a controller holds its leader Lease (real leader
// election), and the ingest's service account, with tokens bound to Pods
// ingest-0 and ingest-1 as a real Pod's are, tries what a compromised ingest
// would. `kubectl auth can-i` shows what RBAC alone grants (any Lease of the
// release namespace, by any name: it cannot name them in advance); the API
// server's answers show what the policy leaves of it: its own claims only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeHttpError } from '../../common/kube/client.ts';
import { LeaseClient, microTime, type LeaseObject } from '../../common/kube/lease.ts';
import { adminWithLiveStreams, chartIngestAccess, startTestController } from '../../harness/kube-fixtures.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { waitFor } from '../../harness/wait.ts';
import { run, tool } from '../../harness/chart-tools.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const LEADER_LEASE = 'tteok-controller';

const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-lease-policy-'));
const { kc } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const controller = await startTestController(kc, SYSTEM, { TTEOK_LEADER_ELECTION: 'true', TTEOK_POD_NAME: 'controller-0' });
const kubeconfigs = await chartIngestAccess(kc, kube.kubeconfigPath, dir, SYSTEM, ['ingest-0', 'ingest-1']);
t.teardown(async () => {
  await controller.shutdown();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = new LeaseClient(kc);
const asPod = (pod: string) => {
  const k = new KubeConfig();
  k.loadFromFile(kubeconfigs[pod]!);
  return new LeaseClient(k);
};
const ingest0 = asPod('ingest-0');
const ingest1 = asPod('ingest-1');
const unbound = asPod('');
const kubectl = (...args: string[]) => run(tool('kubectl'), args);
/** The API server's refusal of `op`: its status code and message (undefined when it was allowed). */
async function refusal(op: Promise<unknown>): Promise<{ status: number; message: string } | undefined> {
  try {
    await op;
    return undefined;
  } catch (err) {
    if (err instanceof KubeHttpError) return { status: err.statusCode, message: err.message };
    throw err;
  }
}
/**
 * The ingest's replace of the leader Lease, read fresh each time: the running
 * controller renews it every few seconds, and a replace carrying a stale
 * resourceVersion gets 409 before admission runs. A conflict is tried again
 * (bounded), so the answer is the policy's, not the race's.
 */
async function replaceRefusal(change: (lease: LeaseObject) => LeaseObject): Promise<{ status: number; message: string } | undefined> {
  let answer: { status: number; message: string } | undefined;
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await admin.get(SYSTEM, LEADER_LEASE);
    answer = await refusal(ingest0.replace(SYSTEM, change(current!)));
    if (answer?.status !== 409) return answer;
  }
  return answer;
}
const claim = (name: string, holder: string): LeaseObject => {
  const now = microTime();
  return {
    metadata: { name, labels: { 'tteok.dev/claim': 'true' } },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: now, renewTime: now },
  };
};

await waitFor('the controller to lead', () => controller.isLeader || undefined, { timeoutMs: 20_000 });

t.test('kubectl auth can-i: RBAC gives the ingest Leases of its namespace only, and no list, watch, patch or deletecollection', async (t) => {
  const can = async (verb: string, ns: string) => {
    const r = await kubectl(
      '--kubeconfig',
      kube.kubeconfigPath,
      'auth',
      'can-i',
      verb,
      'leases.coordination.k8s.io',
      '-n',
      ns,
      `--as=system:serviceaccount:${SYSTEM}:tteok-ingest`,
    );
    if (!['yes', 'no'].includes(r.stdout.trim())) throw new Error(`kubectl auth can-i: ${r.stdout}${r.stderr}`);
    return r.stdout.trim() === 'yes';
  };
  for (const verb of ['get', 'create', 'update', 'delete'])
    t.ok(await can(verb, SYSTEM), `may ${verb} Leases in ${SYSTEM} (its claims; the policy narrows which)`);
  for (const verb of ['list', 'watch', 'patch', 'deletecollection']) t.notOk(await can(verb, SYSTEM), `may not ${verb} Leases in ${SYSTEM}`);
  for (const verb of ['get', 'create', 'update', 'delete']) t.notOk(await can(verb, NS), `may not ${verb} Leases in ${NS}`);
  // RBAC alone would also allow this one, by name: what the admission policy is for.
  const byName = await kubectl(
    '--kubeconfig',
    kube.kubeconfigPath,
    'auth',
    'can-i',
    'delete',
    `leases.coordination.k8s.io/${LEADER_LEASE}`,
    '-n',
    SYSTEM,
    `--as=system:serviceaccount:${SYSTEM}:tteok-ingest`,
  );
  t.equal(byName.stdout.trim(), 'yes', 'RBAC cannot tell the leader Lease from a claim (the reason for the policy)');
});

t.test("the ingest cannot update, delete or take the controller's leader Lease", async (t) => {
  const before = await admin.get(SYSTEM, LEADER_LEASE);
  t.equal(before?.spec?.holderIdentity, 'controller-0', 'the controller holds its Lease');
  const del = await kubectl('--kubeconfig', kubeconfigs['ingest-0']!, 'delete', 'lease', LEADER_LEASE, '-n', SYSTEM);
  t.not(del.code, 0, "kubectl delete, with the ingest pod's own token: refused");
  t.match(del.stderr, /may write only stream claim Leases/, "kubectl shows the policy's reason");
  const take = await replaceRefusal((lease) => ({ ...lease, spec: { ...lease.spec, holderIdentity: 'ingest-0' } }));
  t.equal(take?.status, 403, 'taking the leader Lease over: 403');
  t.match(take?.message, /may write only stream claim Leases/);
  const release = await replaceRefusal((lease) => ({ ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1 } }));
  t.equal(release?.status, 403, 'releasing it: 403');
  t.equal((await refusal(ingest0.delete(SYSTEM, LEADER_LEASE)))?.status, 403, 'deleting it: 403');
  t.equal((await refusal(ingest0.create(SYSTEM, claim('tteok-controller-2', 'ingest-0'))))?.status, 403, 'creating a Lease that is not a claim: 403');
  const after = await admin.get(SYSTEM, LEADER_LEASE);
  t.equal(after?.spec?.holderIdentity, 'controller-0', 'the controller still holds it');
  t.ok(controller.isLeader, 'and still leads');
});

t.test('claims: each pod creates, renews, takes over and deletes claims only as itself', async (t) => {
  const name = `claim.${NS}.show`;
  const forOther = await refusal(ingest0.create(SYSTEM, claim(name, 'ingest-1')));
  t.equal(forOther?.status, 403, 'ingest-0 cannot create a claim held by ingest-1');
  t.match(forOther?.message, /only with its own Pod as holderIdentity/);
  t.equal((await refusal(unbound.create(SYSTEM, claim(name, 'ingest-0'))))?.status, 403, 'a token bound to no Pod writes no claim');
  const created = await ingest0.create(SYSTEM, claim(name, 'ingest-0'));
  t.equal(created.spec?.holderIdentity, 'ingest-0', 'ingest-0 claims the stream');
  const renewed = await ingest0.replace(SYSTEM, {
    ...created,
    metadata: { ...created.metadata, annotations: { 'tteok.dev/media-silent-since': new Date().toISOString() } },
    spec: { ...created.spec, renewTime: microTime() },
  });
  t.ok(renewed, 'ingest-0 renews it and marks it silent');
  t.equal((await refusal(ingest1.delete(SYSTEM, name)))?.status, 403, "ingest-1 cannot delete ingest-0's claim");
  const stolenFor0 = await refusal(ingest1.replace(SYSTEM, { ...renewed, spec: { ...renewed.spec, renewTime: microTime() } }));
  t.equal(stolenFor0?.status, 403, "ingest-1 cannot write ingest-0's claim as ingest-0");
  const takenOver = await ingest1.replace(SYSTEM, {
    ...renewed,
    spec: { ...renewed.spec, holderIdentity: 'ingest-1', acquireTime: microTime(), renewTime: microTime() },
  });
  t.equal(takenOver.spec?.holderIdentity, 'ingest-1', 'ingest-1 takes the claim over, for itself');
  t.equal((await refusal(ingest0.delete(SYSTEM, name)))?.status, 403, 'ingest-0 can no longer delete it');
  t.equal(await ingest1.delete(SYSTEM, name, takenOver.metadata.resourceVersion), true, 'its holder releases it');
});
