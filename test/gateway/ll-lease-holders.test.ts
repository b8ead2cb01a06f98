// Where the gateway's LL origin finds a live stream in Kubernetes, on the
// real kube-apiserver with the chart's RBAC: ingest pods claim streams with
// the ingest's own LeaseStreamClaims (ingest service account), writing
// tteok.dev/ll-origin from their pod IP; the gateway's LeaseHolders (gateway
// service account: leases get/list/watch, nothing more) follows the claims.
// - a claim names its pod's LL origin, and the gateway resolves it;
// - a released claim resolves to nobody (the origin then answers 404 and the
//   CDN falls back to the object store);
// - a claim whose pod died (no renewal) resolves to nobody once expired,
//   without any event;
// - a pod without TTEOK_POD_IP taking an expired claim over leaves no stale
//   annotation of the previous holder behind;
// - the gateway's service account cannot write Leases.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { ANNOTATION_LL_ORIGIN, claimLeaseName } from '../../common/kube/contract.ts';
import { LeaseClient, microTime } from '../../common/kube/lease.ts';
import { createLogger } from '../../common/log.ts';
import { LeaseHolders } from '../../gateway/low-latency/lease-holders.ts';
import { LeaseStreamClaims } from '../../ingest/claims/lease-claims.ts';
import { adminWithLiveStreams, chartRoles, serviceAccountKubeconfig } from '../../harness/kube-fixtures.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { waitFor } from '../../harness/wait.ts';

const SYSTEM = 'tteok-system';
const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-holders-'));
const { kc } = await adminWithLiveStreams(kube, [SYSTEM]);
const kubeconfigFor = async (component: 'ingest' | 'gateway'): Promise<KubeConfig> => {
  const out = new KubeConfig();
  out.loadFromFile(await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, `tteok-${component}`, await chartRoles(component, SYSTEM)));
  return out;
};
const ingestKc = await kubeconfigFor('ingest');
const gatewayKc = await kubeconfigFor('gateway');
const log = createLogger('ll-holders', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');
const holders = new LeaseHolders({ kc: gatewayKc, namespace: SYSTEM, log });
const admin = new LeaseClient(kc);

t.teardown(async () => {
  await holders.close();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

const WAIT = { timeoutMs: 10_000, intervalMs: 20 };
const holderUrl = (ref: { namespace: string; name: string }) => holders.holderOf(ref)?.id;

await holders.ready();

t.test("a claim names its pod's LL origin; the gateway resolves it, and nobody once released", async (tt) => {
  const ref = { namespace: 'streams', name: 'one' };
  const claims = new LeaseStreamClaims({
    kc: ingestKc,
    log,
    podName: 'ingest-0',
    namespace: SYSTEM,
    leaseDurationSeconds: 15,
    llOrigin: 'http://10.0.0.10:9935',
  });
  tt.teardown(() => claims.stop());
  tt.equal(holderUrl(ref), undefined, 'nobody holds it yet');
  tt.equal(await claims.acquire(ref), true);
  tt.equal(await waitFor('the gateway to see the claim', () => holderUrl(ref), WAIT), 'http://10.0.0.10:9935');
  tt.equal(holders.holderOf(ref), holders.holderOf(ref), 'one source per upstream');
  await claims.release(ref);
  await waitFor('the gateway to see the release', () => holderUrl(ref) === undefined, WAIT);
  tt.pass('released: no holder');

  const other = new LeaseStreamClaims({
    kc: ingestKc,
    log,
    podName: 'ingest-1',
    namespace: SYSTEM,
    leaseDurationSeconds: 15,
    llOrigin: 'http://[fd00::11]:9935',
  });
  tt.teardown(() => other.stop());
  tt.equal(await other.acquire(ref), true);
  tt.equal(await waitFor('the new holder', () => holderUrl(ref), WAIT), 'http://[fd00::11]:9935', 'the next holder, IPv6');
  await other.release(ref);
});

t.test('a dead pod: its claim resolves to nobody once expired; a pod without a pod IP leaves no stale origin', async (tt) => {
  const ref = { namespace: 'streams', name: 'two' };
  const dying = new LeaseStreamClaims({
    kc: ingestKc,
    log,
    podName: 'ingest-0',
    namespace: SYSTEM,
    leaseDurationSeconds: 2,
    llOrigin: 'http://10.0.0.10:9935',
  });
  tt.equal(await dying.acquire(ref), true);
  tt.equal(await waitFor('the gateway to see the claim', () => holderUrl(ref), WAIT), 'http://10.0.0.10:9935');
  dying.abandonAll(); // as a killed pod: no renewal, no release
  await waitFor('the claim to expire at the gateway', () => holderUrl(ref) === undefined, WAIT);
  tt.pass('expired: no holder, though the Lease is still there');
  tt.ok(await admin.get(SYSTEM, claimLeaseName(ref)), 'the Lease itself is still there');

  const noIp = new LeaseStreamClaims({ kc: ingestKc, log, podName: 'ingest-1', namespace: SYSTEM, leaseDurationSeconds: 15 });
  tt.teardown(() => noIp.stop());
  tt.equal(await noIp.acquire(ref), true, 'the expired claim is taken over');
  const lease = await admin.get(SYSTEM, claimLeaseName(ref));
  tt.equal(lease?.spec?.holderIdentity, 'ingest-1');
  tt.equal(lease?.metadata.annotations?.[ANNOTATION_LL_ORIGIN], undefined, "the previous holder's origin is gone");
  // Watch events come in order: once a later claim is seen, so is the takeover.
  const marker = { namespace: 'streams', name: 'marker' };
  const later = new LeaseStreamClaims({
    kc: ingestKc,
    log,
    podName: 'ingest-2',
    namespace: SYSTEM,
    leaseDurationSeconds: 15,
    llOrigin: 'http://10.0.0.12:9935',
  });
  tt.teardown(() => later.stop());
  tt.equal(await later.acquire(marker), true);
  await waitFor('the gateway to see a later claim', () => holderUrl(marker), WAIT);
  tt.equal(holderUrl(ref), undefined, 'held, but with no LL origin: nobody to ask');
});

t.test("the gateway's service account reads Leases and writes none", async (tt) => {
  const gatewayLeases = new LeaseClient(gatewayKc);
  const now = microTime();
  await tt.rejects(
    gatewayLeases.create(SYSTEM, {
      metadata: { name: claimLeaseName({ namespace: 'streams', name: 'forged' }) },
      spec: { holderIdentity: 'gateway', acquireTime: now, renewTime: now },
    }),
    /403|forbidden/i,
  );
});
