// What a test node (harness/cluster.ts) changes on the host, and undoing
// exactly that: the iptables rules and chains kubelet, kube-proxy and the CNI
// plugins add, the network namespaces the CRI makes for pods, the sysctls the
// CNI bridge and kube-proxy switch on, mounts under the node's directory, and
// the cgroups of its pods. Everything is found by comparing with a snapshot
// taken before the node started, so rules, namespaces and cgroups that were
// there before (another test's, the machine's own) are left alone.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

/** Runs a command; resolves with its output, never rejects (teardown goes on past a failed step). */
export function sh(command: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { maxBuffer: 32 * 1024 * 1024, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && typeof error.code !== 'number' ? error.message : '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export async function shOk(command: string, args: string[], input?: string): Promise<string> {
  const r = await sh(command, args, input);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------
// iptables (both families; iptables-save's text is the snapshot)

const IPTABLES = [
  ['iptables-save', 'iptables-restore'],
  ['ip6tables-save', 'ip6tables-restore'],
] as const;

/** table -> { chains, rules } as iptables-save prints them. */
type IptablesState = Map<string, { chains: Set<string>; rules: Set<string> }>;

function parseIptablesSave(text: string): IptablesState {
  const state: IptablesState = new Map();
  let table: { chains: Set<string>; rules: Set<string> } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = { chains: new Set(), rules: new Set() };
      state.set(line.slice(1), table);
    } else if (line.startsWith(':') && table) table.chains.add(line.slice(1).split(' ')[0]!);
    else if (line.startsWith('-A ') && table) table.rules.add(line);
  }
  return state;
}

export interface IptablesSnapshot {
  save: string;
  restore: string;
  before: IptablesState;
}

export async function snapshotIptables(): Promise<IptablesSnapshot[]> {
  const out: IptablesSnapshot[] = [];
  for (const [save, restore] of IPTABLES) {
    const r = await sh(save, []);
    if (r.code === 0) out.push({ save, restore, before: parseIptablesSave(r.stdout) });
  }
  return out;
}

/**
 * Removes the rules added since the snapshot (from chains that were there
 * before) and the chains created since, in one iptables-restore --noflush per
 * table: deleting rules first, then flushing the new chains (they may jump to
 * each other), then deleting them.
 */
export async function restoreIptables(snapshots: IptablesSnapshot[]): Promise<string[]> {
  const problems: string[] = [];
  for (const { save, restore, before } of snapshots) {
    const now = parseIptablesSave((await sh(save, [])).stdout);
    for (const [table, { chains, rules }] of now) {
      const old = before.get(table) ?? { chains: new Set<string>(), rules: new Set<string>() };
      const newChains = [...chains].filter((c) => !old.chains.has(c));
      const newRulesInOldChains = [...rules].filter((r) => !old.rules.has(r) && old.chains.has(r.split(' ')[1]!));
      if (newChains.length === 0 && newRulesInOldChains.length === 0) continue;
      const script = [
        `*${table}`,
        ...newRulesInOldChains.map((r) => `-D ${r.slice(3)}`),
        ...newChains.map((c) => `-F ${c}`),
        ...newChains.map((c) => `-X ${c}`),
        'COMMIT',
        '',
      ].join('\n');
      const r = await sh(restore, ['--noflush'], script);
      if (r.code !== 0) problems.push(`${restore} (${table}): ${r.stderr.trim()}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// sysctls

export function readSysctls(names: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const name of names) {
    const path = join('/proc/sys', ...name.split('.'));
    if (existsSync(path)) values.set(name, readFileSync(path, 'utf8').trim());
  }
  return values;
}

/** Writes back every value that changed; returns what could not be. */
export function restoreSysctls(before: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, value] of before) {
    const path = join('/proc/sys', ...name.split('.'));
    try {
      if (readFileSync(path, 'utf8').trim() !== value) writeFileSync(path, `${value}\n`);
    } catch (error) {
      problems.push(`sysctl ${name}: ${(error as Error).message}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// network namespaces (the CRI names them /run/netns/cni-<uuid>)

export function listNetns(): Set<string> {
  try {
    return new Set(readdirSync('/run/netns'));
  } catch {
    return new Set();
  }
}

export async function removeNewNetns(before: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  for (const name of listNetns()) {
    if (before.has(name)) continue;
    // Deleting the namespace deletes the pod's end of its veth pair, and so the bridge's end.
    const r = await sh('ip', ['netns', 'delete', name]);
    if (r.code !== 0) problems.push(`ip netns delete ${name}: ${r.stderr.trim()}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------
// mounts

/** Mount points at or under `dir` in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export async function unmountUnder(dir: string): Promise<string[]> {
  const problems: string[] = [];
  // A bind mount can be stacked on itself (the node's shared root dir): repeat until none is left.
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return problems;
    for (const p of points) await sh('umount', ['-l', p]);
  }
  const left = mountsUnder(dir);
  if (left.length > 0) problems.push(`still mounted: ${left.join(', ')}`);
  return problems;
}

// ---------------------------------------------------------------------------
// cgroups (v1: one hierarchy per controller under /sys/fs/cgroup)

/** The cgroup v1 hierarchies (real directories, not the cpu -> cpu,cpuacct links). */
export function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  return readdirSync(base)
    .map((n) => join(base, n))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && existsSync(join(p, 'cgroup.procs'));
      } catch {
        return false;
      }
    });
}

/** Creates `name` (e.g. /tteok-abc) in every hierarchy; a cpuset needs its cpus and mems before it takes tasks. */
export function createCgroupRoot(name: string): void {
  for (const h of cgroupHierarchies()) {
    const dir = join(h, name);
    // mkdir in cgroupfs creates the control files.
    if (!existsSync(dir)) mkdirSync(dir);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = join(h, f);
      if (existsSync(parent) && readFileSync(join(dir, f), 'utf8').trim() === '') writeFileSync(join(dir, f), readFileSync(parent, 'utf8'));
    }
  }
}

/** Pids in `name` and below, in every hierarchy. */
export function cgroupPids(name: string): Set<number> {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p.trim()) pids.add(Number(p));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    } catch {
      // gone meanwhile
    }
  };
  for (const h of cgroupHierarchies()) walk(join(h, name));
  return pids;
}

/** Removes `name` and every cgroup below it, deepest first (they must be empty of tasks). */
export function removeCgroupTree(name: string): string[] {
  const problems: string[] = [];
  const remove = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) remove(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch (error) {
      problems.push(`rmdir ${dir}: ${(error as Error).message}`);
    }
  };
  for (const h of cgroupHierarchies()) remove(join(h, name));
  return problems;
}

/** Processes whose command line contains `needle` (e.g. the node's containerd socket, which every shim is started with). */
export function pidsWithArg(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (
        readFileSync(join('/proc', entry, 'cmdline'), 'utf8')
          .split('\0')
          .includes(needle)
      )
        pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

export function killPids(pids: Iterable<number>): void {
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
