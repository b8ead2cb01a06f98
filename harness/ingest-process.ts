// Runs the real ingest as a child process, the way a pod runs it, so tests
// can SIGTERM or SIGKILL it and read every line it logged.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { httpReady } from './wait.ts';

const ROOT = join(import.meta.dirname, '..');

export interface TestStream {
  name: string;
  namespace?: string;
  key: string;
  spec?: Record<string, unknown>;
}

export function writeKeyFile(path: string, streams: TestStream[]): void {
  const docs = streams.map((s) =>
    stringify({
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name: s.name, namespace: s.namespace ?? 'default' },
      spec: s.spec ?? {},
      streamKey: s.key,
    }),
  );
  writeFileSync(path, docs.join('---\n'));
}

export interface IngestProcess {
  proc: ManagedProcess;
  rtmpPort: number;
  httpPort: number;
  rtmpUrl(key: string): string;
  metrics(): Promise<string>;
}

/**
 * How a tteok process is started: from the TypeScript sources through tsx
 * (the tests' default: no build step, the code as it is in the work tree), or
 * from the compiled `dist/` build (`npm run build`) with plain node, as the
 * container runs it — what the benchmarks measure, so that tsx's loader and
 * its on-the-fly compilation are not counted against us.
 */
export type TteokBuild = 'tsx' | 'dist' | { main: string };

/** The node arguments and environment that run `tteok <role>` from the given build. */
export function tteokCommand(
  role: 'ingest' | 'gateway' | 'controller' | 'transcoder' | 'local',
  build: TteokBuild = 'tsx',
): { args: string[]; env: Record<string, string> } {
  if (build === 'tsx') return { args: ['--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), role], env: {} };
  // Another compiled build (a benchmark comparing builds in one run): its dist/bin/tteok.js.
  const main = build === 'dist' ? join(ROOT, 'dist', 'bin', 'tteok.js') : build.main;
  if (!existsSync(main)) throw new Error(`${main} does not exist: build it first (npm run build)`);
  // The Dockerfile's ENTRYPOINT and ENV.
  return { args: ['--enable-source-maps', main, role], env: { NODE_ENV: 'production' } };
}

export async function startIngestProcess(
  env: Record<string, string>,
  ports?: { rtmpPort: number; httpPort: number },
  options: { build?: TteokBuild } = {},
): Promise<IngestProcess> {
  const rtmpPort = ports?.rtmpPort ?? (await freePort());
  const httpPort = ports?.httpPort ?? (await freePort());
  const command = tteokCommand('ingest', options.build);
  const proc = spawnManaged('ingest', process.execPath, command.args, {
    cwd: ROOT,
    env: {
      ...command.env,
      TTEOK_RTMP_HOST: '127.0.0.1',
      TTEOK_RTMP_PORT: String(rtmpPort),
      TTEOK_HTTP_HOST: '127.0.0.1',
      TTEOK_HTTP_PORT: String(httpPort),
      TTEOK_LOG_LEVEL: 'debug',
      ...env,
    },
  });
  await proc.waitForLine(/"msg":"ingest ready"/, 30_000);
  await httpReady(`http://127.0.0.1:${httpPort}/readyz`);
  return {
    proc,
    rtmpPort,
    httpPort,
    rtmpUrl: (key) => `rtmp://127.0.0.1:${rtmpPort}/live/${key}`,
    metrics: async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text(),
  };
}

/** The value of a metric sample in Prometheus text format (0 when absent). */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
