// The transcoder's cost against the encoder's own (issue 19 item 6): a
// 1080p30 source with 2 s keyframe intervals, cut into segments at its
// keyframes, encoded to a ladder (720p/480p/360p by default) once as tteok
// does it (one ffmpeg per segment, through the encoding code the transcoder
// role and the one-machine mode share) and once as the same ffmpeg command
// run alone over the whole stream. CPU seconds are ffmpeg's (reaped
// children's) plus, for tteok, the Node process's own; the ratio is the
// overhead of cutting the work per segment.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { initTracks, videoFrameRate } from '../common/fmp4-boxes.ts';
import { runFfmpeg } from '../common/transcode/ffmpeg-process.ts';
import { ownCpuSeconds, reapedChildrenCpuSeconds } from '../common/transcode/process-cpu.ts';
import { DEFAULT_ENCODING_LIMITS, encodeRenditions, presetsFor, renditionArgs } from '../common/transcode/rendition-encoding.ts';

export interface TranscoderCost {
  presets: string[];
  mediaSeconds: number;
  segments: number;
  tteokCpuSeconds: number;
  tteokWallSeconds: number;
  aloneCpuSeconds: number;
  aloneWallSeconds: number;
}

const benchDir = () => join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bench');

/** A 1080p30 H.264 + AAC fragmented MP4, one fragment per 2 s GOP (as the ingest cuts segments at keyframes), encoded once and cached. */
export function ladderSource(seconds = 30): string {
  const dir = benchDir();
  const path = join(dir, `1080p30-6000k-gop2s-${seconds}s.mp4`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  process.stderr.write('bench: encoding the 1080p source once\n');
  execFileSync('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds)],
    ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-b:v', '6000k', '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-c:a', 'aac'],
    ...['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', path],
  ]);
  return path;
}

/** The init segment and each fragment (moof + mdat) of a fragmented MP4 file. */
export function fragments(file: Uint8Array): { init: Uint8Array; segments: Uint8Array[] } {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const segments: Uint8Array[] = [];
  let init: Uint8Array | undefined;
  let pos = 0;
  let fragmentStart = -1;
  while (pos + 8 <= file.length) {
    const size = view.getUint32(pos);
    const type = String.fromCharCode(...file.subarray(pos + 4, pos + 8));
    if (type === 'moof') {
      init ??= file.subarray(0, pos);
      fragmentStart = pos;
    } else if (type === 'mdat' && fragmentStart >= 0) {
      segments.push(file.subarray(fragmentStart, pos + size));
      fragmentStart = -1;
    }
    pos += size;
  }
  if (!init) throw new Error('no fragments');
  return { init, segments };
}

function cpuNow(): number {
  return ownCpuSeconds() + reapedChildrenCpuSeconds();
}

export async function transcoderCost(presetNames = ['720p', '480p', '360p'], seconds = 30): Promise<TranscoderCost> {
  const { init, segments } = fragments(new Uint8Array(readFileSync(ladderSource(seconds))));
  const limits = { ...DEFAULT_ENCODING_LIMITS, timeoutMs: 120_000 };
  // Alone: the same ffmpeg arguments over the whole stream in one run.
  const tracks = initTracks(init);
  const presets = presetsFor(presetNames, { hasVideo: true, hasAudio: true, height: 1080 });
  const args = renditionArgs(presets, {
    hasAudio: true,
    fps: videoFrameRate(segments[0]!, tracks),
    videoTimescale: tracks.find((t) => t.kind === 'video')?.timescale,
  });
  const whole = new Uint8Array(init.length + segments.reduce((n, s) => n + s.length, 0));
  let at = 0;
  for (const part of [init, ...segments]) {
    whole.set(part, at);
    at += part.length;
  }
  let cpu = cpuNow();
  let wall = performance.now();
  await runFfmpeg({ binary: 'ffmpeg', args, input: whole, outputs: presets.length, timeoutMs: 600_000, maxOutputBytes: 1 << 30 });
  const aloneCpuSeconds = cpuNow() - cpu;
  const aloneWallSeconds = (performance.now() - wall) / 1000;
  // tteok: one job per segment, one after the other (as one stream's driver sends them).
  cpu = cpuNow();
  wall = performance.now();
  for (const segment of segments) await encodeRenditions({ init, segment, presets: presetNames }, limits);
  return {
    presets: presetNames,
    mediaSeconds: seconds,
    segments: segments.length,
    tteokCpuSeconds: cpuNow() - cpu,
    tteokWallSeconds: (performance.now() - wall) / 1000,
    aloneCpuSeconds,
    aloneWallSeconds,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await transcoderCost());
}
