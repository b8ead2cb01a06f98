// What the control-plane tests set up on the real API server again and
// again: the LiveStream CRD, served; and a ServiceAccount bound to exactly the
// RBAC rules a role gets in the chart, with a kubeconfig that uses its token,
// so that a process under test runs with least privilege, not as admin.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { rawJson, statusCode } from '../common/kube/client.ts';
import { CI_VALUES, NAMESPACE, find, parseDocs, render } from './chart-tools.ts';
import type { KubeTestServer } from './kube.ts';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { waitFor } from './wait.ts';
import { createLogger } from '../common/log.ts';
import { loadControllerConfig } from '../controller/config.ts';
import { startController, type RunningController } from '../controller/controller.ts';

const ROOT = join(import.meta.dirname, '..');
export const CRD_PATH = join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml');

export interface AdminClients {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

/** Admin clients for the test API server, with the LiveStream CRD served and these namespaces created. */
export async function adminWithLiveStreams(kube: KubeTestServer, namespaces: string[]): Promise<AdminClients> {
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await applyLiveStreamCrd(kc);
  for (const name of namespaces) await core.createNamespace({ body: { metadata: { name } } });
  return { kc, core, custom };
}

/** Creates the LiveStream CRD and waits until LiveStreams are served. */
export async function applyLiveStreamCrd(kc: KubeConfig): Promise<void> {
  const crd = parse(readFileSync(CRD_PATH, 'utf8')) as { metadata: { name: string } };
  await rawJson(kc, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
  await waitFor(
    'the CRD to be established',
    async () => {
      const got = await rawJson<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
        kc,
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  // Established can come a moment before the resource is served.
  await waitFor(
    'LiveStreams to be served',
    async () => {
      await rawJson(kc, '/apis/tteok.dev/v1alpha1/livestreams');
      return true;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
}

export interface RoleSpec {
  kind: 'ClusterRole' | 'Role';
  namespace?: string;
  rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
}

/**
 * The RBAC rules the chart (rendered with its default values) gives a
 * component: its ClusterRole, and its Role in the release namespace, here
 * bound in `releaseNamespace`. Tests run processes with exactly these, so a
 * chart that grants too little fails them and README's table cannot drift.
 */
export async function chartRoles(component: 'controller' | 'ingest' | 'gateway', releaseNamespace: string): Promise<RoleSpec[]> {
  const objects = parseDocs(await render({ values: [CI_VALUES['default']!] }));
  const cluster = find(objects, 'ClusterRole', `${NAMESPACE}-t-tteok-${component}`);
  const local = find(objects, 'Role', `t-tteok-${component}-local`);
  if (!cluster) throw new Error(`the chart renders no ClusterRole for ${component}`);
  return [
    { kind: 'ClusterRole', rules: cluster.rules as RoleSpec['rules'] },
    ...(local ? [{ kind: 'Role' as const, namespace: releaseNamespace, rules: local.rules as RoleSpec['rules'] }] : []),
  ];
}

/**
 * A ServiceAccount `name` in `namespace` bound to exactly these rules, and the
 * path of a kubeconfig (written into `dir`) that authenticates with its token.
 */
export async function serviceAccountKubeconfig(
  admin: KubeConfig,
  adminKubeconfigPath: string,
  dir: string,
  namespace: string,
  name: string,
  roles: RoleSpec[],
): Promise<string> {
  await rawJson(admin, `/api/v1/namespaces/${namespace}/serviceaccounts`, { method: 'POST', body: { metadata: { name } } });
  for (const [i, role] of roles.entries()) {
    const roleName = `${name}-${i}`;
    const rbac = role.kind === 'ClusterRole' ? '/apis/rbac.authorization.k8s.io/v1' : `/apis/rbac.authorization.k8s.io/v1/namespaces/${role.namespace}`;
    await rawJson(admin, `${rbac}/${role.kind === 'ClusterRole' ? 'clusterroles' : 'roles'}`, {
      method: 'POST',
      body: { metadata: { name: roleName }, rules: role.rules },
    });
    await rawJson(admin, `${rbac}/${role.kind === 'ClusterRole' ? 'clusterrolebindings' : 'rolebindings'}`, {
      method: 'POST',
      body: {
        metadata: { name: roleName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: role.kind, name: roleName },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
  }
  const tr = await rawJson<{ status: { token: string } }>(admin, `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    method: 'POST',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const config = JSON.parse(readFileSync(adminKubeconfigPath, 'utf8')) as { users: Array<{ user: { token: string } }> };
  config.users[0]!.user.token = tr.status.token;
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

/**
 * The controller in the test's own process, as one replica without leader
 * election, in `namespace` (where it finds the claim Leases); `env` adds
 * settings. Resolves once its informers have synced.
 */
export async function startTestController(kc: KubeConfig, namespace: string, env: Record<string, string> = {}): Promise<RunningController> {
  const controller = await startController(
    loadControllerConfig({
      TTEOK_POD_NAME: 'controller-0',
      TTEOK_POD_NAMESPACE: namespace,
      TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
      TTEOK_CONTROLLER_HTTP_PORT: '0',
      TTEOK_LEADER_ELECTION: 'false',
      ...env,
    }),
    { kc, log: createLogger('controller', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'warn') },
  );
  await controller.ready();
  return controller;
}

/**
 * Creates a LiveStream, waits until the controller reports it Ready (its key
 * Secret made and the key's hash published), and returns its stream key read
 * from that Secret, as README tells a user to.
 */
export async function createReadyLiveStream(
  clients: Pick<AdminClients, 'core' | 'custom'>,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<string> {
  const group = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
  await clients.custom.createNamespacedCustomObject({
    ...group,
    namespace,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec },
  });
  await waitFor(
    `${name} Ready`,
    async () => ((await clients.custom.getNamespacedCustomObject({ ...group, namespace, name })) as { status?: { phase?: string } }).status?.phase === 'Ready',
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  const secret = await clients.core.readNamespacedSecret({ namespace, name: `${name}-stream-key` });
  return Buffer.from(secret.data?.streamKey ?? '', 'base64').toString();
}

export interface ControllerProcess {
  proc: ManagedProcess;
  httpPort: number;
  /** The controller's Prometheus metrics, as text. */
  metrics(): Promise<string>;
  /** Whether it reports itself the leader (tteok_controller_leader 1). */
  leader(): Promise<boolean>;
}

/**
 * `tteok controller` as a child process, as it runs in a pod (`name` is its
 * pod name, `namespace` where it holds the leader Lease), authenticated by
 * `kubeconfig`, with leader election on short timings so that a takeover
 * happens within a test; `env` adds settings. Resolves once it has started.
 */
export async function startControllerProcess(
  name: string,
  kubeconfig: string,
  namespace: string,
  env: Record<string, string> = {},
): Promise<ControllerProcess> {
  const httpPort = await freePort();
  const proc = spawnManaged(name, process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), 'controller'], {
    cwd: ROOT,
    env: {
      KUBECONFIG: kubeconfig,
      TTEOK_POD_NAME: name,
      TTEOK_POD_NAMESPACE: namespace,
      TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
      TTEOK_CONTROLLER_HTTP_PORT: String(httpPort),
      TTEOK_LEADER_LEASE_SECONDS: '3',
      TTEOK_LEADER_RENEW_DEADLINE_SECONDS: '2',
      TTEOK_LEADER_RETRY_SECONDS: '0.5',
      TTEOK_LOG_LEVEL: 'info',
      ...env,
    },
  });
  await proc.waitForLine(/"msg":"controller started"/, 30_000);
  const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  return { proc, httpPort, metrics, leader: async () => /^tteok_controller_leader 1$/m.test(await metrics()) };
}

/** Waits until exactly one of two controller replicas leads, and returns it. */
export async function waitForOneLeader(a: ControllerProcess, b: ControllerProcess, timeoutMs: number): Promise<ControllerProcess> {
  return waitFor(
    'one leader',
    async () => {
      const [la, lb] = await Promise.all([a.leader(), b.leader()]);
      return la !== lb ? (la ? a : b) : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/**
 * The ingest's access as the chart gives it in `namespace` (release "tteok",
 * so its service account is tteok-ingest): the chart's RBAC rules, the
 * chart's ValidatingAdmissionPolicy on Leases (in force once this returns),
 * and for each of `pods` a Pod object and a kubeconfig whose token is bound
 * to that Pod, as a real Pod's projected token is (the policy reads the Pod's
 * name from it). Returns the kubeconfig path per pod name, and under "" one
 * whose token is bound to no Pod.
 */
export async function chartIngestAccess(
  admin: KubeConfig,
  adminKubeconfigPath: string,
  dir: string,
  namespace: string,
  pods: string[],
): Promise<Record<string, string>> {
  const sa = 'tteok-ingest';
  const unbound = await serviceAccountKubeconfig(admin, adminKubeconfigPath, dir, namespace, sa, await chartRoles('ingest', namespace));
  const objects = parseDocs(await render({ values: [CI_VALUES['default']!], release: 'tteok', namespace }));
  // What the chart renders, as it renders it: a chart without the policy leaves the ingest with its RBAC alone (the tests then show what that allows).
  const policy = objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy' || o.kind === 'ValidatingAdmissionPolicyBinding');
  for (const object of policy) {
    await rawJson(
      admin,
      `/apis/admissionregistration.k8s.io/v1/${object.kind === 'ValidatingAdmissionPolicy' ? 'validatingadmissionpolicies' : 'validatingadmissionpolicybindings'}`,
      { method: 'POST', body: object },
    );
  }
  const kubeconfigs: Record<string, string> = { '': unbound };
  for (const pod of pods) {
    const created = await rawJson<{ metadata: { uid: string } }>(admin, `/api/v1/namespaces/${namespace}/pods`, {
      method: 'POST',
      body: { metadata: { name: pod }, spec: { serviceAccountName: sa, containers: [{ name: 'ingest', image: 'tteok:test' }] } },
    });
    const tr = await rawJson<{ status: { token: string } }>(admin, `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, {
      method: 'POST',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod, uid: created.metadata.uid } },
      },
    });
    const config = JSON.parse(readFileSync(adminKubeconfigPath, 'utf8')) as { users: Array<{ user: { token: string } }> };
    config.users[0]!.user.token = tr.status.token;
    kubeconfigs[pod] = join(dir, `${sa}-${pod}.kubeconfig`);
    writeFileSync(kubeconfigs[pod], JSON.stringify(config), { mode: 0o600 });
  }
  if (policy.length === 0) return kubeconfigs;
  // The policy is in force once the API server has loaded it: a Lease that is no claim is then refused (a dry run).
  const probe = new KubeConfig();
  probe.loadFromFile(kubeconfigs[pods[0]!] ?? unbound);
  await waitFor(
    'the Lease admission policy to be in force',
    async () => {
      const code = await rawJson(probe, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases?dryRun=All`, {
        method: 'POST',
        body: { metadata: { name: 'policy-probe' }, spec: { holderIdentity: pods[0] ?? 'none' } },
      }).then(
        () => 201,
        (e: unknown) => statusCode(e),
      );
      return code === 403 || undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  return kubeconfigs;
}
