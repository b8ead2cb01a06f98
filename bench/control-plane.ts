// Control plane: time from creating 1,000 LiveStreams to all of them Ready,
// on a real kube-apiserver; API requests the controller made per stream; and
// the controller's memory once it has converged.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { rawJson } from '../common/kube/client.ts';
import { httpsGet, startKubeApiServer } from '../harness/kube.ts';
import { tteokCommand } from '../harness/ingest-process.ts';
import { spawnManaged } from '../harness/process.ts';
import { waitFor } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { rssMiB } from './lib/proc-stats.ts';

const ROOT = join(import.meta.dirname, '..');

export interface ControlPlaneResult {
  streams: number;
  secondsToAllReady: number;
  controllerRequestsPerStream: number;
  controllerRssMiB: number;
  requestsByKind: Array<[string, number]>;
}

/** apiserver_request_total summed by verb and resource (the API server counts every request it served). */
async function requestCounts(url: string, token: string, ca: string | undefined): Promise<Map<string, number>> {
  const { body } = await httpsGet(`${url}/metrics`, { token, ...(ca ? { ca } : {}) });
  const counts = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.split(' ').at(-1)));
  }
  return counts;
}

export async function controlPlane(streams = 1000): Promise<ControlPlaneResult> {
  const kube = await startKubeApiServer();
  const controllerProcs: Array<{ stop: () => Promise<void> }> = [];
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const crd = parse(readFileSync(join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml'), 'utf8'));
    await rawJson(kc, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
    await waitFor(
      'LiveStreams to be served',
      async () => {
        await rawJson(kc, '/apis/tteok.dev/v1alpha1/livestreams');
        return true;
      },
      { timeoutMs: 30_000 },
    );
    for (const name of ['bench', 'tteok-system']) await rawJson(kc, '/api/v1/namespaces', { method: 'POST', body: { metadata: { name } } });
    await rawJson(kc, '/apis/apps/v1/namespaces/tteok-system/statefulsets', {
      method: 'POST',
      body: {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'ingest' },
        spec: {
          replicas: 1,
          serviceName: 'ingest',
          selector: { matchLabels: { app: 'ingest' } },
          template: { metadata: { labels: { app: 'ingest' } }, spec: { containers: [{ name: 'ingest', image: 'tteok' }] } },
        },
      },
    });

    const command = tteokCommand('controller', BENCH_BUILD);
    const controller = spawnManaged('controller', process.execPath, command.args, {
      cwd: ROOT,
      env: {
        ...command.env,
        KUBECONFIG: kube.kubeconfigPath,
        TTEOK_POD_NAME: 'controller-bench',
        TTEOK_POD_NAMESPACE: 'tteok-system',
        TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
        TTEOK_CONTROLLER_HTTP_PORT: '0',
        TTEOK_INGEST_STATEFULSET: 'ingest',
        TTEOK_INGEST_NAMESPACE: 'tteok-system',
        TTEOK_STREAMS_PER_INGEST: '50',
        TTEOK_INGEST_MAX_REPLICAS: '40',
        TTEOK_INGEST_PUBLIC_URL: 'rtmp://live.example.com:1935/live',
        TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net',
        TTEOK_S3_BUCKET: 'bench',
        TTEOK_LOG_LEVEL: 'warn',
      },
    });
    controllerProcs.push(controller);
    await waitFor(
      'the controller to lead',
      async () => {
        const leases = await rawJson<{ items: Array<{ spec?: { holderIdentity?: string } }> }>(
          kc,
          '/apis/coordination.k8s.io/v1/namespaces/tteok-system/leases',
        ).catch(() => undefined);
        if (controller.child.exitCode !== null) throw new Error(`the controller exited:\n${controller.lines.slice(-10).join('\n')}`);
        return leases?.items.some((l) => l.spec?.holderIdentity === 'controller-bench');
      },
      { timeoutMs: 30_000 },
    );
    await sleep(2000);

    const before = await requestCounts(kube.url, kube.token, kube.caCert);
    const started = Date.now();
    // Create as a user's CI would: 20 requests in flight.
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < streams) {
          const i = next++;
          await rawJson(kc, '/apis/tteok.dev/v1alpha1/namespaces/bench/livestreams', {
            method: 'POST',
            body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: `s${i}` }, spec: { title: `Stream ${i}` } },
          });
        }
      }),
    );
    let lists = 0;
    await waitFor(
      `${streams} LiveStreams to be Ready`,
      async () => {
        lists++;
        const list = await rawJson<{ items: Array<{ status?: { phase?: string } }> }>(kc, '/apis/tteok.dev/v1alpha1/namespaces/bench/livestreams');
        return list.items.filter((x) => x.status?.phase === 'Ready').length === streams;
      },
      { timeoutMs: 600_000, intervalMs: 250 },
    );
    const seconds = (Date.now() - started) / 1000;
    await sleep(3000); // let trailing writes land
    const after = await requestCounts(kube.url, kube.token, kube.caCert);

    const delta: Array<[string, number]> = [];
    for (const [key, value] of after) {
      const d = value - (before.get(key) ?? 0);
      if (d > 0) delta.push([key, d]);
    }
    // Take out the benchmark's own requests: the creates and the polling lists.
    const own = new Map<string, number>([
      ['POST livestreams', streams],
      ['LIST livestreams', lists],
    ]);
    const controllerRequests = delta.reduce((a, [key, n]) => a + Math.max(0, n - (own.get(key) ?? 0)), 0);
    return {
      streams,
      secondsToAllReady: seconds,
      controllerRequestsPerStream: controllerRequests / streams,
      controllerRssMiB: rssMiB(controller.child.pid!),
      requestsByKind: delta.sort((a, b) => b[1] - a[1]).slice(0, 8),
    };
  } finally {
    for (const c of controllerProcs) await c.stop();
    await kube.stop();
  }
}
