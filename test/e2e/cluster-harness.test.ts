// The test cluster (harness/cluster.ts) runs a pod, routes a Service
// through kube-proxy, and leaves the host as it found it: the same iptables
// rules and chains, network links and namespaces, cgroups, mounts, sysctls,
// CNI cache and processes. The end-to-end test relies on both, on a machine
// other tests share.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { startTestCluster } from '../../harness/cluster.ts';
import { cgroupHierarchies, readSysctls, sh } from '../../harness/host-state.ts';
import { httpsGet } from '../../harness/kube.ts';
import { waitFor } from '../../harness/wait.ts';
import { run, tool } from '../../harness/chart-tools.ts';

t.setTimeout(10 * 60_000);

const SYSCTLS = ['net.ipv4.ip_forward', 'net.ipv4.conf.all.route_localnet'];

async function hostState(): Promise<Record<string, string[]>> {
  const rules = async (save: string) =>
    (await sh(save, [])).stdout
      .split('\n')
      .filter((l) => l.startsWith('-A ') || /^:(KUBE|CNI)/.test(l))
      .sort();
  const list = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
  return {
    iptables: await rules('iptables-save'),
    ip6tables: await rules('ip6tables-save'),
    links: (await sh('ip', ['-o', 'link', 'show'])).stdout
      .split('\n')
      .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
      .filter(Boolean)
      .sort(),
    netns: list('/run/netns'),
    cgroups: cgroupHierarchies()
      .flatMap((h) =>
        readdirSync(h)
          .filter((n) => n.startsWith('tteok-'))
          .map((n) => `${h}/${n}`),
      )
      .sort(),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((p) => /tteok-cluster-/.test(p))
      .sort(),
    sysctls: [...readSysctls(SYSCTLS)].map(([k, v]) => `${k}=${v}`),
    cniCache: [...list('/var/lib/cni/results'), ...list('/var/lib/cni/networks')],
    containerLogs: list('/var/log/containers'),
    processes: (await sh('pgrep', ['-a', '-f', 'containerd-shim|/pause$|bin/kubelet|bin/kube-proxy'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^\d+ /, ''))
      .sort(),
  };
}

const before = await hostState();
const cluster = await startTestCluster();
t.teardown(() => cluster.stop());
const kubectl = (...args: string[]) => run(tool('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args]);

t.test('a pod runs on the node, with an address on the pod network', async (tt) => {
  const r = await kubectl('run', 'sleeper', '--image=localhost/tteok-pause:1', '--image-pull-policy=Never', '--restart=Never');
  tt.equal(r.code, 0, `kubectl run: ${r.stderr}`);
  const ip = await waitFor(
    'the pod Running',
    async () => {
      const out = await kubectl('get', 'pod', 'sleeper', '-o', 'jsonpath={.status.phase} {.status.podIP}');
      const [phase, podIp] = out.stdout.split(' ');
      return phase === 'Running' && podIp ? podIp : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.ok(ip.startsWith(cluster.podSubnet.replace(/\.0\/24$/, '.')), `pod IP ${ip} is in ${cluster.podSubnet}`);
});

t.test("a Service routes through kube-proxy: the API server answers on the kubernetes Service's cluster IP", async (tt) => {
  const res = await waitFor(
    'https://10.0.0.1/readyz',
    async () => {
      const r = await httpsGet('https://10.0.0.1/readyz', { token: cluster.kube.token, ...(cluster.kube.caCert ? { ca: cluster.kube.caCert } : {}) });
      return r.status === 200 ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  tt.equal(res.body.trim(), 'ok', 'readyz through the Service, verified against the cluster CA (the serving certificate covers the Service IP)');
  const on = readSysctls(SYSCTLS);
  tt.equal(on.get('net.ipv4.ip_forward'), '1', 'the node switched ip_forward on (restored at stop)');
});

t.test('stop() leaves the host as it found it', async (tt) => {
  await cluster.stop();
  // A killed shim can stay a zombie for a moment, until init reaps it: poll
  // (bounded) for the host to settle, then compare what is there.
  let after = await hostState();
  await waitFor(
    'the host to be as before',
    async () => {
      after = await hostState();
      return JSON.stringify(after) === JSON.stringify(before);
    },
    { timeoutMs: 10_000, intervalMs: 250 },
  ).catch(() => undefined);
  for (const key of Object.keys(before)) tt.same(after[key], before[key], `${key}: as before`);
});
