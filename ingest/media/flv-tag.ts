// Decodes the body of an RTMP audio or video message (an FLV tag body) into
// what the packager needs. We parse the tag ourselves rather than trusting
// node-media-server's AVPacket fields: FLV's composition time offset is a
// *signed* 24-bit value, which it reads as unsigned, and we need the codec
// identity to refuse what we cannot package with a clear message.
//
// Two forms reach us: the legacy FLV header (a 4-bit codec id: H.264, AAC,
// MP3, …) and Enhanced RTMP (veovera's enhanced-rtmp v1/v2, what OBS 30+ and
// ffmpeg 6.1+ send for HEVC, AV1 and Opus), where a FourCC names the codec.
// Enhanced RTMP v2 may also carry several tracks in one message (multitrack):
// the default track, id 0, is the tag itself; the others' ids are reported,
// and each other video track's payload is decoded the same way, for the
// session to package as a rendition of the ladder (or ignore).

export type VideoFormat = 'avc' | 'hevc' | 'av1';
export type AudioFormat = 'aac' | 'opus';

interface Tracks {
  /** Track ids other than the default (0) that this multitrack message carried. */
  otherTracks?: number[];
}

export type VideoTrackTag =
  | { kind: 'video-config'; codec: VideoFormat; record: Uint8Array }
  | { kind: 'video-frame'; codec: VideoFormat; keyframe: boolean; compositionOffsetMs: number; data: Uint8Array }
  | { kind: 'video-end' }
  | { kind: 'video-unsupported'; codecName: string }
  | { kind: 'ignored' };

export type VideoTag = VideoTrackTag &
  Tracks & {
    /** The other video tracks' payloads in this multitrack message, decoded like track 0's (views into the message, not copies). */
    trackTags?: Array<{ trackId: number; tag: VideoTrackTag }>;
  };

export type AudioTag = (
  | { kind: 'audio-config'; codec: AudioFormat; config: Uint8Array }
  | { kind: 'audio-frame'; codec: AudioFormat; data: Uint8Array }
  | { kind: 'audio-unsupported'; codecName: string }
  | { kind: 'ignored' }
) &
  Tracks;

const VIDEO_CODEC_NAMES: Record<number, string> = {
  2: 'Sorenson H.263',
  3: 'Screen video',
  4: 'VP6',
  5: 'VP6 alpha',
  6: 'Screen video v2',
  7: 'H.264',
  12: 'HEVC (legacy FLV id 12)',
};
const AUDIO_CODEC_NAMES: Record<number, string> = {
  0: 'PCM',
  1: 'ADPCM',
  2: 'MP3',
  3: 'PCM LE',
  4: 'Nellymoser 16 kHz',
  5: 'Nellymoser 8 kHz',
  6: 'Nellymoser',
  7: 'G.711 A-law',
  8: 'G.711 mu-law',
  9: 'enhanced RTMP audio',
  10: 'AAC',
  11: 'Speex',
  14: 'MP3 8 kHz',
};

const VIDEO_FOURCCS: Record<string, VideoFormat> = { avc1: 'avc', hvc1: 'hevc', av01: 'av1' };
const VIDEO_FOURCC_NAMES: Record<string, string> = { vp09: 'VP9 (enhanced RTMP)', vp08: 'VP8 (enhanced RTMP)', vvc1: 'VVC/H.266 (enhanced RTMP)' };
const AUDIO_FOURCCS: Record<string, AudioFormat> = { mp4a: 'aac', Opus: 'opus' };
const AUDIO_FOURCC_NAMES: Record<string, string> = {
  '.mp3': 'MP3 (enhanced RTMP)',
  fLaC: 'FLAC (enhanced RTMP)',
  'ac-3': 'AC-3 (enhanced RTMP)',
  'ec-3': 'E-AC-3 (enhanced RTMP)',
};

// Enhanced RTMP packet types (the low nibble of the first byte).
const VIDEO_SEQUENCE_START = 0;
const VIDEO_CODED_FRAMES = 1;
const VIDEO_SEQUENCE_END = 2;
const VIDEO_CODED_FRAMES_X = 3; // coded frames with no composition time offset
const VIDEO_METADATA = 4;
const VIDEO_MULTITRACK = 6;
const VIDEO_MOD_EX = 7;
const AUDIO_SEQUENCE_START = 0;
const AUDIO_CODED_FRAMES = 1;
const AUDIO_MULTITRACK = 5;
const AUDIO_MOD_EX = 7;
const FRAME_TYPE_KEY = 1;
const FRAME_TYPE_COMMAND = 5;
const MULTITRACK_ONE_TRACK = 0;
const MULTITRACK_MANY_CODECS = 2;
const DEFAULT_TRACK = 0;
/**
 * Bounds on what one message may make the parser walk: an 8 MiB message of
 * 3-byte ModEx prefixes or 4-byte empty tracks held the event loop for 300 ms.
 * Encoders send one ModEx (a nanosecond offset) and a few tracks; track ids
 * are one byte, so a message with more entries than ids repeats one.
 */
const MAX_MOD_EX = 8;
const MAX_TRACKS = 256;

/** Reads an enhanced header; a message cut short throws RangeError, which the callers turn into "ignored". */
class Cursor {
  pos = 0;
  constructor(readonly data: Uint8Array) {}
  get remaining(): number {
    return this.data.length - this.pos;
  }
  u8(): number {
    if (this.pos >= this.data.length) throw new RangeError('truncated enhanced RTMP header');
    return this.data[this.pos++]!;
  }
  uint(bytes: number): number {
    let v = 0;
    for (let i = 0; i < bytes; i++) v = v * 256 + this.u8();
    return v;
  }
  fourcc(): string {
    return String.fromCharCode(this.u8(), this.u8(), this.u8(), this.u8());
  }
  bytes(n: number): Uint8Array {
    if (n > this.remaining) throw new RangeError('truncated enhanced RTMP track');
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /**
   * Skips ModEx prefixes (modifier data such as a nanosecond timestamp
   * offset, which millisecond packaging does not need) and returns the
   * packet type they were wrapping.
   */
  skipModEx(packetType: number, modEx: number): number {
    for (let count = 0; packetType === modEx; count++) {
      if (count === MAX_MOD_EX) throw new RangeError(`more than ${MAX_MOD_EX} ModEx prefixes`);
      let size = this.u8() + 1;
      if (size === 256) size = this.uint(2) + 1;
      this.bytes(size);
      packetType = this.u8() & 0x0f;
    }
    return packetType;
  }
}

interface TrackPayload {
  fourcc: string;
  data: Uint8Array;
}

/**
 * The payloads of a message by track: a single-track message is track 0. For
 * multitrack, `fourcc` is absent when each track names its own codec.
 */
function readTracks(r: Cursor, multitrackType: number | undefined, sharedFourcc: string | undefined): Map<number, TrackPayload> {
  const tracks = new Map<number, TrackPayload>();
  if (multitrackType === undefined) {
    tracks.set(DEFAULT_TRACK, { fourcc: sharedFourcc!, data: r.bytes(r.remaining) });
    return tracks;
  }
  for (let count = 0; r.remaining > 0; count++) {
    if (count === MAX_TRACKS) throw new RangeError(`more than ${MAX_TRACKS} tracks in one message`);
    const fourcc = multitrackType === MULTITRACK_MANY_CODECS ? r.fourcc() : sharedFourcc!;
    const trackId = r.u8();
    const size = multitrackType === MULTITRACK_ONE_TRACK ? r.remaining : r.uint(3);
    tracks.set(trackId, { fourcc, data: r.bytes(size) });
  }
  return tracks;
}

/**
 * The rest of an Enhanced RTMP tag after its first byte (and any ModEx): a
 * multitrack tag names its real packet type in the next byte, then carries
 * one FourCC for all tracks or one per track; a single-track tag carries its
 * FourCC right away.
 */
function readEnhancedBody(r: Cursor, packetType: number, multitrackPacketType: number): { packetType: number; tracks: Map<number, TrackPayload> } {
  if (packetType !== multitrackPacketType) return { packetType, tracks: readTracks(r, undefined, r.fourcc()) };
  const b = r.u8();
  const multitrackType = b >> 4;
  const fourcc = multitrackType !== MULTITRACK_MANY_CODECS ? r.fourcc() : undefined;
  return { packetType: b & 0x0f, tracks: readTracks(r, multitrackType, fourcc) };
}

function otherTracksOf(tracks: Map<number, TrackPayload>): Tracks {
  const others = [...tracks.keys()].filter((id) => id !== DEFAULT_TRACK);
  return others.length > 0 ? { otherTracks: others } : {};
}

export function parseVideoTag(body: Uint8Array): VideoTag {
  if (body.length < 1) return { kind: 'ignored' };
  const first = body[0]!;
  if (first & 0x80) {
    try {
      return parseEnhancedVideoTag(body);
    } catch (error) {
      if (error instanceof RangeError) return { kind: 'ignored' };
      throw error;
    }
  }
  const frameType = first >> 4;
  const codecId = first & 0x0f;
  if (frameType === FRAME_TYPE_COMMAND) return { kind: 'ignored' }; // video info/command frame
  if (codecId !== 7) return { kind: 'video-unsupported', codecName: VIDEO_CODEC_NAMES[codecId] ?? `FLV video codec ${codecId}` };
  if (body.length < 5) return { kind: 'ignored' };
  const packetType = body[1]!;
  if (packetType === 0) return { kind: 'video-config', codec: 'avc', record: body.subarray(5) };
  if (packetType === 2) return { kind: 'video-end' };
  return { kind: 'video-frame', codec: 'avc', keyframe: frameType === 1, compositionOffsetMs: readSi24(body, 2), data: body.subarray(5) };
}

function parseEnhancedVideoTag(body: Uint8Array): VideoTag {
  const r = new Cursor(body);
  const first = r.u8();
  const frameType = (first >> 4) & 0x07;
  const { packetType, tracks } = readEnhancedBody(r, r.skipModEx(first & 0x0f, VIDEO_MOD_EX), VIDEO_MULTITRACK);
  const others = otherTracksOf(tracks);
  if (others.otherTracks) {
    const trackTags: Array<{ trackId: number; tag: VideoTrackTag }> = [];
    for (const [trackId, payload] of tracks) if (trackId !== DEFAULT_TRACK) trackTags.push({ trackId, tag: videoTrackTag(frameType, packetType, payload) });
    Object.assign(others, { trackTags });
  }
  const main = tracks.get(DEFAULT_TRACK);
  if (!main) return { kind: 'ignored', ...others };
  return { ...videoTrackTag(frameType, packetType, main), ...others };
}

/** One track's payload of an enhanced video message, by its packet type. */
function videoTrackTag(frameType: number, packetType: number, track: TrackPayload): VideoTrackTag {
  const format = VIDEO_FOURCCS[track.fourcc];
  if (!format) return { kind: 'video-unsupported', codecName: VIDEO_FOURCC_NAMES[track.fourcc] ?? `enhanced RTMP video "${track.fourcc}"` };
  // Command frames (start/end of a seek) and metadata (HDR colour info) carry no media.
  if (frameType === FRAME_TYPE_COMMAND || packetType === VIDEO_METADATA) return { kind: 'ignored' };
  const data = track.data;
  switch (packetType) {
    case VIDEO_SEQUENCE_START:
      return { kind: 'video-config', codec: format, record: data };
    case VIDEO_SEQUENCE_END:
      return { kind: 'video-end' };
    case VIDEO_CODED_FRAMES: {
      // AV1 has no B-frame reordering in the container: no composition offset field.
      if (format === 'av1') return { kind: 'video-frame', codec: format, keyframe: frameType === FRAME_TYPE_KEY, compositionOffsetMs: 0, data };
      if (data.length < 3) return { kind: 'ignored' };
      return { kind: 'video-frame', codec: format, keyframe: frameType === FRAME_TYPE_KEY, compositionOffsetMs: readSi24(data, 0), data: data.subarray(3) };
    }
    case VIDEO_CODED_FRAMES_X:
      return { kind: 'video-frame', codec: format, keyframe: frameType === FRAME_TYPE_KEY, compositionOffsetMs: 0, data };
    default:
      return { kind: 'ignored' }; // MPEG-2 TS sequence start and future packet types
  }
}

export function parseAudioTag(body: Uint8Array): AudioTag {
  if (body.length < 2) return { kind: 'ignored' };
  const soundFormat = body[0]! >> 4;
  if (soundFormat === 9) {
    try {
      return parseEnhancedAudioTag(body);
    } catch (error) {
      if (error instanceof RangeError) return { kind: 'ignored' };
      throw error;
    }
  }
  if (soundFormat !== 10) return { kind: 'audio-unsupported', codecName: AUDIO_CODEC_NAMES[soundFormat] ?? `FLV audio codec ${soundFormat}` };
  if (body[1] === 0) return { kind: 'audio-config', codec: 'aac', config: body.subarray(2) };
  return { kind: 'audio-frame', codec: 'aac', data: body.subarray(2) };
}

function parseEnhancedAudioTag(body: Uint8Array): AudioTag {
  const r = new Cursor(body);
  const { packetType, tracks } = readEnhancedBody(r, r.skipModEx(r.u8() & 0x0f, AUDIO_MOD_EX), AUDIO_MULTITRACK);
  const others = otherTracksOf(tracks);
  const main = tracks.get(DEFAULT_TRACK);
  if (!main) return { kind: 'ignored', ...others };
  const format = AUDIO_FOURCCS[main.fourcc];
  if (!format) return { kind: 'audio-unsupported', codecName: AUDIO_FOURCC_NAMES[main.fourcc] ?? `enhanced RTMP audio "${main.fourcc}"`, ...others };
  if (packetType === AUDIO_SEQUENCE_START) return { kind: 'audio-config', codec: format, config: main.data, ...others };
  if (packetType === AUDIO_CODED_FRAMES) return { kind: 'audio-frame', codec: format, data: main.data, ...others };
  // Sequence end, and the multichannel layout (the Opus head already has the channel count).
  return { kind: 'ignored', ...others };
}

function readSi24(data: Uint8Array, at: number): number {
  const v = (data[at]! << 16) | (data[at + 1]! << 8) | data[at + 2]!;
  return v & 0x800000 ? v - 0x1000000 : v;
}
