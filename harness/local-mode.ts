// `tteok local` (ingest and gateway in one process, as `make run` starts it)
// as a child process for tests, on free loopback ports.
import { join } from 'node:path';
import { type TteokBuild, tteokCommand } from './ingest-process.ts';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';

const ROOT = join(import.meta.dirname, '..');

export interface LocalModePorts {
  rtmpPort: number;
  httpPort: number;
  gatewayPort: number;
}

export async function localModePorts(): Promise<LocalModePorts> {
  return { rtmpPort: await freePort(), httpPort: await freePort(), gatewayPort: await freePort() };
}

/**
 * Starts `tteok local` with its state in `home`; `env` adds or overrides
 * settings. `build`: the sources through tsx (the tests), or the compiled
 * build the benchmarks measure.
 */
export function spawnLocalMode(home: string, ports: LocalModePorts, env: Record<string, string> = {}, build: TteokBuild = 'tsx'): ManagedProcess {
  const command = tteokCommand('local', build);
  return spawnManaged('tteok-local', process.execPath, command.args, {
    cwd: ROOT,
    env: {
      ...command.env,
      TTEOK_LOCAL_HOME: home,
      TTEOK_RTMP_PORT: String(ports.rtmpPort),
      TTEOK_HTTP_PORT: String(ports.httpPort),
      TTEOK_GATEWAY_PORT: String(ports.gatewayPort),
      ...env,
    },
  });
}

/** The stream key `tteok local` prints in its banner for the first stream of a new home. */
export async function bannerStreamKey(local: ManagedProcess): Promise<string> {
  return (await local.waitForLine(/^\s+Stream Key:\s+\S+$/, 60_000)).trim().split(/\s+/).at(-1)!;
}
