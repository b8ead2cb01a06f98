// The renditions of a stream's adaptive ladder: their names, where their
// playlists and segments live, and the presets the transcoder encodes. The
// ingest writes them, the transcoder encodes them, the gateway and the player
// list them, the controller and the CRD validate them: one definition for all.
//
// A ladder has the publisher's own media (`source`: an ordinary publish, or
// track 0 of an Enhanced RTMP multitrack publish), the other tracks of a
// multitrack publish (`track1`, `track2`, …) and the renditions the
// transcoder encodes from the source (`720p`, `480p`, `360p`, `160p`,
// `audio`). Every rendition carries the source's audio, muxed: players switch
// one playlist, never two.

/** The publisher's own media: track 0 of a multitrack publish, or its only track. */
export const SOURCE_RENDITION = 'source';

/** The other video tracks of an Enhanced RTMP multitrack publish: `track<N>`. */
export function trackRendition(trackId: number): string {
  return `track${trackId}`;
}

export interface RenditionPreset {
  /** The name streams ask for in `spec.renditions`, and the rendition's name. */
  name: string;
  /** Output height in pixels (width follows the source's aspect ratio, even); absent for audio only. */
  height?: number;
  /** Target video bitrate, kbit/s (the encoder's peak is 1.5× this). */
  videoKbps?: number;
  /** Frame rate cap: the source's rate, at most this. */
  maxFps?: number;
  audioOnly?: boolean;
}

/**
 * What each preset is. Heights and bitrates follow the ladders Apple's HLS
 * authoring guide and the hosted services use for live H.264 (x264 veryfast).
 * A preset at or above the source's height is skipped: the ladder never
 * upscales.
 */
export const RENDITION_PRESETS: readonly RenditionPreset[] = [
  { name: '1080p', height: 1080, videoKbps: 4500, maxFps: 60 },
  { name: '720p', height: 720, videoKbps: 2500, maxFps: 60 },
  { name: '480p', height: 480, videoKbps: 1200, maxFps: 30 },
  { name: '360p', height: 360, videoKbps: 700, maxFps: 30 },
  { name: '160p', height: 160, videoKbps: 250, maxFps: 15 },
  { name: 'audio', audioOnly: true },
];

export const RENDITION_PRESET_NAMES: readonly string[] = RENDITION_PRESETS.map((p) => p.name);

/** At most this many renditions a stream may ask the transcoder for. */
export const MAX_TRANSCODED_RENDITIONS = 5;

export function presetNamed(name: string): RenditionPreset | undefined {
  return RENDITION_PRESETS.find((p) => p.name === name);
}

/**
 * The problems with a `spec.renditions` value (empty when it is fine): each
 * names the field, so a bad LiveStream is refused with a message that says
 * what to fix.
 */
export function renditionProblems(value: unknown, field = 'spec.renditions'): string[] {
  if (!Array.isArray(value)) return [`${field} must be a list of preset names (${RENDITION_PRESET_NAMES.join(', ')})`];
  const problems: string[] = [];
  if (value.length > MAX_TRANSCODED_RENDITIONS) problems.push(`${field} may name at most ${MAX_TRANSCODED_RENDITIONS} renditions`);
  const seen = new Set<string>();
  for (const name of value) {
    if (typeof name !== 'string' || presetNamed(name) === undefined) {
      problems.push(`${field}: ${JSON.stringify(name)} is not a preset; use one of ${RENDITION_PRESET_NAMES.join(', ')}`);
    } else if (seen.has(name)) problems.push(`${field} names ${name} twice`);
    seen.add(String(name));
  }
  return problems;
}

// Where a ladder's files live, relative to the stream's folder (see
// object-layout.ts). Without a ladder nothing changes: `index.m3u8` is the
// media playlist and segments sit in the session folder. With one,
// `index.m3u8` is the multivariant playlist (multivariant-playlist.ts), each
// rendition has its media playlist `<rendition>.m3u8` beside it, the source's
// segments stay where they always were, and another rendition's sit in a
// folder of its own inside the session folder:
//
//   index.m3u8                           multivariant (short-lived cache)
//   source.m3u8, 480p.m3u8, track1.m3u8  media playlists (short-lived cache)
//   <session>/init-<g>.mp4, <seq>.m4s    the source, as without a ladder
//   <session>/480p/init-<g>.mp4, <seq>.m4s
//
// The same sequence number names the same stretch of the stream in every
// rendition: players switch at segment boundaries.

/** A rendition's media playlist, relative to the stream's folder. */
export function renditionPlaylistFile(rendition: string): string {
  return `${rendition}.m3u8`;
}

/** The folder of a rendition's segments and init segments, relative to the stream's folder. */
export function renditionFolder(sessionFolder: string, rendition: string): string {
  return rendition === SOURCE_RENDITION ? sessionFolder : `${sessionFolder}/${rendition}`;
}

/**
 * The rendition names as a regular expression's source (no anchors, no
 * capturing groups): `source`, `track1`–`track99` and the presets. The
 * media path rule (common/playback-token.ts) and the local origin accept a
 * stream-level playlist or a segment folder only by these names.
 */
export const RENDITION_NAME_PATTERN = `(?:${[SOURCE_RENDITION, 'track[1-9][0-9]?', ...RENDITION_PRESET_NAMES].join('|')})`;
/** The same without `source`: the names a rendition's own segment folder may have (the source's segments sit in the session folder). */
export const RENDITION_FOLDER_PATTERN = `(?:${['track[1-9][0-9]?', ...RENDITION_PRESET_NAMES].join('|')})`;

/** A rendition name: `source`, `track<N>` or a preset's. Also what may appear as a playlist's or folder's name. */
export function isRenditionName(value: string): boolean {
  return value === SOURCE_RENDITION || /^track[1-9][0-9]?$/.test(value) || presetNamed(value) !== undefined;
}

/** The thumbnail beside a live stream's playlist (a JPEG refreshed about every 10 s, short-lived cache). */
export const THUMBNAIL_FILE = 'thumbnail.jpg';
