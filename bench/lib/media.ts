// The benchmark's input: a pre-encoded 720p, 2.5 Mbps, 30 fps FLV with a 1 s
// GOP and AAC, made once with ffmpeg and cached. Publishers replay it in
// copy mode, so encoding costs nothing during the measurement.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FFMPEG9 } from '../../harness/publisher.ts';
import { spawnManaged, type ManagedProcess } from '../../harness/process.ts';

const benchDir = () => join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bench');

export function benchInput(): string {
  const dir = benchDir();
  const path = join(dir, '720p-2500k-gop1s-60s.flv');
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  process.stderr.write('bench: encoding the 720p input once (about a minute)\n');
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=1280x720:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    '60',
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    '2500k',
    '-maxrate',
    '2500k',
    '-bufsize',
    '2500k',
    '-bf',
    '2',
    '-g',
    '30',
    '-keyint_min',
    '30',
    '-sc_threshold',
    '0',
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-ac',
    '2',
    '-f',
    'flv',
    `${path}.tmp`,
  ]);
  execFileSync('mv', [`${path}.tmp`, path]);
  return path;
}

/** The same picture and bit rate in a codec OBS 30+ sends over Enhanced RTMP. */
export type EnhancedCodec = 'hevc' | 'av1';

const ENHANCED_ENCODERS: Record<EnhancedCodec, string[]> = {
  hevc: [
    '-c:v',
    'libx265',
    '-preset',
    'veryfast',
    '-x265-params',
    'log-level=error:bframes=2:scenecut=0:keyint=30:min-keyint=30:vbv-maxrate=2500:vbv-bufsize=2500',
    '-b:v',
    '2500k',
  ],
  av1: ['-c:v', 'libsvtav1', '-preset', '10', '-g', '30', '-svtav1-params', 'scd=0', '-b:v', '2500k'],
};

/**
 * The benchmark input in HEVC or AV1 (with AAC), encoded once with the static
 * ffmpeg 9 (Debian's ffmpeg 5.1 has neither encoder nor Enhanced RTMP) and
 * cached as a file the same ffmpeg 9 replays over Enhanced RTMP.
 */
export function enhancedBenchInput(codec: EnhancedCodec): string {
  const dir = benchDir();
  const path = join(dir, `720p-2500k-gop1s-60s-${codec}.mp4`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`bench: encoding the 720p ${codec} input once (a few minutes)\n`);
  execFileSync(FFMPEG9, [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=1280x720:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    '60',
    '-pix_fmt',
    'yuv420p',
    ...ENHANCED_ENCODERS[codec],
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-ac',
    '2',
    '-f',
    'mp4',
    `${path}.tmp`,
  ]);
  execFileSync('mv', [`${path}.tmp`, path]);
  return path;
}

/** Replays the input in real time, looping, as one publisher (HEVC and AV1 inputs over Enhanced RTMP). */
export function replay(input: string, url: string, name = 'publisher', seconds?: number): ManagedProcess {
  const enhanced = input.endsWith('.mp4');
  return spawnManaged(name, enhanced ? FFMPEG9 : 'ffmpeg', [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'error',
    '-re',
    '-stream_loop',
    '-1',
    '-i',
    input,
    ...(seconds ? ['-t', String(seconds)] : []),
    '-c',
    'copy',
    ...(enhanced ? ['-rtmp_enhanced_codecs', 'hvc1,av01'] : []),
    '-f',
    'flv',
    url,
  ]);
}
