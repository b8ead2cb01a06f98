// The ingest's stream claims (claim Leases) at shutdown, on the real
// kube-apiserver with the chart's ingest RBAC: stop() ends at once what is
// under way, instead of leaving the shutdown to wait for it:
// - a publish waiting for another pod's silence mark (up to the takeover
//   threshold) is refused at once, and the other pod's claim is left alone;
// - with the API server unresponsive (SIGSTOP: a network that swallows
//   packets), a renewal and an acquire in flight end at once, not after the
//   request timeout.
import { mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { claimLeaseName } from '../../../common/kube/contract.ts';
import { LeaseClient, microTime } from '../../../common/kube/lease.ts';
import { createLogger } from '../../../common/log.ts';
import { LeaseStreamClaims } from '../../../ingest/claims/lease-claims.ts';
import { adminWithLiveStreams, chartRoles, serviceAccountKubeconfig } from '../../../harness/kube-fixtures.ts';
import { startKubeApiServer } from '../../../harness/kube.ts';
import { waitFor } from '../../../harness/wait.ts';

const SYSTEM = 'tteok-system';
/** How soon stop() must be done: far below the waits it cuts short (60 s, 20 s). */
const PROMPT_MS = 2000;

const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-lease-claims-'));
const { kc } = await adminWithLiveStreams(kube, [SYSTEM]);
const ingestKc = new KubeConfig();
ingestKc.loadFromFile(await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-ingest', await chartRoles('ingest', SYSTEM)));
const log = createLogger('claims', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');

t.teardown(async () => {
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Calls stop() and polls (bounded) until it has resolved; returns how long it took. */
async function stopPromptly(claims: LeaseStreamClaims): Promise<number> {
  const started = performance.now();
  let tookMs: number | undefined;
  void claims.stop().then(() => (tookMs = performance.now() - started));
  return waitFor('stop() to resolve', () => tookMs, { timeoutMs: PROMPT_MS, intervalMs: 20 });
}

t.test("stop() refuses at once a publish waiting for another pod's silence mark", async (tt) => {
  const ref = { namespace: 'streams', name: 'waiting' };
  // Another pod holds the claim, renewed just now, its media flowing (no silence mark): a publish here waits for the mark.
  const other = new LeaseClient(kc);
  const now = microTime();
  await other.create(SYSTEM, {
    metadata: { name: claimLeaseName(ref) },
    spec: { holderIdentity: 'ingest-1', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now },
  });
  const claims = new LeaseStreamClaims({ kc: ingestKc, log, podName: 'ingest-0', namespace: SYSTEM, leaseDurationSeconds: 15 });
  let result: boolean | 'taken_over' | undefined;
  const acquiring = claims.acquire(ref, { waitForSilenceMs: 60_000 }).then((r) => (result = r));
  // Let it read the claim and start waiting; stop() must end the wait wherever it is.
  await sleep(600);

  const tookMs = await stopPromptly(claims);
  tt.ok(tookMs < PROMPT_MS, `stop() resolved in ${tookMs.toFixed(0)} ms, not at the end of the 60 s wait`);
  await acquiring;
  tt.equal(result, false, 'the publish is refused');
  tt.equal((await other.get(SYSTEM, claimLeaseName(ref)))?.spec?.holderIdentity, 'ingest-1', 'the other pod still holds its claim');
  tt.equal(await claims.acquire({ namespace: 'streams', name: 'later' }), false, 'an acquire after stop() is refused');
  tt.equal(await other.get(SYSTEM, claimLeaseName({ namespace: 'streams', name: 'later' })), undefined, 'and writes no claim');
});

t.test('stop() with the API server unresponsive: a renewal and an acquire in flight end at once', async (tt) => {
  // A 60 s claim: its requests time out after 20 s, far beyond PROMPT_MS.
  const claims = new LeaseStreamClaims({ kc: ingestKc, log, podName: 'ingest-0', namespace: SYSTEM, leaseDurationSeconds: 60 });
  const held = { namespace: 'streams', name: 'held' };
  tt.equal(await claims.acquire(held), true, 'a claim is held');

  kube.apiServer.child.kill('SIGSTOP');
  try {
    // A silence report writes the claim at once: that write now hangs, as does a new acquire's read.
    claims.reportSilence(held, new Date());
    let result: boolean | 'taken_over' | undefined;
    const acquiring = claims.acquire({ namespace: 'streams', name: 'new' }).then((r) => (result = r));
    await sleep(300);

    const tookMs = await stopPromptly(claims);
    tt.ok(tookMs < PROMPT_MS, `stop() resolved in ${tookMs.toFixed(0)} ms, not after the 20 s request timeout`);
    await acquiring;
    tt.equal(result, false, 'the acquire in flight is refused');
  } finally {
    kube.apiServer.child.kill('SIGCONT');
  }
});
