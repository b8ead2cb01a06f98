// A real RTMP publisher: ffmpeg sending a test pattern the way OBS does
// (H.264 with B-frames and a fixed GOP, AAC audio, FLV over RTMP).
import { spawnManaged, type ManagedProcess } from './process.ts';

export interface PublishOptions {
  url: string;
  /** Seconds of media to send; omit to publish until stopped. */
  seconds?: number;
  /** Keyframe interval in seconds (OBS's "Keyframe Interval"). */
  gopSeconds?: number;
  fps?: number;
  size?: string;
  bframes?: number;
  name?: string;
}

export function publishTestPattern(options: PublishOptions): ManagedProcess {
  const fps = options.fps ?? 30;
  const gop = Math.round((options.gopSeconds ?? 1) * fps);
  const args = [
    '-hide_banner', '-nostats', '-loglevel', 'warning',
    '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${options.size ?? '426x240'}:rate=${fps}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    ...(options.seconds !== undefined ? ['-t', String(options.seconds)] : []),
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-bf', String(options.bframes ?? 2), '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
    '-b:v', '600k',
    '-c:a', 'aac', '-b:a', '96k', '-ar', '48000', '-ac', '2',
    '-f', 'flv', options.url,
  ];
  return spawnManaged(options.name ?? 'ffmpeg-publisher', 'ffmpeg', args);
}
