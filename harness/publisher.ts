// A real RTMP publisher: ffmpeg sending a test pattern the way OBS does
// (H.264 with B-frames and a fixed GOP, AAC audio, FLV over RTMP). The codec
// tests swap in another ffmpeg (ffmpeg 9, which speaks Enhanced RTMP) and
// other encoders, or leave out the video or the audio.
import { spawnManaged, type ManagedProcess } from './process.ts';
import { toolsBin } from './s3-server.ts';

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
  /** The ffmpeg to run (default: Debian's `ffmpeg`); see `FFMPEG9`. */
  binary?: string;
  /**
   * Video encoder arguments instead of x264's (the keyframe interval is still
   * set from gopSeconds with -g); false publishes no video (audio only).
   */
  video?: string[] | false;
  /** Audio encoder arguments instead of AAC's; false publishes no audio (video only). */
  audio?: string[] | false;
  /** More output options before the URL, e.g. ['-rtmp_enhanced_codecs', 'hvc1,av01,Opus']. */
  outputArgs?: string[];
}

/** ffmpeg 9 from the tools cache (test/tools/install-ffmpeg9.sh): it can publish HEVC, AV1 and Opus over Enhanced RTMP. */
export const FFMPEG9 = toolsBin('ffmpeg9');

export function publishTestPattern(options: PublishOptions): ManagedProcess {
  const fps = options.fps ?? 30;
  const gop = Math.round((options.gopSeconds ?? 1) * fps);
  const video = options.video ?? [
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-bf',
    String(options.bframes ?? 2),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    '-b:v',
    '600k',
  ];
  const audio = options.audio ?? ['-c:a', 'aac', '-b:a', '96k', '-ar', '48000', '-ac', '2'];
  const args = [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'warning',
    '-re',
    ...(video ? ['-f', 'lavfi', '-i', `testsrc2=size=${options.size ?? '426x240'}:rate=${fps}`] : []),
    ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'] : []),
    ...(options.seconds !== undefined ? ['-t', String(options.seconds)] : []),
    ...(video ? [...video, '-g', String(gop)] : []),
    ...(audio ? audio : []),
    ...(options.outputArgs ?? []),
    '-f',
    'flv',
    options.url,
  ];
  // SVT-AV1 prints its banner on stderr whatever ffmpeg's log level.
  return spawnManaged(options.name ?? 'ffmpeg-publisher', options.binary ?? 'ffmpeg', args, { env: { SVT_LOG: '1' } });
}

/**
 * x264 as low-latency encoders are set up (OBS's "zerolatency" tune: no
 * B-frames, no lookahead), for `video`; the keyframe interval still comes from
 * gopSeconds.
 */
export function zerolatencyX264(bitrate: string): string[] {
  return ['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-sc_threshold', '0', '-b:v', bitrate];
}
