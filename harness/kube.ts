// A real Kubernetes control plane for tests, like controller-runtime's envtest:
// etcd plus kube-apiserver on loopback, nothing else (no scheduler, no
// controller-manager, no kubelet: Pods are stored but never run, and nothing
// garbage-collects). RBAC is on, so authorization tests are real.
//
// Binaries: kube-apiserver is built from Go modules by
// `bash test/tools/build-binaries.sh kube-apiserver` into
// ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin; etcd comes from Debian
// (`test/tools/install-debian-packages.sh etcd-server`, /usr/bin/etcd), or from
// that same bin directory if an etcd binary is put there.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { constants as fsConstants, rmSync } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { freePort } from './ports.ts';
import { waitFor } from './wait.ts';

export interface KubeTestServerOptions {
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=Foo=true']; a flag given here replaces the default of the same name. */
  apiServerArgs?: string[];
  /** Extra etcd flags. */
  etcdArgs?: string[];
  /** How long to wait for etcd and then /readyz, each (default 90 s: a cold start on 2 cores takes ~10 s). */
  startTimeoutMs?: number;
  /** Echo both processes' logs to stderr (TTEOK_TEST_VERBOSE=1 does this too). */
  echo?: boolean;
  /** Explicit binary paths; by default they are looked up as described at the top of this file. */
  kubeApiServerPath?: string;
  etcdPath?: string;
}

export interface KubeTestServer {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** Bearer token of user "admin" in group system:masters (all permissions). */
  readonly token: string;
  /** PEM of the CA that signed the self-generated serving certificate (the certificate covers 127.0.0.1). */
  readonly caCert?: string;
  /** A kubeconfig for the admin user, for KubeConfig.loadFromFile and `kubectl --kubeconfig`. */
  readonly kubeconfigPath: string;
  /** The temporary directory holding etcd's data, certificates, keys and the kubeconfig; removed by stop(). */
  readonly dir: string;
  /** http://127.0.0.1:<port> of the private etcd. */
  readonly etcdUrl: string;
  readonly apiServer: ManagedProcess;
  readonly etcd: ManagedProcess;
  /** Kills both processes and removes dir. Idempotent. */
  stop(): Promise<void>;
}

export const ADMIN_USER = 'admin';

export function toolsBinDir(): string {
  return join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bin');
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findBinary(name: string, explicit: string | undefined, hint: string): Promise<string> {
  if (explicit) {
    if (await isExecutable(explicit)) return explicit;
    throw new Error(`${name}: ${explicit} is not an executable file`);
  }
  const candidates = [
    join(toolsBinDir(), name),
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, name)),
  ];
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new Error(`${name} not found in ${toolsBinDir()} or on PATH; run: ${hint}`);
}

/** Merges flags: a flag in `overrides` replaces the default flag of the same name. */
function mergeFlags(defaults: string[], overrides: string[]): string[] {
  const flagName = (a: string) => a.split('=', 1)[0];
  const overridden = new Set(overrides.map(flagName));
  return [...defaults.filter((a) => !overridden.has(flagName(a))), ...overrides];
}

interface HttpsResult {
  status: number;
  body: string;
}

/** GET over TLS, trusting `ca` when given and skipping verification otherwise. */
export function httpsGet(url: string, { token, ca }: { token?: string; ca?: string } = {}): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'GET',
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Rejects when `proc` exits; used to stop waiting for a server that died. */
function exitAsError(proc: ManagedProcess): Promise<never> {
  return proc.exited.then(({ code, signal }) => {
    throw new Error(`${proc.name} exited (code ${code}, signal ${signal}) while starting; last lines:\n${proc.lines.slice(-30).join('\n')}`);
  });
}

async function raceExit<T>(work: Promise<T>, procs: ManagedProcess[]): Promise<T> {
  const exits = procs.map(exitAsError);
  for (const e of exits) e.catch(() => {}); // the loser of the race must not be an unhandled rejection
  return Promise.race([work, ...exits]);
}

export async function startKubeApiServer(opts: KubeTestServerOptions = {}): Promise<KubeTestServer> {
  const apiServerBin = await findBinary('kube-apiserver', opts.kubeApiServerPath, 'bash test/tools/build-binaries.sh kube-apiserver');
  const etcdBin = await findBinary('etcd', opts.etcdPath, 'test/tools/install-debian-packages.sh etcd-server');
  const startTimeoutMs = opts.startTimeoutMs ?? 90_000;
  const echo = opts.echo;
  const dir = await mkdtemp(join(tmpdir(), 'tteok-kube-'));

  let etcd: ManagedProcess | undefined;
  let apiServer: ManagedProcess | undefined;
  let stopped: Promise<void> | undefined;
  // If the test process exits without stop(), process.ts SIGKILLs the children
  // on 'exit' (registered first, so it runs first); this then removes the dir.
  const removeOnExit = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeOnExit);
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.off('exit', removeOnExit);
      // kube-apiserver first, so it does not log a storm of etcd errors while shutting down.
      await apiServer?.stop('SIGTERM', 5_000);
      await etcd?.stop('SIGTERM', 5_000);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    // etcd, private to this server.
    const [clientPort, peerPort] = (await distinctFreePorts(2)) as [number, number];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    etcd = spawnManaged(
      'etcd',
      etcdBin,
      mergeFlags(
        [
          '--name=tteok-test',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=tteok-test=${peerUrl}`,
          '--initial-cluster-state=new',
          '--logger=zap',
          '--log-level=warn',
        ],
        opts.etcdArgs ?? [],
      ),
      { echo },
    );
    await raceExit(
      waitFor(
        'etcd /health',
        async () => {
          const res = await fetch(`${etcdUrl}/health`);
          return res.ok && /"health"\s*:\s*"true"/.test(await res.text());
        },
        { timeoutMs: startTimeoutMs, intervalMs: 100 },
      ),
      [etcd],
    );

    // Credentials: an admin token and the service-account signing key pair.
    const token = randomBytes(24).toString('hex');
    const tokenFile = join(dir, 'tokens.csv');
    await writeFile(tokenFile, `${token},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saPub = join(dir, 'sa.pub');
    const saKey = join(dir, 'sa.key');
    await writeFile(saPub, publicKey);
    await writeFile(saKey, privateKey, { mode: 0o600 });

    const securePort = await distinctFreePorts(1, [clientPort, peerPort]).then((p) => p[0]!);
    const url = `https://127.0.0.1:${securePort}`;
    const certDir = join(dir, 'certs');
    apiServer = spawnManaged(
      'kube-apiserver',
      apiServerBin,
      mergeFlags(
        [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${securePort}`,
          // With no --tls-cert-file, kube-apiserver writes a self-signed CA and a
          // serving certificate for the advertise address into --cert-dir.
          `--cert-dir=${certDir}`,
          `--token-auth-file=${tokenFile}`,
          '--authorization-mode=RBAC',
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          '--service-cluster-ip-range=10.0.0.0/24',
          '--allow-privileged=true',
          // No controller-manager creates the "default" ServiceAccount, so the
          // admission plugin would refuse every Pod (envtest disables it too).
          '--disable-admission-plugins=ServiceAccount',
          // There are no nodes, no kubelets and no other API servers to find.
          '--endpoint-reconciler-type=none',
          '--profiling=false',
          '--v=1',
        ],
        opts.apiServerArgs ?? [],
      ),
      { echo },
    );

    await raceExit(
      waitFor(
        'kube-apiserver /readyz',
        async () => {
          const res = await httpsGet(`${url}/readyz`, { token });
          return res.status === 200 && res.body.trim() === 'ok';
        },
        { timeoutMs: startTimeoutMs, intervalMs: 250 },
      ),
      [apiServer, etcd],
    );

    const caCert = await readSelfSignedCa(join(certDir, 'apiserver.crt'));
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(url, token, caCert), { mode: 0o600 });

    const server: KubeTestServer = { url, token, kubeconfigPath, dir, etcdUrl, apiServer, etcd, stop };
    return caCert === undefined ? server : { ...server, caCert };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** n distinct free loopback ports, none of them in `avoid`. */
async function distinctFreePorts(n: number, avoid: number[] = []): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) {
    const p = await freePort();
    if (!avoid.includes(p)) ports.add(p);
  }
  return [...ports];
}

/**
 * kube-apiserver writes the serving certificate followed by the CA that signed
 * it into apiserver.crt; the CA is the last block. Undefined if the file holds
 * a single certificate (then clients skip verification).
 */
async function readSelfSignedCa(path: string): Promise<string | undefined> {
  const pem = await readFile(path, 'utf8').catch(() => '');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.length >= 2 ? `${blocks[blocks.length - 1]}\n` : undefined;
}

function kubeconfig(url: string, token: string, caCert: string | undefined): string {
  const cluster: Record<string, unknown> = { server: url };
  if (caCert) cluster['certificate-authority-data'] = Buffer.from(caCert).toString('base64');
  else cluster['insecure-skip-tls-verify'] = true;
  // JSON is YAML, and both client-node and kubectl read it.
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tteok-test', cluster }],
      users: [{ name: ADMIN_USER, user: { token } }],
      contexts: [{ name: 'tteok-test', context: { cluster: 'tteok-test', user: ADMIN_USER, namespace: 'default' } }],
      'current-context': 'tteok-test',
      preferences: {},
    },
    null,
    2,
  )}\n`;
}
