// Helpers for the chart and manifest tests (test/chart*.test.ts,
// test/manifests*.test.ts): where the tools are, running them, rendering the
// chart and reading what it renders.
//
// The tools come from `make deps`: helm and kubectl from
// test/tools/install-helm-kubectl.sh, kubeconform and the monitoring.coreos.com
// CRDs from test/tools/build-binaries.sh, cfn-lint from
// test/tools/install-cfn-lint.sh (all in ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}),
// promtool from Debian's prometheus package.
import { execFile } from 'node:child_process';
import { constants as fsConstants, accessSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CHART = join(ROOT, 'charts', 'tteok');
export const CACHE = process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok');

const HINTS: Record<string, string> = {
  helm: 'bash test/tools/install-helm-kubectl.sh',
  kubectl: 'bash test/tools/install-helm-kubectl.sh',
  kubeconform: 'bash test/tools/build-binaries.sh kubeconform',
  'cfn-lint': 'bash test/tools/install-cfn-lint.sh',
  promtool: 'bash test/tools/install-debian-packages.sh prometheus',
};

/**
 * The tool's path: the tools cache first (so the pinned helm and kubectl win
 * over any on PATH), then PATH. Throws with the command that installs it.
 */
export function tool(name: string): string {
  const candidates = [
    join(CACHE, 'bin', name),
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, name)),
  ];
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(`${name} not found in ${join(CACHE, 'bin')} or on PATH; run: ${HINTS[name] ?? 'make deps'}`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects on a non-zero exit (the caller asserts). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, ...options.env },
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? 120_000,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`${command} ${args.join(' ')}: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a command and returns stdout; rejects with its output on a non-zero exit. */
export async function runOk(command: string, args: string[], options: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`.trim());
  return r.stdout;
}

export const CI_VALUES = Object.fromEntries(
  readdirSync(join(CHART, 'ci'))
    .filter((f) => f.endsWith('-values.yaml'))
    .map((f) => [f.replace(/-values\.yaml$/, ''), join(CHART, 'ci', f)]),
) as Record<string, string>;

export const RELEASE = 't';
export const NAMESPACE = 'tteok';

/** `helm template` of the chart; `set` entries are --set arguments. */
export async function helmTemplate(
  options: { values?: string[]; set?: string[]; release?: string; namespace?: string; extra?: string[] } = {},
): Promise<RunResult> {
  const args = ['template', options.release ?? RELEASE, CHART, '--namespace', options.namespace ?? NAMESPACE];
  for (const v of options.values ?? []) args.push('--values', v);
  for (const s of options.set ?? []) args.push('--set', s);
  args.push(...(options.extra ?? []));
  return run(tool('helm'), args);
}

/** Renders and fails on error; returns the YAML text. */
export async function render(options: Parameters<typeof helmTemplate>[0] = {}): Promise<string> {
  const r = await helmTemplate(options);
  if (r.code !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return r.stdout;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Every non-empty document of a multi-document YAML text, parsed strictly (duplicate keys fail). */
export function parseDocs(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
    if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) out.push(value);
  }
  return out;
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function get(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const o = find(objects, kind, name);
  if (!o) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in the render (have: ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o;
}

/** Metric names the code exports: every `name: 'tteok_…'` in ingest/, gateway/, controller/, with whether each is a Histogram. */
export function exportedMetrics(): Map<string, { type: string; file: string }> {
  const found = new Map<string, { type: string; file: string }>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        // Also a histogram of our own declared the same way (the gateway's RequestDurationHistogram).
        for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary|[A-Za-z]+Histogram)\(\{\s*name:\s*'(tteok_[a-z0-9_]+)'/g)) {
          found.set(m[2]!, { type: m[1]!.endsWith('Histogram') ? 'Histogram' : m[1]!, file: path.slice(ROOT.length + 1) });
        }
      }
    }
  };
  // transcoder/: the transcoder role's, where the tree has it.
  for (const dir of ['ingest', 'gateway', 'controller', 'transcoder']) if (existsSync(join(ROOT, dir))) walk(join(ROOT, dir));
  return found;
}

/**
 * The tteok_ metric names a PromQL expression reads, mapped to the exported
 * metric they belong to: a Histogram's _bucket/_count/_sum series are its own.
 * Returns unknown names in `missing`.
 */
export function metricsIn(expr: string, exported: Map<string, { type: string }>): { used: Set<string>; missing: string[] } {
  const used = new Set<string>();
  const missing: string[] = [];
  for (const m of expr.matchAll(/\btteok_[a-z0-9_]+/g)) {
    const name = m[0];
    if (exported.has(name)) {
      used.add(name);
      continue;
    }
    const base = name.replace(/_(bucket|count|sum)$/, '');
    const meta = exported.get(base);
    if (base !== name && meta && (meta.type === 'Histogram' || (meta.type === 'Summary' && !name.endsWith('_bucket')))) used.add(base);
    else missing.push(name);
  }
  return { used, missing };
}
