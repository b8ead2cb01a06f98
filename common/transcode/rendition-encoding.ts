// A source segment in, its renditions (and thumbnails) out: the ffmpeg work
// of the adaptive ladder, shared by the transcoder role (transcoder/) and the
// one-machine mode's child processes (ingest/renditions/), so both encode
// exactly alike.
//
// One ffmpeg per source segment, stateless: the source's init segment and
// one media segment go in on stdin; it decodes once, splits the picture and
// encodes every asked preset with libx264 (veryfast, the preset's height,
// width from the aspect ratio and even, the preset's bitrate with a VBV cap
// of 1.5×, the frame rate capped); the audio is copied. Each output is a
// fragmented MP4 on a pipe of its own, split here into its init segment and
// one media segment, whose decode start time is then set to the source
// segment's (ffmpeg's muxer starts every output at zero) with the source's
// own timescale, so the same sequence number covers the same stretch of the
// stream in every rendition.
//
// Why one process per segment rather than a long-lived ffmpeg per stream:
// measured (bench/transcoder.ts; README "Transcoder"), a 1080p30 source in
// 2 s segments to 720p/480p/360p cost 44.8 CPU seconds per 30 s of media as
// 15 per-segment jobs against 43.7 for the same ffmpeg command run once over
// the same media: 2.5 % more, inside the issue's 10 %. The start-up (process,
// decoder, three x264 instances, the lookahead's fill) is small beside
// encoding 60 frames three times. A long-lived ffmpeg would have to be fed a
// continuous stream, kept on the source's keyframes (which only the packager
// knows, after the fact), restarted at every discontinuity and new init
// segment, and a crash or stall would take every later segment of the stream
// with it; a per-segment job is independent of the one before, so a
// transcoder can be killed, or a segment dropped, and the next one is whole.
import { presetNamed, type RenditionPreset } from '../renditions.ts';
import { clearDeclaredBitrates, decodeStarts, type Fmp4Track, initTracks, shiftDecodeStarts, splitFragmentedMp4, videoFrameRate } from '../fmp4-boxes.ts';
import { FfmpegError, runFfmpeg } from './ffmpeg-process.ts';

export interface EncodeInput {
  init: Uint8Array;
  segment: Uint8Array;
  /** Preset names (common/renditions.ts). Unknown names are refused; presets the source cannot give (at or above its height, video from audio) are skipped. */
  presets: string[];
  /** The source's picture height, when the caller knows it better than the init segment's tkhd. */
  sourceHeight?: number | undefined;
}

export interface EncodedRendition {
  rendition: string;
  init: Uint8Array;
  segment: Uint8Array;
}

export interface ThumbnailInput {
  init: Uint8Array;
  segment: Uint8Array;
}

export interface EncodingLimits {
  /** The ffmpeg binary. */
  ffmpeg: string;
  /** A job (one ffmpeg run) is killed after this. */
  timeoutMs: number;
  /** Input larger than this (init + segment) is refused before ffmpeg starts. */
  maxInputBytes: number;
}

export const DEFAULT_ENCODING_LIMITS: EncodingLimits = { ffmpeg: 'ffmpeg', timeoutMs: 30_000, maxInputBytes: 64 * 1024 * 1024 };

/** Thumbnails are this wide (or the source's width, if smaller). */
export const THUMBNAIL_WIDTH = 640;

/** The input is not media ffmpeg can make the asked renditions of: the caller sent something wrong (HTTP 422). */
export class UnusableMediaError extends Error {
  override name = 'UnusableMediaError';
}

interface Source {
  tracks: Fmp4Track[];
  video: Fmp4Track | undefined;
  audio: Fmp4Track | undefined;
  height: number;
  fps: number | undefined;
  starts: Map<string, number>;
}

function readSource(input: { init: Uint8Array; segment: Uint8Array }, limits: EncodingLimits, sourceHeight?: number): Source {
  const bytes = input.init.length + input.segment.length;
  if (bytes > limits.maxInputBytes) throw new UnusableMediaError(`the input is ${bytes} bytes, more than the limit of ${limits.maxInputBytes}`);
  try {
    const tracks = initTracks(input.init);
    const video = tracks.find((t) => t.kind === 'video');
    const audio = tracks.find((t) => t.kind === 'audio');
    const starts = decodeStarts(input.segment, tracks);
    return { tracks, video, audio, height: sourceHeight ?? video?.height ?? 0, fps: videoFrameRate(input.segment, tracks), starts };
  } catch (error) {
    throw new UnusableMediaError(`the input is not a fragmented MP4 init segment and media segment: ${(error as Error).message}`);
  }
}

/** The presets this source can give, in the order asked: never an upscale, no video from an audio-only source, no audio-only rendition without audio. */
export function presetsFor(names: string[], source: { hasVideo: boolean; hasAudio: boolean; height: number }): RenditionPreset[] {
  const out: RenditionPreset[] = [];
  for (const name of names) {
    const preset = presetNamed(name);
    if (!preset) throw new UnusableMediaError(`"${name}" is not a rendition preset`);
    if (out.includes(preset)) continue;
    if (preset.audioOnly ? source.hasAudio : source.hasVideo && preset.height! < source.height) out.push(preset);
  }
  return out;
}

/**
 * The renditions a source gives of the presets asked, from its init segment:
 * what a stream's ladder lists and what the encodes of its segments return
 * (a 480p source gives no 720p). Throws UnusableMediaError for an init
 * segment it cannot read.
 */
export function renditionsOfSource(presets: readonly string[], init: Uint8Array): string[] {
  let tracks: Fmp4Track[];
  try {
    tracks = initTracks(init);
  } catch (error) {
    throw new UnusableMediaError(`the init segment is not readable: ${(error as Error).message}`);
  }
  const video = tracks.find((t) => t.kind === 'video');
  return presetsFor([...presets], { hasVideo: video !== undefined, hasAudio: tracks.some((t) => t.kind === 'audio'), height: video?.height ?? 0 }).map(
    (p) => p.name,
  );
}

function pipeArgs(): string[] {
  return ['-hide_banner', '-nostdin', '-loglevel', 'error', '-protocol_whitelist', 'pipe'];
}

/** What makes each output's init segment the same bytes from one segment to the next: no encoder or muxer version, no metadata, no creation time. */
const BITEXACT_OUTPUT = ['-map_metadata', '-1', '-map_chapters', '-1', '-fflags', '+bitexact', '-flags', '+bitexact'];
const FRAGMENTED_MP4 = ['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof+skip_trailer'];

/** The ffmpeg arguments of one renditions job (exported for the bench, which runs the same command alone). */
export function renditionArgs(
  presets: RenditionPreset[],
  source: { hasAudio: boolean; fps: number | undefined; videoTimescale: number | undefined },
): string[] {
  const video = presets.filter((p) => !p.audioOnly);
  const args = [...pipeArgs(), '-fflags', '+bitexact', '-f', 'mp4', '-i', 'pipe:0'];
  if (video.length > 0) {
    // Decoded once, split once per video preset.
    const labels = video.map((_, i) => `v${i}`);
    const chains = video.map((p, i) => {
      // Square pixels: the even width rounds the aspect a little, and ffmpeg would otherwise keep it with a pixel aspect ratio (641x360 displayed).
      const filters = [`scale=-2:${p.height}`, 'setsar=1', 'format=yuv420p'];
      if (p.maxFps !== undefined && source.fps !== undefined && source.fps > p.maxFps + 0.5) filters.push(`fps=${p.maxFps}`);
      return `[s${i}]${filters.join(',')}[${labels[i]}]`;
    });
    args.push('-filter_complex', `[0:v:0]split=${video.length}${video.map((_, i) => `[s${i}]`).join('')};${chains.join(';')}`);
  }
  let pipe = 3;
  let v = 0;
  for (const preset of presets) {
    if (preset.audioOnly) {
      args.push('-map', '0:a:0', '-c:a', 'copy');
    } else {
      const kbps = preset.videoKbps!;
      args.push('-map', `[v${v++}]`);
      if (source.hasAudio) args.push('-map', '0:a:0', '-c:a', 'copy');
      args.push(
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-b:v',
        `${kbps}k`,
        '-maxrate',
        `${Math.round(kbps * 1.5)}k`,
        '-bufsize',
        `${kbps * 2}k`,
        // One keyframe, the first frame: the segment starts where the source's keyframe is, and needs no other.
        '-force_key_frames',
        'expr:eq(n,0)',
        '-g',
        '100000',
        '-sc_threshold',
        '0',
      );
      if (source.videoTimescale !== undefined) args.push('-video_track_timescale', String(source.videoTimescale));
    }
    args.push(...BITEXACT_OUTPUT, ...FRAGMENTED_MP4, `pipe:${pipe++}`);
  }
  return args;
}

/** Encodes the asked presets of one source segment; presets the source cannot give are left out of the result. */
export async function encodeRenditions(input: EncodeInput, limits: EncodingLimits, signal?: AbortSignal): Promise<EncodedRendition[]> {
  const source = readSource(input, limits, input.sourceHeight);
  if (!source.starts.has('video') && !source.starts.has('audio')) throw new UnusableMediaError('the media segment has no audio or video fragment');
  const presets = presetsFor(input.presets, { hasVideo: source.video !== undefined, hasAudio: source.audio !== undefined, height: source.height });
  if (presets.length === 0) return [];
  const args = renditionArgs(presets, { hasAudio: source.audio !== undefined, fps: source.fps, videoTimescale: source.video?.timescale });
  const outputs = await runJob(args, input, presets.length, limits, signal);
  return presets.map((preset, i) => {
    try {
      const { init, segment } = splitFragmentedMp4(outputs[i]!);
      shiftDecodeStarts(segment, initTracks(init), source.starts as Map<never, number>);
      clearDeclaredBitrates(init);
      return { rendition: preset.name, init, segment };
    } catch (error) {
      throw new UnusableMediaError(`ffmpeg's ${preset.name} output is not usable: ${(error as Error).message}`);
    }
  });
}

/** A JPEG of the segment's first keyframe, about THUMBNAIL_WIDTH wide (~30–60 KB for 16:9). */
export async function makeThumbnail(input: ThumbnailInput, limits: EncodingLimits, signal?: AbortSignal): Promise<Uint8Array> {
  const source = readSource(input, limits);
  if (!source.video) throw new UnusableMediaError('the source has no video track to take a thumbnail from');
  const width = Math.min(THUMBNAIL_WIDTH, source.video.width || THUMBNAIL_WIDTH);
  const args = [
    ...pipeArgs(),
    // Only keyframes are decoded: the first frame is one.
    '-skip_frame',
    'nokey',
    '-f',
    'mp4',
    '-i',
    'pipe:0',
    '-map',
    '0:v:0',
    '-frames:v',
    '1',
    '-vf',
    `scale=${width - (width % 2)}:-2`,
    '-c:v',
    'mjpeg',
    '-q:v',
    '5',
    '-pix_fmt',
    'yuvj420p',
    ...BITEXACT_OUTPUT,
    '-f',
    'image2pipe',
    'pipe:3',
  ];
  const [jpeg] = await runJob(args, input, 1, limits, signal);
  if (!jpeg || jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new UnusableMediaError('ffmpeg decoded no picture from the segment');
  return jpeg;
}

async function runJob(
  args: string[],
  input: { init: Uint8Array; segment: Uint8Array },
  outputs: number,
  limits: EncodingLimits,
  signal?: AbortSignal,
): Promise<Uint8Array[]> {
  const joined = new Uint8Array(input.init.length + input.segment.length);
  joined.set(input.init, 0);
  joined.set(input.segment, input.init.length);
  try {
    return await runFfmpeg({
      binary: limits.ffmpeg,
      args,
      input: joined,
      outputs,
      timeoutMs: limits.timeoutMs,
      // A rendition is smaller than its source; a generous cap still stops a runaway muxer.
      maxOutputBytes: Math.max(16 * 1024 * 1024, 4 * joined.length),
      signal,
    });
  } catch (error) {
    // ffmpeg refused the media: the input's fault, said in ffmpeg's words.
    if (error instanceof FfmpegError && error.reason === 'failed') throw new UnusableMediaError(`ffmpeg could not decode the input: ${error.message}`);
    throw error;
  }
}
