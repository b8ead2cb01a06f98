// The transcoder role as its own process (`tteok transcoder`), on loopback, with real ffmpeg.
import { join } from 'node:path';
import { tteokCommand, type TteokBuild } from './ingest-process.ts';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { httpReady } from './wait.ts';

const ROOT = join(import.meta.dirname, '..');

export interface TranscoderProcess {
  proc: ManagedProcess;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  metrics(): Promise<string>;
}

export async function startTranscoderProcess(
  env: Record<string, string> = {},
  options: { build?: TteokBuild; port?: number } = {},
): Promise<TranscoderProcess> {
  const port = options.port ?? (await freePort());
  const command = tteokCommand('transcoder', options.build);
  const proc = spawnManaged('transcoder', process.execPath, command.args, {
    cwd: ROOT,
    env: { ...command.env, TTEOK_TRANSCODER_HTTP_HOST: '127.0.0.1', TTEOK_TRANSCODER_HTTP_PORT: String(port), TTEOK_LOG_LEVEL: 'debug', ...env },
  });
  await proc.waitForLine(/"msg":"transcoder ready"/, 30_000);
  const url = `http://127.0.0.1:${port}`;
  await httpReady(`${url}/readyz`);
  return { proc, port, url, metrics: async () => (await fetch(`${url}/metrics`)).text() };
}
