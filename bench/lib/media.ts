// The benchmark's input: a pre-encoded 720p, 2.5 Mbps, 30 fps FLV with a 1 s
// GOP and AAC, made once with ffmpeg and cached. Publishers replay it in
// copy mode, so encoding costs nothing during the measurement.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnManaged, type ManagedProcess } from '../../test/harness/process.ts';

export function benchInput(): string {
  const dir = join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bench');
  const path = join(dir, '720p-2500k-gop1s-60s.flv');
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  process.stderr.write('bench: encoding the 720p input once (about a minute)\n');
  execFileSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '60',
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '2500k', '-bf', '2', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0',
    '-c:a', 'aac', '-b:a', '128k', '-ac', '2',
    '-f', 'flv', `${path}.tmp`,
  ]);
  execFileSync('mv', [`${path}.tmp`, path]);
  return path;
}

/** Replays the input in real time, looping, as one publisher. */
export function replay(input: string, url: string, name = 'publisher', seconds?: number): ManagedProcess {
  return spawnManaged(name, 'ffmpeg', [
    '-hide_banner', '-nostats', '-loglevel', 'error',
    '-re', '-stream_loop', '-1', '-i', input,
    ...(seconds ? ['-t', String(seconds)] : []),
    '-c', 'copy', '-f', 'flv', url,
  ]);
}
