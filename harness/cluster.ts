// A real single-node Kubernetes cluster for end-to-end tests: etcd and
// kube-apiserver (harness/kube.ts), kube-controller-manager,
// kube-scheduler, kubelet with its own containerd, and kube-proxy, all on this
// machine, state in one temporary directory, reachable on loopback only.
// Pods run for real (runc), on a CNI bridge of their own; Services work
// through kube-proxy's iptables rules, NodePorts on 127.0.0.1.
//
// Needs root and, from the tools cache, the Kubernetes binaries
// (`bash test/tools/build-binaries.sh kube-apiserver kubelet kube-controller-manager
// kube-scheduler kube-proxy`), the pause image (`bash test/tools/build-image.sh pause`),
// and Debian's containerd, runc, containernetworking-plugins, iptables, conntrack
// (`make deps-e2e` does all of it).
//
// What this VM needs, and why (see issue 13):
// - runc cannot write /proc/self/oom_score_adj (no CAP_SYS_RESOURCE in the
//   bounding set): containerd's restrict_oom_score_adj;
// - kube-apiserver's endpoint reconciler refuses 127.0.0.1 (kube.ts runs it
//   with --endpoint-reconciler-type=none): the `kubernetes` Service's
//   EndpointSlice is written here, to a forwarder on the bridge address;
// - kubelet refuses a loopback node IP: the node is named `localhost`, so the
//   API server reaches the kubelet at localhost;
// - cgroup v1: cgroupfs driver and failCgroupV1: false; the pods' cgroups live
//   under a cgroup root of their own (/tteok-<id>), removed at stop;
// - kubelet would rewrite host sysctls (vm.overcommit_memory, kernel.panic,
//   kernel.panic_on_oops): it runs with protectKernelDefaults (check, never
//   write) in a mount namespace of its own where those files are bind-mounted
//   from files holding the values it expects; its root dir is a shared mount
//   so the volumes it mounts there reach containerd;
// - kube-proxy masquerades all Service traffic (no br_netfilter needed for a
//   pod reaching a Service whose endpoint is on the same bridge), and leaves
//   conntrack sysctls alone.
//
// stop() undoes everything the node did to the host, also after a failed start:
// containers, shims, mounts, network namespaces, the bridge, iptables rules and
// chains, the ip_forward / route_localnet sysctls, cgroups (host-state.ts).
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync, rmSync, unlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeApiServer, toolsBinDir, type KubeTestServer } from './kube.ts';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import {
  cgroupPids,
  createCgroupRoot,
  killPids,
  listNetns,
  pidsWithArg,
  readSysctls,
  removeCgroupTree,
  removeNewNetns,
  restoreIptables,
  restoreSysctls,
  sh,
  shOk,
  snapshotIptables,
  unmountUnder,
} from './host-state.ts';
import { waitFor } from './wait.ts';

export const NODE_NAME = 'localhost';
export const PAUSE_IMAGE = 'localhost/tteok-pause:1';

/** Sysctls the CNI bridge, kube-proxy and kubelet may switch; put back at stop. */
const WATCHED_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.conf.default.forwarding',
  'net.ipv6.conf.all.forwarding',
  'net.ipv6.conf.default.forwarding',
  'net.ipv4.conf.lo.route_localnet',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
  'net.netfilter.nf_conntrack_max',
  'vm.overcommit_memory',
  'kernel.panic',
  'kernel.panic_on_oops',
  'vm.panic_on_oom',
];

/** What kubelet with protectKernelDefaults insists on (pkg/kubelet/cm: setupKernelTunables). */
const KUBELET_KERNEL_DEFAULTS: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};

export interface TestClusterOptions {
  /** Echo every component's log to stderr (TTEOK_TEST_VERBOSE=1 does this too). */
  echo?: boolean;
  /** How long to wait for the node to be Ready (default 180 s). */
  startTimeoutMs?: number;
}

export interface TestCluster {
  readonly kube: KubeTestServer;
  readonly kubeconfigPath: string;
  /** The host's address on the pod network (the CNI bridge's); see exposeToPods. */
  readonly hostAddress: string;
  /** The pods' subnet, e.g. 10.123.45.0/24. */
  readonly podSubnet: string;
  /** containerd's socket (for `ctr --address`). */
  readonly containerdSocket: string;
  readonly processes: Record<string, ManagedProcess>;
  /**
   * Makes a host service on 127.0.0.1:`port` reachable from pods at
   * hostAddress:<returned port> (a TCP forwarder; nothing listens beyond
   * loopback and the bridge).
   */
  exposeToPods(port: number): Promise<number>;
  /** Imports a docker-archive or OCI tarball into containerd's k8s.io namespace, for pods to run. */
  importImage(archive: string): Promise<void>;
  /** Stops everything and undoes what the node changed on the host. Idempotent; throws listing what could not be undone. */
  stop(): Promise<void>;
}

function bin(name: string): string {
  return join(toolsBinDir(), name);
}

function yamlOf(value: unknown): string {
  // JSON is YAML; every Kubernetes config loader reads it.
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The image archive of the pause image (test/tools/build-image.sh pause). */
export function pauseImageArchive(): string {
  return join(toolsBinDir(), '..', 'images', 'pause.tar');
}

export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  if (process.getuid?.() !== 0) throw new Error('the test cluster needs root (containerd, kubelet, iptables)');
  for (const b of ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy']) {
    if (!existsSync(bin(b))) throw new Error(`${bin(b)} is missing; run: bash test/tools/build-binaries.sh ${b}`);
  }
  for (const b of ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'iptables', 'conntrack']) {
    if ((await sh('sh', ['-c', `command -v ${b}`])).code !== 0) throw new Error(`${b} is missing; run: make deps-e2e`);
  }
  if (!existsSync('/usr/lib/cni/bridge')) throw new Error('/usr/lib/cni/bridge is missing; run: make deps-e2e (containernetworking-plugins)');
  if (!existsSync(pauseImageArchive())) throw new Error(`${pauseImageArchive()} is missing; run: bash test/tools/build-image.sh pause`);

  const echo = opts.echo;
  const startTimeoutMs = opts.startTimeoutMs ?? 180_000;
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'tteok-cluster-'));
  const bridge = `tteok${id}`;
  const netName = `tteok-${id}`;
  const octets = randomBytes(2);
  const net = `10.${100 + (octets[0]! % 100)}.${octets[1]!}`;
  const podSubnet = `${net}.0/24`;
  const hostAddress = `${net}.1`;
  const cgroupRoot = `/tteok-${id}`;
  const containerdSocket = join(dir, 'containerd', 'containerd.sock');
  const kubeletRoot = join(dir, 'kubelet');
  const processes: Record<string, ManagedProcess> = {};
  const forwarders: Server[] = [];
  // Connections through the forwarders: a pod's end vanishes with its network
  // namespace (no FIN), so they are destroyed at stop, or they keep the test process alive.
  const forwarded = new Set<Socket>();

  // Snapshots first: stop() undoes differences from these.
  const iptablesBefore = await snapshotIptables();
  const sysctlsBefore = readSysctls(WATCHED_SYSCTLS);
  const netnsBefore = listNetns();
  const shimDirExisted = existsSync('/run/containerd/s');
  const containerdRunDirExisted = existsSync('/run/containerd');
  const shimSocketsBefore = new Set(existsSync('/run/containerd/s') ? readdirSync('/run/containerd/s') : []);
  // libcni caches each attachment (ours and the CRI's loopback) under a fixed directory.
  const cniCacheDirs = ['/var/lib/cni/results', '/var/lib/cni/networks'];
  const cniCacheBefore = new Set(cniCacheDirs.flatMap((d) => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [])));
  let kube: KubeTestServer | undefined;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const problems: string[] = [];
      const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
        try {
          const r = await fn();
          if (Array.isArray(r)) problems.push(...(r as string[]));
        } catch (error) {
          problems.push(`${what}: ${(error as Error).message}`);
        }
      };
      process.off('exit', onExit);
      for (const f of forwarders) f.close();
      for (const socket of forwarded) socket.destroy();
      // The node's own processes first, so nothing recreates what is removed below.
      for (const name of ['kube-proxy', 'kubelet', 'kube-scheduler', 'kube-controller-manager']) {
        await step(`stop ${name}`, () => processes[name]?.stop('SIGTERM', 5_000));
      }
      // Every process of every pod is in the node's cgroup root: kill them, then containerd and its shims.
      await step('kill pod processes', async () => {
        for (let round = 0; round < 20; round++) {
          const pids = cgroupPids(cgroupRoot);
          if (pids.size === 0) return;
          killPids(pids);
          await sleep(250);
        }
        return [`pod processes still running: ${[...cgroupPids(cgroupRoot)].join(' ')}`];
      });
      await step('stop containerd', () => processes.containerd?.stop('SIGTERM', 5_000));
      await step('kill shims', async () => {
        // Every shim is started with `-address <this containerd's socket>`.
        for (let round = 0; round < 20; round++) {
          const shims = pidsWithArg(containerdSocket);
          if (shims.length === 0) return;
          killPids(shims);
          await sleep(250);
        }
        return [`shims still running: ${pidsWithArg(containerdSocket).join(' ')}`];
      });
      await step('shim sockets', () => {
        if (!existsSync('/run/containerd/s')) return;
        for (const s of readdirSync('/run/containerd/s')) if (!shimSocketsBefore.has(s)) rmSync(join('/run/containerd/s', s), { force: true });
        // The shims make the directory (a fixed path in containerd 1.6) if it was not there.
        if (!shimDirExisted && readdirSync('/run/containerd/s').length === 0) rmSync('/run/containerd/s', { recursive: true });
        if (!containerdRunDirExisted && existsSync('/run/containerd') && readdirSync('/run/containerd').length === 0)
          rmSync('/run/containerd', { recursive: true });
      });
      await step('unmount', () => unmountUnder(dir));
      await step('network namespaces', () => removeNewNetns(netnsBefore));
      await step('bridge', async () => {
        const r = await sh('ip', ['link', 'delete', bridge]);
        return r.code === 0 || /Cannot find device/.test(r.stderr) ? [] : [`ip link delete ${bridge}: ${r.stderr.trim()}`];
      });
      await step('iptables', () => restoreIptables(iptablesBefore));
      await step('sysctls', () => restoreSysctls(sysctlsBefore));
      await step('cgroups', () => removeCgroupTree(cgroupRoot));
      await step('CNI cache', () => {
        for (const d of cniCacheDirs) {
          if (!existsSync(d)) continue;
          for (const f of readdirSync(d)) if (!cniCacheBefore.has(join(d, f))) rmSync(join(d, f), { recursive: true, force: true });
        }
      });
      await step('container log links', () => {
        // kubelet links /var/log/containers/*.log (a fixed path) to the pod logs in its podLogsDir.
        if (!existsSync('/var/log/containers')) return;
        for (const f of readdirSync('/var/log/containers')) {
          const link = join('/var/log/containers', f);
          try {
            if (readlinkSync(link).startsWith(dir)) unlinkSync(link);
          } catch {
            // not a link
          }
        }
      });
      await step('control plane', () => kube?.stop());
      await step('directory', () => rm(dir, { recursive: true, force: true }));
      if (problems.length > 0) throw new Error(`test cluster teardown left something behind:\n${problems.join('\n')}`);
    })();
    return stopped;
  };
  // A test process that exits without stop() still must not leave a node behind:
  // the best that can be done synchronously is killing the processes (process.ts
  // does) and the pods'; `make e2e` runs stop() in every path.
  const onExit = () => {
    killPids(cgroupPids(cgroupRoot));
    killPids(pidsWithArg(containerdSocket));
  };
  process.once('exit', onExit);

  try {
    // The pod network's bridge, made here (the CNI bridge plugin then uses it) so
    // that host services can be forwarded to its address before the first pod.
    await shOk('ip', ['link', 'add', 'name', bridge, 'type', 'bridge']);
    await shOk('ip', ['addr', 'add', `${hostAddress}/24`, 'dev', bridge]);
    await shOk('ip', ['link', 'set', bridge, 'up']);
    createCgroupRoot(cgroupRoot);

    kube = await startKubeApiServer({
      echo,
      apiServerArgs: [
        // A controller-manager makes the ServiceAccounts here: admission as on a real cluster.
        '--disable-admission-plugins=',
        '--service-cluster-ip-range=10.0.0.0/24',
      ],
    });
    const kubeconfigPath = kube.kubeconfigPath;

    // Pods reach the API server through the `kubernetes` Service (10.0.0.1:443):
    // its endpoint is a forwarder on the bridge address to the loopback-only API server.
    const exposeToPods = async (port: number): Promise<number> => {
      const server = createServer((client) => {
        const upstream = connect(port, '127.0.0.1');
        forwarded.add(client).add(upstream);
        client.pipe(upstream).pipe(client);
        const close = () => {
          client.destroy();
          upstream.destroy();
          forwarded.delete(client);
          forwarded.delete(upstream);
        };
        client.on('error', close).on('close', close);
        upstream.on('error', close).on('close', close);
      });
      forwarders.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, hostAddress, () => resolve());
      });
      const address = server.address();
      if (!address || typeof address !== 'object') throw new Error('forwarder has no port');
      return address.port;
    };
    const apiPort = Number(new URL(kube.url).port);
    const apiForward = await exposeToPods(apiPort);
    await shOk(
      bin('kubectl'),
      ['--kubeconfig', kubeconfigPath, 'apply', '-f', '-'],
      yamlOf({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: 'kubernetes',
          namespace: 'default',
          labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'tteok-test-cluster' },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: [hostAddress], conditions: { ready: true } }],
        ports: [{ name: 'https', port: apiForward, protocol: 'TCP' }],
      }),
    );

    // containerd, private to this node.
    const cniConfDir = join(dir, 'cni', 'net.d');
    await mkdir(cniConfDir, { recursive: true });
    await writeFile(
      join(cniConfDir, '10-tteok.conflist'),
      JSON.stringify(
        {
          cniVersion: '1.0.0',
          name: netName,
          plugins: [
            {
              type: 'bridge',
              bridge,
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: podSubnet, gateway: hostAddress }]],
                routes: [{ dst: '0.0.0.0/0' }],
                dataDir: join(dir, 'cni', 'ipam'),
              },
            },
          ],
        },
        null,
        2,
      ),
    );
    const containerdDir = join(dir, 'containerd');
    await mkdir(containerdDir, { recursive: true });
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    await writeFile(
      join(containerdDir, 'config.toml'),
      [
        'version = 2',
        `root = "${join(containerdDir, 'root')}"`,
        `state = "${join(containerdDir, 'state')}"`,
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
        '[grpc]',
        `  address = "${containerdSocket}"`,
        '[ttrpc]',
        `  address = "${containerdSocket}.ttrpc"`,
        '[debug]',
        '  level = "warn"',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${join(containerdDir, 'opt')}"`,
        `[${cri}]`,
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        // runc may not raise oom_score_adj here (no CAP_SYS_RESOURCE in the bounding set).
        '  restrict_oom_score_adj = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        '  enable_cdi = false',
        `[${cri}.containerd]`,
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `[${cri}.containerd.runtimes.runc.options]`,
        '  SystemdCgroup = false',
        `  Root = "${join(containerdDir, 'runc')}"`,
        `[${cri}.cni]`,
        '  bin_dir = "/usr/lib/cni"',
        `  conf_dir = "${cniConfDir}"`,
        '',
      ].join('\n'),
    );
    processes.containerd = spawnManaged('containerd', 'containerd', ['--config', join(containerdDir, 'config.toml')], { echo });
    await waitFor(
      'containerd to answer',
      async () => {
        if (processes.containerd!.child.exitCode !== null) throw new Error(`containerd exited:\n${processes.containerd!.lines.slice(-20).join('\n')}`);
        return (await sh('ctr', ['--address', containerdSocket, 'version'])).code === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const importImage = async (archive: string) => {
      await shOk('ctr', ['--address', containerdSocket, '-n', 'k8s.io', 'images', 'import', '--no-unpack=false', archive]);
    };
    await importImage(pauseImageArchive());

    // Files the components read.
    const caFile = join(dir, 'ca.crt');
    if (!kube.caCert) throw new Error('kube-apiserver wrote no CA (apiserver.crt has a single certificate)');
    await writeFile(caFile, kube.caCert);
    const ports = {
      cm: await freePort(),
      sched: await freePort(),
      kubelet: await freePort(),
      kubeletHealthz: await freePort(),
      proxyHealthz: await freePort(),
      proxyMetrics: await freePort(),
    };

    processes['kube-controller-manager'] = spawnManaged(
      'kube-controller-manager',
      bin('kube-controller-manager'),
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--authentication-kubeconfig=${kubeconfigPath}`,
        `--authorization-kubeconfig=${kubeconfigPath}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.cm}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        // The kube-root-ca.crt ConfigMap every pod's service-account volume projects.
        `--root-ca-file=${caFile}`,
        `--service-account-private-key-file=${join(kube.dir, 'sa.key')}`,
        '--use-service-account-credentials=false',
        '--controllers=*',
        '--v=1',
      ],
      { echo },
    );
    processes['kube-scheduler'] = spawnManaged(
      'kube-scheduler',
      bin('kube-scheduler'),
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--authentication-kubeconfig=${kubeconfigPath}`,
        `--authorization-kubeconfig=${kubeconfigPath}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.sched}`,
        `--cert-dir=${join(dir, 'scheduler-certs')}`,
        '--v=1',
      ],
      { echo },
    );

    // kubelet in a mount namespace of its own (see the top of this file).
    await mkdir(kubeletRoot, { recursive: true });
    await shOk('mount', ['--bind', kubeletRoot, kubeletRoot]);
    await shOk('mount', ['--make-shared', kubeletRoot]);
    const sysctlDir = join(dir, 'kubelet-sysctls');
    await mkdir(sysctlDir, { recursive: true });
    const binds: string[] = [];
    for (const [key, expected] of Object.entries(KUBELET_KERNEL_DEFAULTS)) {
      const path = join('/proc/sys', key);
      const current = existsSync(path) ? (await sh('cat', [path])).stdout.trim() : expected;
      if (current === expected) continue;
      const file = join(sysctlDir, key.replace(/\//g, '.'));
      await writeFile(file, `${expected}\n`);
      binds.push(`mount --bind '${file}' '${path}'`);
    }
    const wrapper = join(dir, 'kubelet-ns.sh');
    await writeFile(
      wrapper,
      [
        '#!/bin/sh',
        '# Runs kubelet (in the mount namespace unshare made) with the sysctls it checks bind-mounted from files.',
        'set -e',
        // Mounts on /proc stay in this namespace; the rest (the shared root dir) propagates to the host.
        'mount --make-rslave /proc',
        ...binds,
        'exec "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const kubeletConfig = join(dir, 'kubelet-config.yaml');
    await writeFile(
      kubeletConfig,
      yamlOf({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: '127.0.0.1',
        port: ports.kubelet,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: ports.kubeletHealthz,
        // Reachable on loopback only; the API server does not present a client certificate.
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        cgroupDriver: 'cgroupfs',
        cgroupRoot,
        failCgroupV1: false,
        failSwapOn: false,
        protectKernelDefaults: true,
        containerRuntimeEndpoint: `unix://${containerdSocket}`,
        podLogsDir: join(dir, 'pod-logs'),
        volumePluginDir: join(dir, 'volume-plugins'),
        resolvConf: '/etc/resolv.conf',
        // A test node on a shared disk: evict only when really out of space, never GC the imported images.
        evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        registerNode: true,
        staticPodPath: '',
        // Pod status reaches the API server quickly.
        nodeStatusUpdateFrequency: '4s',
        syncFrequency: '10s',
      }),
    );
    processes.kubelet = spawnManaged(
      'kubelet',
      'unshare',
      [
        '--mount',
        '--propagation',
        'unchanged',
        '--',
        'sh',
        wrapper,
        bin('kubelet'),
        `--config=${kubeletConfig}`,
        `--kubeconfig=${kubeconfigPath}`,
        `--hostname-override=${NODE_NAME}`,
        `--root-dir=${kubeletRoot}`,
        '--v=1',
      ],
      { echo },
    );

    const proxyConfig = join(dir, 'kube-proxy-config.yaml');
    await writeFile(
      proxyConfig,
      yamlOf({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig: kubeconfigPath },
        mode: 'iptables',
        hostnameOverride: NODE_NAME,
        bindAddress: '127.0.0.1',
        healthzBindAddress: `127.0.0.1:${ports.proxyHealthz}`,
        metricsBindAddress: `127.0.0.1:${ports.proxyMetrics}`,
        clusterCIDR: podSubnet,
        // NodePorts answer on loopback only.
        nodePortAddresses: ['127.0.0.0/8'],
        iptables: { masqueradeAll: true, localhostNodePorts: true, syncPeriod: '10s', minSyncPeriod: '0s' },
        // 0: leave the host's conntrack settings as they are.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      }),
    );
    processes['kube-proxy'] = spawnManaged('kube-proxy', bin('kube-proxy'), [`--config=${proxyConfig}`, '--v=1'], { echo });

    const everyone = Object.values(processes);
    const died = () => everyone.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    await waitFor(
      'node localhost to be Ready',
      async () => {
        const dead = died();
        if (dead) throw new Error(`${dead.name} exited:\n${dead.lines.slice(-30).join('\n')}`);
        const out = await sh(bin('kubectl'), [
          '--kubeconfig',
          kubeconfigPath,
          'get',
          'node',
          NODE_NAME,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return out.stdout.trim() === 'True';
      },
      { timeoutMs: startTimeoutMs, intervalMs: 500 },
    ).catch((error: Error) => {
      const dead = died();
      throw dead
        ? new Error(`${dead.name} exited:\n${dead.lines.slice(-30).join('\n')}`)
        : new Error(`${error.message}\nkubelet's last lines:\n${processes.kubelet!.lines.slice(-30).join('\n')}`);
    });
    // Admission wants the namespace's default ServiceAccount, which the controller-manager makes.
    await waitFor(
      'the default ServiceAccount',
      async () => (await sh(bin('kubectl'), ['--kubeconfig', kubeconfigPath, 'get', 'serviceaccount', 'default'])).code === 0,
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    return { kube, kubeconfigPath, hostAddress, podSubnet, containerdSocket, processes, exposeToPods, importImage, stop };
  } catch (error) {
    await stop().catch((teardown: Error) => {
      (error as Error).message += `\n(and teardown: ${teardown.message})`;
    });
    throw error;
  }
}
