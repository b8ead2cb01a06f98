// stream.recording_ready means what it says, end to end: a real ingest
// process (Kubernetes key source, the chart's RBAC) packages an ffmpeg
// publish into SeaweedFS, the controller in process sends the events, and the
// receiver — as a backend would on stream.recording_ready — reads the VOD
// playlist from the bucket the moment the event arrives: it must be final
// (EXT-X-ENDLIST) with every segment it lists stored.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { parsePlaylist } from '../../harness/hls.ts';
import { startIngestProcess } from '../../harness/ingest-process.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { startS3Server } from '../../harness/s3-server.ts';
import { getObject, headObject } from '../../harness/s3-objects.ts';
import { adminWithLiveStreams, chartRoles, serviceAccountKubeconfig, startTestController } from '../../harness/kube-fixtures.ts';
import { startWebhookReceiver, type ReceivedEvent } from '../../harness/webhook-receiver.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const CLAIM_SECONDS = 3;
const KEY = 'recording-signing-key-0123456789';

const kube = await startKubeApiServer();
const s3 = await startS3Server('tteok-webhooks');
const dir = mkdtempSync(join(tmpdir(), 'tteok-webhooks-ingest-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const receiver = await startWebhookReceiver(KEY);

const controller = await startTestController(kc, SYSTEM, {
  TTEOK_CLAIM_LEASE_SECONDS: String(CLAIM_SECONDS),
  TTEOK_PLAYBACK_BASE_URL: `${s3.endpoint}/${s3.bucket}`,
  TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS: '0.1',
  TTEOK_WEBHOOK_RETRY_MAX_SECONDS: '0.5',
  // The receiver listens on loopback, which the address policy refuses unless allowed.
  TTEOK_WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
});
const ingestKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-ingest', await chartRoles('ingest', SYSTEM));
const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_KEY_SOURCE: 'kubernetes',
  KUBECONFIG: ingestKubeconfig,
  TTEOK_POD_NAME: 'ingest-0',
  TTEOK_POD_NAMESPACE: SYSTEM,
  TTEOK_CLAIM_LEASE_SECONDS: String(CLAIM_SECONDS),
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_RECONNECT_GRACE_SECONDS: '3',
  TTEOK_DELETE_DELAY_SECONDS: '3600',
});
await core.createNamespacedSecret({
  namespace: NS,
  body: { metadata: { name: 'hook-key', labels: { 'tteok.dev/webhook-signing-key': 'true' } }, stringData: { signingKey: KEY } },
});

t.teardown(async () => {
  await stopAll();
  await controller.shutdown();
  await receiver.close();
  await s3.stop();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** What the receiver found in the bucket when each stream.recording_ready arrived. */
const recordings = new Map<string, { ended: boolean; segments: number; missing: string[] }>();
receiver.onEvent = async (event: ReceivedEvent) => {
  if (event.type !== 'stream.recording_ready') return;
  const key = `${event.stream.namespace}/${event.stream.name}/index.m3u8`;
  t.equal(event.data['playbackUrl'], `${s3.endpoint}/${s3.bucket}/${key}`, 'recording_ready names the playlist URL');
  const playlist = parsePlaylist((await getObject(s3.client, s3.bucket, key))?.body.toString('utf8') ?? '');
  const uris = playlist.segments.map((s) => s.uri);
  const missing: string[] = [];
  for (const uri of [...playlist.maps, ...uris])
    if (!(await headObject(s3.client, s3.bucket, `${event.stream.namespace}/${event.stream.name}/${uri}`))) missing.push(uri);
  recordings.set(event.stream.name, { ended: playlist.ended, segments: uris.length, missing });
};

async function createLs(name: string): Promise<string> {
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: {
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name },
      spec: { retention: { keepAfterEnd: true }, webhooks: [{ url: receiver.url, secretRef: { name: 'hook-key' } }] },
    },
  });
  await waitFor(
    `${name} Ready with its key hash`,
    async () => {
      const ls = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as { status?: { phase?: string; streamKeySha256?: string } };
      return ls.status?.phase === 'Ready' && ls.status.streamKeySha256;
    },
    { timeoutMs: 15_000 },
  );
  const s = await core.readNamespacedSecret({ namespace: NS, name: `${name}-stream-key` });
  return Buffer.from(s.data?.streamKey ?? '', 'base64').toString();
}
const typesFor = (name: string) => receiver.processed.filter((e) => e.stream.name === name).map((e) => e.type);

t.test('a publish that ends: recording_ready arrives when the VOD playlist is final in the bucket', async (t) => {
  const key = await createLs('show');
  // The ingest learns the key's hash from its informer; retry the publish until it does.
  await waitFor(
    'a publish accepted',
    async () => {
      const pub = publishTestPattern({ url: ingest.rtmpUrl(key), seconds: 4, name: 'ffmpeg-show' });
      const exit = await pub.exited;
      return exit.code === 0;
    },
    { timeoutMs: 40_000, intervalMs: 500 },
  );
  await waitFor('live, offline and recording_ready delivered', () => typesFor('show').includes('stream.recording_ready'), { timeoutMs: 30_000 });
  t.same(new Set(typesFor('show')), new Set(['stream.live', 'stream.offline', 'stream.recording_ready']), "the run's three events");
  const rec = recordings.get('show')!;
  t.ok(rec.ended, 'the playlist was final (EXT-X-ENDLIST) when the event arrived');
  t.ok(rec.segments >= 3, `it listed the run's segments (${rec.segments})`);
  t.same(rec.missing, [], 'every segment and init segment it lists was stored');
  t.equal(receiver.badSignatures, 0, 'signatures verified');
});

// A dropped publisher: the ingest keeps its claim through the reconnect grace
// period and releases it only once the run's final playlist is stored, so the
// release is the recording's completion here too.
t.test('a dropped publish: recording_ready only once the grace period ended the run', async (t) => {
  const key = await createLs('dropped');
  let pub = publishTestPattern({ url: ingest.rtmpUrl(key), name: 'ffmpeg-dropped' });
  await waitFor(
    'dropped Live',
    async () => {
      const ls = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'dropped' })) as { status?: { phase?: string } };
      if (ls.status?.phase === 'Live') return true;
      const exit = await Promise.race([pub.exited, sleep(200)]);
      if (exit) pub = publishTestPattern({ url: ingest.rtmpUrl(key), name: 'ffmpeg-dropped' }); // refused before the ingest knew the key
      return false;
    },
    { timeoutMs: 40_000, intervalMs: 300 },
  );
  await waitFor('segments stored', async () => Boolean(await getObject(s3.client, s3.bucket, `${NS}/dropped/index.m3u8`)), { timeoutMs: 15_000 });
  await pub.stop('SIGKILL', 1000); // the connection drops: no unpublish
  await waitFor('recording_ready delivered', () => typesFor('dropped').includes('stream.recording_ready'), { timeoutMs: 30_000 });
  t.ok(recordings.get('dropped')!.ended, 'the playlist was final (EXT-X-ENDLIST) when the event arrived');
  t.same(recordings.get('dropped')!.missing, [], 'every segment it lists was stored');
});
