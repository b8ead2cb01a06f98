// Gateway throughput: lookups per second and p99 latency for
// GET /v1/streams/:namespace/:name under autocannon, versus a bare Fastify
// hello-world on the same machine in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { writeKeyFile } from '../test/harness/ingest-process.ts';
import { freePort } from '../test/harness/ports.ts';
import { spawnManaged } from '../test/harness/process.ts';
import { httpReady } from '../test/harness/wait.ts';

export interface ThroughputResult {
  system: string;
  requestsPerSecond: number;
  p99Ms: number;
  errors: number;
}

const ROOT = join(import.meta.dirname, '..');

async function load(system: string, url: string, seconds: number): Promise<ThroughputResult> {
  // A short warm-up lets V8 optimise the hot path before the measurement.
  await autocannon({ url, connections: 20, duration: 2 });
  const r = await autocannon({ url, connections: 50, duration: seconds });
  return { system, requestsPerSecond: r.requests.average, p99Ms: r.latency.p99, errors: r.errors + r.non2xx };
}

export async function gatewayThroughput(seconds = 10): Promise<ThroughputResult[]> {
  const results: ThroughputResult[] = [];
  const helloPort = await freePort();
  const hello = spawnManaged('hello-fastify', process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'lib', 'hello-fastify.ts')], { env: { PORT: String(helloPort), NODE_ENV: 'production' } });
  try {
    await httpReady(`http://127.0.0.1:${helloPort}/`);
    results.push(await load('Fastify hello-world', `http://127.0.0.1:${helloPort}/`, seconds));
  } finally {
    await hello.stop();
  }

  const dir = mkdtempSync(join(tmpdir(), 'tteok-gw-bench-'));
  const port = await freePort();
  writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'demo', key: 'gateway_bench_key_0123456789' }]);
  const gateway = spawnManaged('gateway', process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), 'gateway'], {
    cwd: ROOT,
    env: { TTEOK_GATEWAY_HOST: '127.0.0.1', TTEOK_GATEWAY_PORT: String(port), TTEOK_KEYS_FILE: join(dir, 'keys.yaml'), TTEOK_PLAYBACK_BASE_URL: 'https://d111111abcdef8.cloudfront.net', TTEOK_LOG_LEVEL: 'warn', NODE_ENV: 'production' },
  });
  try {
    await httpReady(`http://127.0.0.1:${port}/readyz`);
    results.push(await load('tteok gateway lookup', `http://127.0.0.1:${port}/v1/streams/default/demo`, seconds));
  } finally {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
