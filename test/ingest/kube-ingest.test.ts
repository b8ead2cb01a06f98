// The ingest in Kubernetes mode, for real: ingest processes with
// TTEOK_KEY_SOURCE=kubernetes (as pods ingest-0 and ingest-1, on a service
// account with exactly the chart's RBAC, which reads no Secret: keys are
// checked against the hash in LiveStream status), the controller, one
// kube-apiserver, and ffmpeg publishing over RTMP. Key rotation refuses the
// old key and accepts the new one; one publisher per stream across pods; a
// dead pod's claim expires and the stream can go live on the other pod;
// deleting a live LiveStream ends its publish.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { rawJson, statusCode } from '../../common/kube/client.ts';
import { startIngestProcess, type IngestProcess } from '../../harness/ingest-process.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { adminWithLiveStreams, chartRoles, serviceAccountKubeconfig, startTestController } from '../../harness/kube-fixtures.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const CLAIM_SECONDS = 3;

const kube = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tteok-kube-ingest-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);

const controller = await startTestController(kc, SYSTEM, {
  TTEOK_CLAIM_LEASE_SECONDS: String(CLAIM_SECONDS),
});

// The ingest runs as its own service account with exactly the RBAC the chart gives it.
const ingestRoles = await chartRoles('ingest', SYSTEM);
const ingestKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-ingest', ingestRoles);

function ingestEnv(pod: string): Record<string, string> {
  return {
    TTEOK_KEY_SOURCE: 'kubernetes',
    KUBECONFIG: ingestKubeconfig,
    TTEOK_POD_NAME: pod,
    TTEOK_POD_NAMESPACE: SYSTEM,
    TTEOK_CLAIM_LEASE_SECONDS: String(CLAIM_SECONDS),
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(dir, pod, 'origin'),
    TTEOK_MEDIA_DIR: join(dir, pod, 'media'),
    TTEOK_RECONNECT_GRACE_SECONDS: '1',
    TTEOK_DELETE_DELAY_SECONDS: '3600',
  };
}
const ingest0: IngestProcess = await startIngestProcess(ingestEnv('ingest-0'));
let ingest1: IngestProcess | undefined;

t.teardown(async () => {
  await stopAll();
  await controller.shutdown();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function createLs(name: string, spec: Record<string, unknown> = {}): Promise<void> {
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec },
  });
}
async function status(name: string): Promise<{ phase?: string; ingestPod?: string; liveSince?: string }> {
  const ls = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as {
    status?: { phase?: string; ingestPod?: string; liveSince?: string };
  };
  return ls.status ?? {};
}
async function keyOf(name: string): Promise<string> {
  const s = await core.readNamespacedSecret({ namespace: NS, name: `${name}-stream-key` });
  return Buffer.from(s.data?.streamKey ?? '', 'base64').toString();
}

t.test('key rotation: the live publish ends, the old key is refused, the new one accepted', async (t) => {
  await createLs('rot', { title: 'Rotation' });
  await waitFor('rot Ready', async () => (await status('rot')).phase === 'Ready', { timeoutMs: 5000, intervalMs: 50 });
  const oldKey = await keyOf('rot');
  let mark = ingest0.proc.lines.length;
  const first = publishTestPattern({ url: ingest0.rtmpUrl(oldKey), name: 'ffmpeg-old-key' });
  await ingest0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark);
  const live = await waitFor(
    'Live on ingest-0',
    async () => {
      const s = await status('rot');
      return s.phase === 'Live' ? s : undefined;
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
  t.equal(live.ingestPod, 'ingest-0', 'status names the pod that holds the claim');

  mark = ingest0.proc.lines.length;
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/rot`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { keyRotation: 1 } },
  });
  const newKey = await waitFor(
    'a new key',
    async () => {
      const k = await keyOf('rot');
      return k !== oldKey ? k : undefined;
    },
    { timeoutMs: 3000, intervalMs: 20 },
  );
  await ingest0.proc.waitForLine(/ending a live publish: its stream key is no longer valid/, 5000, mark);
  t.pass('the live publish on the old key was ended');
  await Promise.race([first.exited, sleep(5000)]);
  await first.stop('SIGKILL', 1000);
  await waitFor('not live any more', async () => (await status('rot')).phase === 'Ready', { timeoutMs: 8000, intervalMs: 100 });

  mark = ingest0.proc.lines.length;
  const retry = publishTestPattern({ url: ingest0.rtmpUrl(oldKey), seconds: 3, name: 'ffmpeg-old-key-again' });
  const refused = await ingest0.proc.waitForLine(/publish refused/, 15_000, mark);
  t.match(refused, /"reason":"unknown_key"/, 'the old key is refused as unknown');
  t.not((await retry.exited).code, 0, 'ffmpeg fails with the old key');
  t.notOk(refused.includes(oldKey) || refused.includes(newKey), 'no key in the log line');

  mark = ingest0.proc.lines.length;
  const fresh = publishTestPattern({ url: ingest0.rtmpUrl(newKey), name: 'ffmpeg-new-key' });
  await ingest0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark);
  t.pass('the new key is accepted');
  await waitFor('Live again', async () => (await status('rot')).phase === 'Live', { timeoutMs: 5000, intervalMs: 50 });
  await fresh.stop('SIGTERM', 3000);
  for (const line of ingest0.proc.lines) if (line.includes(oldKey) || line.includes(newKey)) t.fail(`a key was logged: ${line.slice(0, 80)}`);
});

t.test("one publisher per stream across pods; a dead pod's claim expires", async (t) => {
  ingest1 = await startIngestProcess(ingestEnv('ingest-1'));
  await createLs('solo');
  await waitFor('solo Ready', async () => (await status('solo')).phase === 'Ready', { timeoutMs: 5000, intervalMs: 50 });
  const key = await keyOf('solo');
  // ingest-1 must know the key too before the second publish means anything.
  const mark0 = ingest0.proc.lines.length;
  const onZero = publishTestPattern({ url: ingest0.rtmpUrl(key), name: 'ffmpeg-pod0' });
  await ingest0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark0);
  await waitFor('Live on ingest-0', async () => (await status('solo')).ingestPod === 'ingest-0', { timeoutMs: 5000, intervalMs: 50 });

  let mark1 = ingest1.proc.lines.length;
  const onOne = publishTestPattern({ url: ingest1.rtmpUrl(key), seconds: 3, name: 'ffmpeg-pod1' });
  const refused = await ingest1.proc.waitForLine(/publish refused/, 15_000, mark1);
  t.match(refused, /"reason":"live_elsewhere"/, 'the second publish, on the other pod, is refused');
  t.not((await onOne.exited).code, 0, 'its ffmpeg fails');
  t.equal(onZero.child.exitCode, null, 'the first publisher goes on');

  // ingest-0 dies without a goodbye: its claim is not released, it expires.
  const killedAt = Date.now();
  await ingest0.proc.stop('SIGKILL', 1000);
  await onZero.stop('SIGKILL', 1000);
  mark1 = ingest1.proc.lines.length;
  const early = publishTestPattern({ url: ingest1.rtmpUrl(key), seconds: 2, name: 'ffmpeg-pod1-early' });
  const early1 = await ingest1.proc.waitForLine(/publish (refused|accepted)/, 15_000, mark1);
  t.match(early1, /live_elsewhere/, "refused while the dead pod's claim is still valid");
  await early.exited;

  const taken = await waitFor(
    'the stream to go live on ingest-1',
    async () => {
      const from = ingest1!.proc.lines.length;
      const pub = publishTestPattern({ url: ingest1!.rtmpUrl(key), name: 'ffmpeg-pod1-retry' });
      const line = await ingest1!.proc.waitForLine(/publish (refused|accepted)/, 15_000, from);
      if (/accepted/.test(line)) return pub;
      await pub.stop('SIGKILL', 1000);
      return undefined;
    },
    { timeoutMs: 15_000, intervalMs: 300 },
  );
  const after = (Date.now() - killedAt) / 1000;
  t.ok(after >= CLAIM_SECONDS - 1, `taken over after ${after.toFixed(1)} s (claim lasts ${CLAIM_SECONDS} s)`);
  const s = await waitFor(
    'status names ingest-1',
    async () => {
      const st = await status('solo');
      return st.phase === 'Live' && st.ingestPod === 'ingest-1' ? st : undefined;
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
  t.ok(s.liveSince, 'liveSince set');
  await taken.stop('SIGTERM', 3000);
});

t.test("the ingest's service account cannot read a single Secret", async (t) => {
  await createLs('guarded');
  await waitFor('guarded Ready', async () => (await status('guarded')).phase === 'Ready', { timeoutMs: 5000, intervalMs: 50 });
  const asIngest = new KubeConfig();
  asIngest.loadFromFile(ingestKubeconfig);
  for (const path of [
    '/api/v1/secrets',
    `/api/v1/namespaces/${NS}/secrets`,
    `/api/v1/namespaces/${NS}/secrets/guarded-stream-key`,
    `/api/v1/namespaces/${SYSTEM}/secrets`,
    '/api/v1/secrets?labelSelector=tteok.dev%2Fstream-key%3Dtrue',
  ]) {
    const code = await rawJson(asIngest, path).then(
      () => 200,
      (err: unknown) => statusCode(err),
    );
    t.equal(code, 403, `GET ${path} is forbidden`);
  }
  // And yet it accepts the stream's key.
  const mark = ingest1!.proc.lines.length;
  const pub = publishTestPattern({ url: ingest1!.rtmpUrl(await keyOf('guarded')), name: 'ffmpeg-guarded' });
  await ingest1!.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark);
  t.pass('the key is accepted without the ingest reading the Secret');
  await pub.stop('SIGTERM', 3000);
});

t.test('deleting a live LiveStream ends its publish at once, then the LiveStream goes', async (t) => {
  await createLs('doomed');
  await waitFor('doomed Ready', async () => (await status('doomed')).phase === 'Ready', { timeoutMs: 5000, intervalMs: 50 });
  const key = await keyOf('doomed');
  let mark = ingest1!.proc.lines.length;
  const pub = publishTestPattern({ url: ingest1!.rtmpUrl(key), name: 'ffmpeg-doomed' });
  await ingest1!.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark);
  await waitFor('doomed Live', async () => (await status('doomed')).phase === 'Live', { timeoutMs: 5000, intervalMs: 50 });
  mark = ingest1!.proc.lines.length;
  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'doomed' });
  await ingest1!.proc.waitForLine(/ending a live publish: its stream key is no longer valid/, 5000, mark);
  t.pass('the live publish was ended');
  await waitFor(
    'the LiveStream gone',
    async () => {
      const list = (await custom.listNamespacedCustomObject({ ...GROUP, namespace: NS })) as { items: Array<{ metadata: { name: string } }> };
      return !list.items.some((i) => i.metadata.name === 'doomed');
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  t.equal((await core.listNamespacedSecret({ namespace: NS, fieldSelector: 'metadata.name=doomed-stream-key' })).items.length, 0, 'its key Secret deleted');
  await pub.stop('SIGKILL', 1000);
  mark = ingest1!.proc.lines.length;
  const again = publishTestPattern({ url: ingest1!.rtmpUrl(key), seconds: 2, name: 'ffmpeg-doomed-again' });
  t.match(await ingest1!.proc.waitForLine(/publish (refused|accepted)/, 15_000, mark), /"reason":"unknown_key"/, 'the key is refused');
  await again.exited;
});
