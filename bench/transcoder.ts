// The transcoder's cost against the encoder's own (issue 19 item 6): a
// 1080p30 source with 2 s keyframe intervals, cut into segments at its
// keyframes, encoded to a ladder (720p/480p/360p by default) once through
// tteok's transcoder role as the ingest uses it (its own process, one POST
// /v1/renditions per segment, one after the other as one stream's driver
// sends them) and once as the same ffmpeg command run alone over the whole
// stream. CPU seconds: for tteok the transcoder process's own and its ffmpeg
// jobs' (the kernel's counts of the process and its reaped children), for
// the peer ffmpeg's; the ratio is tteok's overhead over the encoder.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { initTracks, videoFrameRate } from '../common/fmp4-boxes.ts';
import { runFfmpeg } from '../common/transcode/ffmpeg-process.ts';
import { reapedChildrenCpuSeconds } from '../common/transcode/process-cpu.ts';
import { presetsFor, renditionArgs } from '../common/transcode/rendition-encoding.ts';
import { decodeRenditionsBody, encodeSegmentBody, SEGMENT_CONTENT_TYPE } from '../common/transcode/wire.ts';
import type { TteokBuild } from '../harness/ingest-process.ts';
import { startTranscoderProcess } from '../harness/transcoder-process.ts';

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

/** User + system CPU seconds of a process and of the children it has reaped (/proc/<pid>/stat utime, stime, cutime, cstime). */
function processTreeCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

export async function transcoderCost(presetNames = ['720p', '480p', '360p'], seconds = 30, build: TteokBuild = 'tsx'): Promise<TranscoderCost> {
  const { init, segments } = fragments(new Uint8Array(readFileSync(ladderSource(seconds))));
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
  let cpu = reapedChildrenCpuSeconds();
  let wall = performance.now();
  await runFfmpeg({ binary: 'ffmpeg', args, input: whole, outputs: presets.length, timeoutMs: 600_000, maxOutputBytes: 1 << 30 });
  const aloneCpuSeconds = reapedChildrenCpuSeconds() - cpu;
  const aloneWallSeconds = (performance.now() - wall) / 1000;
  // tteok: the transcoder process, one request per segment, one after the other.
  const transcoder = await startTranscoderProcess({ TTEOK_TRANSCODER_JOB_TIMEOUT_SECONDS: '600' }, { build });
  const pid = transcoder.proc.child.pid!;
  try {
    cpu = processTreeCpuSeconds(pid);
    wall = performance.now();
    for (const segment of segments) {
      const res = await fetch(`${transcoder.url}/v1/renditions?presets=${presetNames.join(',')}`, {
        method: 'POST',
        headers: { 'content-type': SEGMENT_CONTENT_TYPE },
        body: Buffer.from(encodeSegmentBody({ init, segment })),
      });
      if (res.status !== 200) throw new Error(`the transcoder answered ${res.status}: ${await res.text()}`);
      if (decodeRenditionsBody(new Uint8Array(await res.arrayBuffer())).length !== presets.length) throw new Error('the transcoder left a rendition out');
    }
    return {
      presets: presetNames,
      mediaSeconds: seconds,
      segments: segments.length,
      tteokCpuSeconds: processTreeCpuSeconds(pid) - cpu,
      tteokWallSeconds: (performance.now() - wall) / 1000,
      aloneCpuSeconds,
      aloneWallSeconds,
    };
  } finally {
    await transcoder.proc.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await transcoderCost());
  const { stopAll } = await import('../harness/process.ts');
  await stopAll();
}
