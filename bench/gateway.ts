// Gateway throughput: lookups per second and p99 latency for
// GET /v1/streams/:namespace/:name under autocannon, versus a bare Fastify
// hello-world on the same machine in the same run, and each server's CPU
// time per request (read from /proc around each measurement).
//
// Both servers run at once and are measured in alternating rounds (hello,
// gateway, hello, gateway, …), so that load from anything else on the
// machine falls on both alike; requests per second are the mean over the
// rounds. CPU time per request varies much less than requests per second
// on a shared machine, so it is reported beside them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { tteokCommand, writeKeyFile } from '../harness/ingest-process.ts';
import { freePort } from '../harness/ports.ts';
import { spawnManaged } from '../harness/process.ts';
import { httpReady } from '../harness/wait.ts';
import { BENCH_BUILD } from './lib/dist-build.ts';
import { cpuSeconds } from './lib/proc-stats.ts';

export interface ThroughputResult {
  system: string;
  requestsPerSecond: number;
  /** Requests per second in each round, in order. */
  rounds: number[];
  /** The worst p99 latency of the rounds, ms. */
  p99Ms: number;
  errors: number;
  /** The server process's CPU time (user + system) per request answered, in µs. */
  cpuMicrosPerRequest: number;
}

const ROOT = join(import.meta.dirname, '..');

interface Target {
  system: string;
  url: string;
  pid: number;
}

async function measureRound(target: Target, seconds: number): Promise<{ rps: number; p99: number; errors: number; requests: number; cpu: number }> {
  const cpuBefore = cpuSeconds(target.pid);
  const r = await autocannon({ url: target.url, connections: 50, duration: seconds });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.non2xx, requests: r.requests.total, cpu: cpuSeconds(target.pid) - cpuBefore };
}

/** Another build of the gateway measured in the same rounds (BENCH_GATEWAY_COMPARE): a label and its compiled dist/bin/tteok.js. */
export interface GatewayVariant {
  system: string;
  main: string;
}

export async function gatewayThroughput(seconds = 10, rounds = 3, variants: GatewayVariant[] = []): Promise<ThroughputResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-gw-bench-'));
  const helloPort = await freePort();
  const port = await freePort();
  writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'demo', key: 'gateway_bench_key_0123456789' }]);
  // Both with plain node, no tsx loader: the hello-world's few lines through Node's own type stripping, the gateway from dist/.
  const hello = spawnManaged('hello-fastify', process.execPath, [join(ROOT, 'bench', 'lib', 'hello-fastify.ts')], {
    env: { PORT: String(helloPort), NODE_ENV: 'production' },
  });
  const command = tteokCommand('gateway', BENCH_BUILD);
  const gateway = spawnManaged('gateway', process.execPath, command.args, {
    cwd: ROOT,
    env: {
      ...command.env,
      TTEOK_GATEWAY_HOST: '127.0.0.1',
      TTEOK_GATEWAY_PORT: String(port),
      TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
      TTEOK_PLAYBACK_BASE_URL: 'https://d111111abcdef8.cloudfront.net',
      TTEOK_LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
    },
  });
  const others = await Promise.all(
    variants.map(async (variant) => {
      const variantPort = await freePort();
      const proc = spawnManaged(variant.system, process.execPath, ['--enable-source-maps', variant.main, 'gateway'], {
        cwd: ROOT,
        env: {
          ...command.env,
          TTEOK_GATEWAY_HOST: '127.0.0.1',
          TTEOK_GATEWAY_PORT: String(variantPort),
          TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
          TTEOK_PLAYBACK_BASE_URL: 'https://d111111abcdef8.cloudfront.net',
          TTEOK_LOG_LEVEL: 'warn',
          NODE_ENV: 'production',
        },
      });
      return { variant, proc, port: variantPort };
    }),
  );
  try {
    await httpReady(`http://127.0.0.1:${helloPort}/`);
    await httpReady(`http://127.0.0.1:${port}/readyz`);
    for (const o of others) await httpReady(`http://127.0.0.1:${o.port}/readyz`);
    const targets: Target[] = [
      { system: 'Fastify hello-world', url: `http://127.0.0.1:${helloPort}/`, pid: hello.child.pid! },
      { system: 'tteok gateway lookup', url: `http://127.0.0.1:${port}/v1/streams/default/demo`, pid: gateway.child.pid! },
      ...others.map((o) => ({ system: o.variant.system, url: `http://127.0.0.1:${o.port}/v1/streams/default/demo`, pid: o.proc.child.pid! })),
    ];
    // A short warm-up lets V8 optimise each hot path before the measurement.
    for (const target of targets) await autocannon({ url: target.url, connections: 20, duration: 2 });
    const measured = targets.map(() => [] as Array<Awaited<ReturnType<typeof measureRound>>>);
    for (let round = 0; round < rounds; round++) {
      for (const [i, target] of targets.entries()) measured[i]!.push(await measureRound(target, seconds));
    }
    return targets.map((target, i) => {
      const m = measured[i]!;
      const sum = (f: (x: (typeof m)[number]) => number) => m.reduce((a, x) => a + f(x), 0);
      return {
        system: target.system,
        requestsPerSecond: sum((x) => x.rps) / m.length,
        rounds: m.map((x) => x.rps),
        p99Ms: Math.max(...m.map((x) => x.p99)),
        errors: sum((x) => x.errors),
        cpuMicrosPerRequest:
          (sum((x) => x.cpu) /
            Math.max(
              1,
              sum((x) => x.requests),
            )) *
          1e6,
      };
    });
  } finally {
    for (const o of others) await o.proc.stop();
    await gateway.stop();
    await hello.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
