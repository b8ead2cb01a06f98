// Reading HLS playlists the way a test needs to: segments with their tags.
// The parsing is the project's own (common/media-playlist.ts); this only
// names things as the tests assert them.
import { parseMediaPlaylist } from '../common/media-playlist.ts';

export interface ParsedSegment {
  uri: string;
  duration: number;
  sequence: number;
  discontinuity: boolean;
  /** The EXT-X-MAP URI in effect. */
  map: string;
  programDateTime: number;
}

export interface ParsedPlaylist {
  mediaSequence: number;
  targetDuration: number;
  ended: boolean;
  segments: ParsedSegment[];
  /** Every EXT-X-MAP URI, in order. */
  maps: string[];
}

export function parsePlaylist(text: string): ParsedPlaylist {
  const p = parseMediaPlaylist(text);
  return {
    mediaSequence: p.mediaSequence,
    targetDuration: p.targetDuration ?? 0,
    ended: p.ended,
    segments: p.segments.map((s) => ({
      uri: s.uri,
      duration: s.duration,
      sequence: s.sequence,
      discontinuity: s.discontinuity,
      map: s.initUri,
      programDateTime: s.programDateTime ?? 0,
    })),
    maps: p.initUris,
  };
}
