// `tteok gateway` as a process with the Kubernetes view on a real
// kube-apiserver and the local origin serving a directory the test fills
// (e.g. with harness/ladder-on-disk.ts): LiveStreams are created in one
// namespace, and a status write makes one live or not, as the controller
// does when a run starts or ends. For tests of what viewers see of streams
// whose media the test lays out itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawJson } from '../common/kube/client.ts';
import { ROOT } from './chart-tools.ts';
import { tteokCommand } from './ingest-process.ts';
import { startKubeApiServer } from './kube.ts';
import { adminWithLiveStreams } from './kube-fixtures.ts';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { httpReady } from './wait.ts';

export interface LadderGateway {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The local origin's directory: `<namespace>/<name>/…`, private streams under `_private/`. */
  origin: string;
  namespace: string;
  process: ManagedProcess;
  setLive(name: string, live: boolean): Promise<void>;
  /** A playback token for a private stream, minted through the gateway's API. */
  mintToken(name: string): Promise<string>;
  stop(): Promise<void>;
}

const API_KEY = 'ladder-gateway-api-key-0123456789abcdefghij';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };

export async function startLadderGateway(options: {
  namespace: string;
  streams: Array<{ name: string; access: 'public' | 'private' }>;
  followIntervalMs?: number;
}): Promise<LadderGateway> {
  const ns = options.namespace;
  const home = mkdtempSync(join(tmpdir(), 'tteok-ladder-gateway-'));
  const origin = join(home, 'origin');
  const kube = await startKubeApiServer();
  let gatewayProcess: ManagedProcess | undefined;
  const stop = async () => {
    await gatewayProcess?.stop();
    await kube.stop();
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const { kc, custom } = await adminWithLiveStreams(kube, [ns]);
    for (const { name, access } of options.streams) {
      await custom.createNamespacedCustomObject({
        ...GROUP,
        namespace: ns,
        body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec: { title: name, playback: { access } } },
      });
    }
    const port = await freePort();
    const command = tteokCommand('gateway');
    gatewayProcess = spawnManaged('gateway', process.execPath, command.args, {
      cwd: ROOT,
      env: {
        ...command.env,
        KUBECONFIG: kube.kubeconfigPath,
        TTEOK_VIEW: 'kubernetes',
        TTEOK_GATEWAY_HOST: '127.0.0.1',
        TTEOK_GATEWAY_PORT: String(port),
        TTEOK_STORAGE: 'local',
        TTEOK_LOCAL_ORIGIN_DIR: origin,
        TTEOK_FOLLOW_INTERVAL_MS: String(options.followIntervalMs ?? 200),
        TTEOK_PLAYBACK_TOKEN_KEYS: 'k1:ladder-gateway-secret-0123456789abcdefghijklm',
        TTEOK_PLAYBACK_API_KEY: API_KEY,
        TTEOK_LOG_LEVEL: 'info',
      },
    });
    const url = `http://127.0.0.1:${port}`;
    await gatewayProcess.waitForLine(/"msg":"gateway ready"/, 60_000);
    await httpReady(`${url}/readyz`);
    return {
      url,
      origin,
      namespace: ns,
      process: gatewayProcess,
      stop,
      async setLive(name, live) {
        const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${ns}/livestreams/${name}/status`, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: {
            status: {
              phase: live ? 'Live' : 'Ready',
              liveSince: live ? at : null,
              conditions: [{ type: 'Live', status: live ? 'True' : 'False', reason: live ? 'Publishing' : 'Idle', message: 'x', lastTransitionTime: at }],
            },
          },
        });
      },
      async mintToken(name) {
        const res = await fetch(`${url}/v1/streams/${ns}/${name}/playback-token`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
        if (!res.ok) throw new Error(`minting a token for ${name}: HTTP ${res.status} ${await res.text()}`);
        return ((await res.json()) as { token: string }).token;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
