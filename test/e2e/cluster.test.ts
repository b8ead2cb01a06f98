// End to end, as a user meets tteok: `helm install` of charts/tteok on a real
// single-node cluster (harness/cluster.ts: kubelet, containerd, kube-proxy,
// controller-manager, scheduler) running the image built from the repository's
// Dockerfile (test/tools/build-image.sh), SeaweedFS on the host as the bucket.
//
// - every pod of the release is Ready (uid 10001, read-only root filesystem,
//   the probes on the ports the chart declares, the emptyDir media volume);
// - a LiveStream applied with kubectl; its key read from its Secret as README says;
// - ffmpeg publishes through the ingest Service's 1935 port (a NodePort on
//   127.0.0.1) to an ingest pod; the gateway, through its Service, answers the
//   lookup with the playback URL and live: true; the playlist and segments are
//   in the bucket;
// - /metrics of all three roles answer through their Services with every
//   metric the Grafana dashboard queries;
// - the ingest pod holding the stream is deleted: the publisher reconnects (as
//   OBS does) through the Service, the other ingest pod takes the stream, it is
//   live again and ffmpeg decodes what is stored. That the playlist continues
//   after a discontinuity is asserted as a TODO: not implemented across pods;
// - a LiveStream with spec.renditions: ["360p"]: the transcoder pod (the
//   image's ffmpeg, reached only from the ingest) encodes it; index.m3u8 in the
//   bucket becomes a multivariant playlist naming source and 360p, ffprobe
//   decodes the 360p rendition (360 lines) and thumbnail.jpg (a JPEG) from the
//   bucket, the status reports both;
// - `helm uninstall` leaves the CRD and no pods.
//
// `make e2e` runs this file alone (it needs root, and `make deps-e2e`).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify as stringifyYaml } from 'yaml';
import { startTestCluster, type TestCluster } from '../../harness/cluster.ts';
import { parsePlaylist, type ParsedPlaylist } from '../../harness/hls.ts';
import { stopAll, type ManagedProcess } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { getObject, listKeys } from '../../harness/s3-objects.ts';
import { parseMediaPlaylist } from '../../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../common/multivariant-playlist.ts';
import { startS3Server, TEST_ACCESS_KEY, TEST_SECRET_KEY, type S3TestServer } from '../../harness/s3-server.ts';
import { waitFor } from '../../harness/wait.ts';
import { CACHE, CHART, ROOT, run, runOk, tool } from '../../harness/chart-tools.ts';

// A cold image build and cluster start take minutes on 2 cores.
t.setTimeout(20 * 60_000);

const RELEASE = 'tteok';
const NS = 'tteok';
const STREAMS_NS = 'streams';
const STREAM = 'demo';
const IMAGE_ARCHIVE = join(CACHE, 'images', 'tteok-e2e.tar');
/** The transcoder Service's fixed ClusterIP (harness/cluster.ts serves 10.0.0.0/24; .1 is the kubernetes Service). */
const TRANSCODER_IP = '10.0.0.12';
/** Short, so a publish after the holding pod's death gets the stream soon. */
const CLAIM_LEASE_SECONDS = 4;

const dir = await mkdtemp(join(tmpdir(), 'tteok-e2e-'));
let cluster: TestCluster | undefined;
let s3: S3TestServer | undefined;
const cleanUp = async () => {
  await stopAll();
  // Everything the node made on the host goes, even after a failure.
  await cluster?.stop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
};
t.teardown(cleanUp);

// The image first (cached layers after the first build), then the cluster.
// A failure here is not a subtest's: undo everything before rethrowing.
let s3ForPods = '';
try {
  await runOk('bash', [join(ROOT, 'test/tools/build-image.sh'), 'pause', 'tteok'], { timeoutMs: 15 * 60_000 });
  s3 = await startS3Server('tteok-e2e');
  cluster = await startTestCluster();
  await cluster.importImage(IMAGE_ARCHIVE);
  s3ForPods = `http://${cluster.hostAddress}:${await cluster.exposeToPods(Number(new URL(s3.endpoint).port))}`;
} catch (error) {
  await cleanUp();
  throw error;
}
const c = cluster;

const kubectl = (...args: string[]) => run(tool('kubectl'), ['--kubeconfig', c.kubeconfigPath, ...args]);
const kubectlOk = (...args: string[]) => runOk(tool('kubectl'), ['--kubeconfig', c.kubeconfigPath, ...args]);
const helmEnv = { HELM_CACHE_HOME: join(dir, 'helm-cache'), HELM_CONFIG_HOME: join(dir, 'helm-config'), HELM_DATA_HOME: join(dir, 'helm-data') };
const helmOk = (...args: string[]) => runOk(tool('helm'), ['--kubeconfig', c.kubeconfigPath, ...args], { env: helmEnv, timeoutMs: 600_000 });
const getJson = async <T>(...args: string[]): Promise<T> => JSON.parse(await kubectlOk('get', ...args, '-o', 'json')) as T;

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  status: { podIP?: string; phase?: string; conditions?: Array<{ type: string; status: string }> };
}
interface Service {
  spec: { clusterIP: string; ports: Array<{ name: string; port: number; nodePort?: number }> };
}
interface EndpointSlice {
  endpoints?: Array<{ addresses: string[]; targetRef?: { name: string } }>;
  ports?: Array<{ name: string; port: number }>;
}

const component = (p: Pod) => p.metadata.labels?.['app.kubernetes.io/component'];
const ready = (p: Pod) => p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false;

async function releasePods(): Promise<Pod[]> {
  return (await getJson<{ items: Pod[] }>('pods', '-n', NS)).items;
}

async function lookup(): Promise<{ status: number; body: { live?: boolean; playbackUrl?: string; phase?: string } }> {
  const svc = await getJson<Service>('service', '-n', NS, `${RELEASE}-gateway`);
  const port = svc.spec.ports.find((p) => p.name === 'http')!.port;
  const res = await fetch(`http://${svc.spec.clusterIP}:${port}/v1/streams/${STREAMS_NS}/${STREAM}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as { live?: boolean; playbackUrl?: string } };
}

async function livestreamStatus(): Promise<{ phase?: string; ingestPod?: string }> {
  return (await getJson<{ status?: { phase?: string; ingestPod?: string } }>('livestream', '-n', STREAMS_NS, STREAM)).status ?? {};
}

const playlistKey = `${STREAMS_NS}/${STREAM}/index.m3u8`;
async function storedPlaylist(): Promise<ParsedPlaylist | undefined> {
  const o = await getObject(s3!.client, s3!.bucket, playlistKey);
  return o ? parsePlaylist(o.body.toString('utf8')) : undefined;
}
const sessionOf = (uri: string) => uri.split('/')[0]!;

/** RTMP through the ingest Service's NodePort on loopback, as OBS would use the Service's address. */
async function rtmpUrl(key: string): Promise<string> {
  const svc = await getJson<Service>('service', '-n', NS, `${RELEASE}-ingest`);
  const port = svc.spec.ports.find((p) => p.name === 'rtmp')!;
  return `rtmp://127.0.0.1:${port.nodePort}/live/${key}`;
}

t.test('helm install: every pod of the release is Ready', async (tt) => {
  await kubectlOk('create', 'namespace', NS);
  await kubectlOk('create', 'namespace', STREAMS_NS);
  // S3 credentials in a Secret of the user's (values never hold keys).
  await kubectlOk(
    'create',
    'secret',
    'generic',
    'tteok-s3',
    '-n',
    NS,
    `--from-literal=AWS_ACCESS_KEY_ID=${TEST_ACCESS_KEY}`,
    `--from-literal=AWS_SECRET_ACCESS_KEY=${TEST_SECRET_KEY}`,
  );
  const values = {
    image: { registry: '', repository: 'tteok', tag: 'e2e', pullPolicy: 'Never' },
    s3: { bucket: s3!.bucket, endpoint: s3ForPods, forcePathStyle: true, credentials: { existingSecret: 'tteok-s3' } },
    cdn: { baseUrl: `${s3ForPods}/${s3!.bucket}` },
    ingest: {
      replicas: 2,
      autoscaling: { enabled: false },
      claimLeaseSeconds: CLAIM_LEASE_SECONDS,
      reconnectGraceSeconds: 5,
      terminationGracePeriodSeconds: 20,
      shutdownTimeoutSeconds: 10,
      service: { type: 'NodePort' },
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
    },
    controller: { resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } } },
    gateway: { resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } } },
    // One pod, sized down to fit this node beside the rest: 2 jobs × 1 rendition × 0.1 core. This node
    // runs no cluster DNS: the Service gets a fixed address (in the static band of 10.0.0.0/24) the ingest uses.
    transcoder: {
      replicas: 1,
      maxJobs: 2,
      renditionsPerJob: 1,
      cpuPerRendition: 0.1,
      memoryPerJobMiB: 256,
      service: { clusterIP: TRANSCODER_IP },
      url: `http://${TRANSCODER_IP}`,
    },
  };
  const valuesFile = join(dir, 'values.yaml');
  await writeFile(valuesFile, stringifyYaml(values));
  await helmOk('install', RELEASE, CHART, '-n', NS, '-f', valuesFile);
  const pods = await waitFor(
    'every pod of the release Ready',
    async () => {
      const all = await releasePods();
      return all.length === 7 && all.every(ready) ? all : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 2000 },
  ).catch(async (error: Error) => {
    const describe = await kubectl('describe', 'pods', '-n', NS);
    const logs = await kubectl('logs', '-n', NS, '--all-containers', '--prefix', '--tail=20', '-l', 'app.kubernetes.io/instance=tteok');
    throw new Error(`${error.message}\n${describe.stdout.slice(-6000)}\n${logs.stdout.slice(-4000)}${logs.stderr}`);
  });
  tt.same(
    pods.map(component).sort(),
    ['controller', 'controller', 'gateway', 'gateway', 'ingest', 'ingest', 'transcoder'],
    'two controllers, two gateways, two ingest pods, a transcoder',
  );
  const uids = await kubectlOk('get', 'pods', '-n', NS, '-o', 'jsonpath={range .items[*]}{.spec.containers[0].securityContext.runAsUser}{"\\n"}{end}');
  tt.same([...new Set(uids.trim().split('\n'))], ['10001'], 'every container runs as uid 10001');
});

let key = '';
let firstSession = '';
let publisher: ManagedProcess | undefined;

t.test('a LiveStream: ffmpeg publishes through the Service; the gateway says live; the bucket has the playlist', async (tt) => {
  await runOk(tool('kubectl'), ['--kubeconfig', c.kubeconfigPath, 'apply', '-f', '-'], {
    input: stringifyYaml({
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name: STREAM, namespace: STREAMS_NS },
      spec: { title: 'End to end', retention: { keepAfterEnd: true } },
    }),
  });
  await waitFor('the LiveStream Ready', async () => (await livestreamStatus()).phase === 'Ready', { timeoutMs: 60_000, intervalMs: 500 });
  // README: kubectl get secret demo-stream-key -o jsonpath='{.data.streamKey}' | base64 -d
  key = Buffer.from(await kubectlOk('get', 'secret', `${STREAM}-stream-key`, '-n', STREAMS_NS, '-o', 'jsonpath={.data.streamKey}'), 'base64').toString();
  tt.match(key, /^[A-Za-z0-9_-]{16,128}$/, 'the Secret holds a stream key');

  publisher = publishTestPattern({ url: await rtmpUrl(key), name: 'ffmpeg-obs' });
  const live = await waitFor(
    'the gateway to say live',
    async () => {
      const r = await lookup();
      return r.status === 200 && r.body.live === true ? r.body : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.equal(live.playbackUrl, `${s3ForPods}/${s3!.bucket}/${playlistKey}`, 'the lookup answers with the playback URL under the CDN base URL');
  const p = await waitFor(
    'three segments in the bucket',
    async () => {
      const pl = await storedPlaylist();
      return pl && pl.segments.length >= 3 ? pl : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.notOk(p.ended, 'the stored playlist is live');
  const keys = await listKeys(s3!.client, s3!.bucket, `${STREAMS_NS}/${STREAM}/`);
  for (const seg of p.segments.slice(0, 3)) tt.ok(keys.includes(`${STREAMS_NS}/${STREAM}/${seg.uri}`), `segment ${seg.uri} is in the bucket`);
  firstSession = sessionOf(p.segments[0]!.uri);
  const st = await livestreamStatus();
  tt.equal(st.phase, 'Live', 'the LiveStream is Live');
  tt.match(st.ingestPod ?? '', /^tteok-ingest-[01]$/, `held by an ingest pod (${st.ingestPod})`);
});

t.test('/metrics of all three roles answer through their Services with what the dashboard queries', async (tt) => {
  const dashboard = JSON.parse(await readFile(join(CHART, 'files/grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  const names = new Set(dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((q) => q.expr.match(/tteok_[a-z_]+/g) ?? [])));
  const base = (n: string) => n.replace(/_(bucket|count|sum)$/, '');
  const byRole: Record<string, string[]> = { ingest: [], gateway: [], controller: [] };
  for (const n of names) byRole[n.split('_')[1]!]?.push(base(n));
  // Each role's metrics Service, as a ServiceMonitor selects them (label tteok.dev/metrics), and its endpoints.
  for (const [role, service] of [
    ['ingest', `${RELEASE}-ingest-headless`],
    ['gateway', `${RELEASE}-gateway`],
    ['controller', `${RELEASE}-controller`],
  ] as const) {
    const slices = (await getJson<{ items: EndpointSlice[] }>('endpointslices', '-n', NS, '-l', `kubernetes.io/service-name=${service}`)).items;
    const port = slices.flatMap((s) => s.ports ?? []).find((p) => p.name === 'http-metrics')?.port;
    const addresses = slices.flatMap((s) => s.endpoints ?? []).flatMap((e) => e.addresses);
    tt.ok(port && addresses.length === 2, `${service} has an http-metrics port and two endpoints`);
    for (const address of addresses) {
      const res = await fetch(`http://${address}:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      tt.equal(res.status, 200, `${role} ${address}: /metrics answers`);
      const missing = [...new Set(byRole[role])].filter((n) => !new RegExp(`^# TYPE ${n} `, 'm').test(text));
      tt.same(missing, [], `${role} ${address}: exports every ${role} metric the dashboard queries`);
    }
  }
  // And the gateway's metrics through its ClusterIP, as a Service is addressed.
  const svc = await getJson<Service>('service', '-n', NS, `${RELEASE}-gateway`);
  const res = await fetch(`http://${svc.spec.clusterIP}:${svc.spec.ports.find((p) => p.name === 'http-metrics')!.port}/metrics`, {
    signal: AbortSignal.timeout(5000),
  });
  tt.equal(res.status, 200, "the gateway Service's http-metrics port answers");
});

t.test('the ingest pod holding the stream is deleted: the publisher reconnects to the other one; the playlist continues after a discontinuity', async (tt) => {
  const holder = (await livestreamStatus()).ingestPod!;
  const before = (await storedPlaylist())!;
  await kubectlOk('delete', 'pod', holder, '-n', NS, '--wait=false');
  // ffmpeg's connection ends with the pod; OBS reconnects every few seconds until it is live again.
  await waitFor('the publisher to notice', () => publisher!.child.exitCode !== null || publisher!.child.signalCode !== null, {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  await publisher!.stop('SIGKILL', 1000);
  const url = await rtmpUrl(key);
  const other = holder.endsWith('-0') ? holder.replace(/-0$/, '-1') : holder.replace(/-1$/, '-0');
  let attempt = 0;
  const newHolder = await waitFor(
    'a reconnecting publisher to be live again',
    async () => {
      if (!publisher || publisher.child.exitCode !== null) publisher = publishTestPattern({ url, name: `ffmpeg-obs-reconnect-${++attempt}` });
      const st = await livestreamStatus();
      return st.phase === 'Live' && st.ingestPod && st.ingestPod !== holder ? st.ingestPod : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 1000 },
  );
  tt.equal(newHolder, other, `the other ingest pod (${other}) has the stream`);
  const after = await waitFor(
    'three segments of the new run in the playlist',
    async () => {
      const pl = await storedPlaylist();
      return pl && pl.segments.filter((s) => sessionOf(s.uri) !== firstSession).length >= 3 ? pl : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.notOk(after.ended, 'the playlist is live');
  const firstNew = after.segments.findIndex((s) => sessionOf(s.uri) !== firstSession);
  // The deleted pod handed the run over (SIGTERM with claims): the other pod continues the stored playlist.
  tt.ok(firstNew > 0 && after.segments.slice(0, firstNew).some((s) => sessionOf(s.uri) === firstSession), "the earlier run's segments are still in it");
  tt.ok(firstNew >= 0 && after.segments[firstNew]!.discontinuity, 'the new run starts after an EXT-X-DISCONTINUITY');
  tt.ok(firstNew > 0 && after.segments[firstNew]!.sequence > before.segments.at(-1)!.sequence, 'media sequence numbers go on');
  const live = await lookup();
  tt.equal(live.body.live, true, 'the gateway says live');

  // The publisher stops; the playlist ends; ffmpeg decodes all of it, across the discontinuity.
  await publisher!.stop('SIGTERM', 5000);
  await waitFor('EXT-X-ENDLIST', async () => (await storedPlaylist())?.ended, { timeoutMs: 60_000, intervalMs: 500 });
  const decode = await run('ffmpeg', ['-v', 'error', '-i', `${s3!.endpoint}/${s3!.bucket}/${playlistKey}`, '-f', 'null', '-']);
  tt.equal(decode.code, 0, 'ffmpeg decodes the stored stream');
  tt.equal(decode.stderr.trim(), '', 'with no error');
});

t.test('spec.renditions: ["360p"]: the transcoder pod encodes it; the bucket has the ladder and a thumbnail, ffprobe decodes both', async (tt) => {
  const name = 'ladder';
  await runOk(tool('kubectl'), ['--kubeconfig', c.kubeconfigPath, 'apply', '-f', '-'], {
    input: stringifyYaml({
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name, namespace: STREAMS_NS },
      spec: { title: 'Ladder', renditions: ['360p'] },
    }),
  });
  const status = await waitFor(
    'the ladder LiveStream Ready',
    async () => {
      const s = (await getJson<{ status?: { phase?: string; renditions?: string[]; thumbnailUrl?: string } }>('livestream', '-n', STREAMS_NS, name)).status;
      return s?.phase === 'Ready' ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.same(status.renditions, ['360p'], 'status.renditions');
  tt.equal(status.thumbnailUrl, `${s3ForPods}/${s3!.bucket}/${STREAMS_NS}/${name}/thumbnail.jpg`, 'status.thumbnailUrl beside the playlist');
  const ladderKey = Buffer.from(
    await kubectlOk('get', 'secret', `${name}-stream-key`, '-n', STREAMS_NS, '-o', 'jsonpath={.data.streamKey}'),
    'base64',
  ).toString();

  // 640x360 would be skipped as not below the source: the source is 1280x720.
  const source = publishTestPattern({ url: await rtmpUrl(ladderKey), name: 'ffmpeg-ladder', size: '1280x720' });
  try {
    const base = `${STREAMS_NS}/${name}`;
    const variants = await waitFor(
      'a multivariant index.m3u8 naming source and 360p',
      async () => {
        const text = (await getObject(s3!.client, s3!.bucket, `${base}/index.m3u8`))?.body.toString('utf8');
        if (!text || !isMultivariant(text)) return undefined;
        const v = parseMultivariantPlaylist(text);
        return v.some((x) => x.name === '360p') ? v : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    tt.equal(variants[0]!.name, 'source', 'the source first');
    // A segment the transcoder missed is listed as an EXT-X-GAP and is no object: the stored ones are the rest.
    const stored = await waitFor(
      'three 360p segments stored',
      async () => {
        const text = (await getObject(s3!.client, s3!.bucket, `${base}/360p.m3u8`))?.body.toString('utf8');
        const listed = text ? parseMediaPlaylist(text).segments.filter((x) => !(x as { gap?: boolean }).gap) : [];
        return listed.length >= 3 ? listed.slice(0, 3) : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    for (const seg of stored) {
      tt.match(seg.uri, /^[^/]+\/360p\/\d+\.m4s$/, `${seg.uri}: in the session's 360p folder`);
      const init = await getObject(s3!.client, s3!.bucket, `${base}/${seg.initUri}`);
      const media = await getObject(s3!.client, s3!.bucket, `${base}/${seg.uri}`);
      tt.ok(init && media, `${seg.uri} and its init segment ${seg.initUri} are in the bucket`);
      // Each segment with its init segment, as a player appends them: ffprobe reads it, ffmpeg decodes it.
      const file = join(dir, `360p-${seg.sequence}.mp4`);
      await writeFile(file, Buffer.concat([init?.body ?? Buffer.alloc(0), media?.body ?? Buffer.alloc(0)]));
      const probe = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', file]);
      tt.equal(probe.code, 0, probe.stderr);
      const stream = (JSON.parse(probe.stdout || '{}') as { streams?: Array<{ codec_name: string; width: number; height: number }> }).streams?.[0];
      tt.match(stream, { codec_name: 'h264', width: 640, height: 360 }, `${seg.uri}: ffprobe reads H.264, 640x360`);
      const decode = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
      tt.equal(decode.code, 0, `${seg.uri}: ffmpeg decodes it`);
      tt.equal(decode.stderr.trim(), '', 'with no error');
    }

    await waitFor('thumbnail.jpg stored', async () => Boolean(await getObject(s3!.client, s3!.bucket, `${base}/thumbnail.jpg`)), {
      timeoutMs: 60_000,
      intervalMs: 1000,
    });
    const thumb = await run('ffprobe', [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_name,width,height',
      '-of',
      'json',
      `${s3!.endpoint}/${s3!.bucket}/${base}/thumbnail.jpg`,
    ]);
    tt.equal(thumb.code, 0, thumb.stderr);
    const image = (JSON.parse(thumb.stdout || '{}') as { streams?: Array<{ codec_name: string; width: number; height: number }> }).streams?.[0];
    tt.equal(image?.codec_name, 'mjpeg', 'the thumbnail is a JPEG');
    tt.ok((image?.width ?? 0) > 0 && (image?.height ?? 0) > 0, `of ${image?.width}x${image?.height}`);

    // The transcoder did the work: its own /metrics count its CPU and its answered requests.
    const slices = (await getJson<{ items: EndpointSlice[] }>('endpointslices', '-n', NS, '-l', `kubernetes.io/service-name=${RELEASE}-transcoder`)).items;
    const port = slices.flatMap((s) => s.ports ?? []).find((p) => p.name === 'http-metrics')?.port;
    const address = slices.flatMap((s) => s.endpoints ?? []).flatMap((e) => e.addresses)[0];
    const metrics = await (await fetch(`http://${address}:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    tt.match(metrics, /^tteok_transcoder_cpu_seconds_total [1-9]/m, 'the transcoder spent CPU');
  } finally {
    await source.stop('SIGTERM', 5000);
  }
});

t.test('no log line of any pod holds the stream key', async (tt) => {
  const logs = await kubectl('logs', '-n', NS, '--all-containers', '--prefix', '--tail=-1', '-l', `app.kubernetes.io/instance=${RELEASE}`);
  tt.ok(logs.stdout.length > 0, 'the pods logged');
  tt.notOk(key && logs.stdout.includes(key), 'the key appears in no log line');
});

t.test('helm uninstall leaves the CRD and no pods', async (tt) => {
  await helmOk('uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '120s');
  await waitFor('no pods left', async () => (await releasePods()).length === 0, { timeoutMs: 120_000, intervalMs: 1000 });
  tt.pass('no pods left in the release namespace');
  const crd = await kubectl('get', 'crd', 'livestreams.tteok.dev');
  tt.equal(crd.code, 0, 'the LiveStream CRD stays');
  tt.equal((await kubectl('get', 'livestream', STREAM, '-n', STREAMS_NS)).code, 0, 'and so does the LiveStream');
});
