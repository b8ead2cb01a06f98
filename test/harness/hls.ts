// Reading HLS playlists the way a test needs to: segments with their tags.
export interface ParsedSegment {
  uri: string;
  duration: number;
  sequence: number;
  discontinuity: boolean;
  map: string;
  programDateTime: number;
}

export interface ParsedPlaylist {
  mediaSequence: number;
  targetDuration: number;
  ended: boolean;
  segments: ParsedSegment[];
  maps: string[];
}

export function parsePlaylist(text: string): ParsedPlaylist {
  const lines = text.split('\n').map((l) => l.trim());
  const mediaSequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  const targetDuration = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? 0);
  const segments: ParsedSegment[] = [];
  const maps: string[] = [];
  let duration = 0;
  let discontinuity = false;
  let map = '';
  let pdt = 0;
  for (const line of lines) {
    if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
    else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line.startsWith('#EXT-X-MAP:')) {
      map = /URI="([^"]+)"/.exec(line)?.[1] ?? '';
      maps.push(map);
    } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
    else if (line && !line.startsWith('#')) {
      segments.push({ uri: line, duration, sequence: mediaSequence + segments.length, discontinuity, map, programDateTime: pdt });
      discontinuity = false;
    }
  }
  return { mediaSequence, targetDuration, ended: lines.includes('#EXT-X-ENDLIST'), segments, maps };
}
