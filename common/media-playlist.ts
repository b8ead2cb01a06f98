// The HLS media playlist (version 7, fMP4/CMAF segments), the one m3u8 model
// of the project. The ingest's packager writes it: a sliding live window,
// discontinuities where a publisher reconnected or the muxer restarted,
// EXT-X-PROGRAM-DATE-TIME on every segment, and ENDLIST when the stream ends;
// it parses back, so a restarted ingest can pick up a stream where the last
// process left it. Everything else that reads a playlist (the uploader, the
// gateway's follower and origin, the tests) reads it with parseMediaPlaylist.

/**
 * Beside the stream's playlist: the whole history of a kept run
 * (retention.keepAfterEnd), as a VOD playlist without EXT-X-ENDLIST, stored
 * by an ingest whose run another ingest pod took over. The new pod lists
 * only the live window it read from the stored playlist; its final VOD takes
 * the run's earlier segments from here (their journal is on the old pod's
 * media volume, which the new pod cannot read).
 */
export const RUN_HISTORY_FILE = 'history.m3u8';

export interface PlaylistSegment {
  /** URI relative to the playlist, e.g. "<run>/12.m4s". */
  uri: string;
  duration: number;
  /** Wall-clock ms at which the segment's first packet arrived. */
  programDateTime: number;
  /** The init segment (EXT-X-MAP) this segment needs. */
  initUri: string;
  /** A discontinuity precedes this segment. */
  discontinuity: boolean;
  /**
   * EXT-X-GAP (RFC 8216bis 4.4.4.7): a rendition of a ladder has no segment
   * for this stretch (it lagged or stopped). The URI is never stored, and
   * players do not load it (hls.js ≥1.4 switches to another rendition).
   */
  gap?: boolean;
}

/** An LL-HLS part as an EXT-X-PART line names it. */
export interface PlaylistPart {
  uri: string;
  duration: number;
  independent: boolean;
}

/**
 * What an LL-HLS playlist adds to the live window (RFC 8216bis): the part
 * target, the parts of the last segments and of the one in progress, and the
 * part to come. Rendered by the ingest, which holds the parts in memory.
 */
export interface LowLatencyView {
  partTarget: number;
  /** The parts of a listed segment, while they are held (undefined: none, or too old to list). */
  partsOf(sequence: number): readonly PlaylistPart[] | undefined;
  /** The segment in progress (it gets the next sequence number): its parts so far. */
  open: { parts: readonly PlaylistPart[]; initUri: string } | undefined;
  /** EXT-X-PRELOAD-HINT: the next part's URI. */
  preloadHint: string | undefined;
}

export class MediaPlaylist {
  /** Every segment since the stream went live; the window is the tail. */
  segments: PlaylistSegment[] = [];
  /** Media sequence number of segments[0]. */
  firstSequence = 0;
  /** Discontinuities that precede segments[0]. */
  discontinuitiesBefore = 0;
  ended = false;

  constructor(
    public targetDuration: number,
    /** Segments in the live window; 0 keeps them all (a VOD playlist at the end). */
    public windowLength: number,
  ) {}

  append(segment: PlaylistSegment): void {
    this.segments.push(segment);
    // RFC 8216 forbids the target duration to change within a playlist, so it
    // only ever grows, to cover the longest segment listed so far.
    this.targetDuration = Math.max(this.targetDuration, Math.round(segment.duration));
  }

  /** The sequence number the next appended segment gets. */
  get nextSequence(): number {
    return this.firstSequence + this.segments.length;
  }

  /** Drops segments that can never be listed again (kept only when the whole run is retained). */
  forgetBefore(count: number): void {
    for (const s of this.segments.slice(0, count)) if (s.discontinuity) this.discontinuitiesBefore++;
    this.segments.splice(0, count);
    this.firstSequence += count;
  }

  render(options: { vod?: boolean } = {}): string {
    return this.renderNamed(options).text;
  }

  /**
   * The rendered playlist and every URI it names, in order (each init segment
   * before its media segments): what the uploader must store before it,
   * without parsing the text back. A gap's URI is not named: it is no object.
   */
  renderNamed(options: { vod?: boolean; lowLatency?: LowLatencyView } = {}): { text: string; names: string[] } {
    const ll = options.vod || this.ended ? undefined : options.lowLatency;
    const all = this.segments;
    const start = options.vod || this.windowLength <= 0 ? 0 : Math.max(0, all.length - this.windowLength);
    let discontinuitySequence = this.discontinuitiesBefore;
    for (let i = 0; i < start; i++) if (all[i]!.discontinuity) discontinuitySequence++;
    let text =
      '#EXTM3U\n#EXT-X-VERSION:7\n' +
      `#EXT-X-TARGETDURATION:${this.targetDuration}\n` +
      // Players hold back three parts (the spec's floor is two), and may block for the next update.
      (ll
        ? `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${(3 * ll.partTarget).toFixed(3)}\n#EXT-X-PART-INF:PART-TARGET=${ll.partTarget.toFixed(3)}\n`
        : '') +
      `#EXT-X-MEDIA-SEQUENCE:${this.firstSequence + start}\n` +
      `#EXT-X-DISCONTINUITY-SEQUENCE:${discontinuitySequence}\n` +
      '#EXT-X-INDEPENDENT-SEGMENTS\n';
    if (options.vod) text += '#EXT-X-PLAYLIST-TYPE:VOD\n';
    const names: string[] = [];
    let currentInit: string | undefined;
    for (let i = start; i < all.length; i++) {
      const s = all[i]!;
      if (s.discontinuity) text += '#EXT-X-DISCONTINUITY\n';
      if (s.initUri !== currentInit) {
        text += `#EXT-X-MAP:URI="${s.initUri}"\n`;
        currentInit = s.initUri;
        names.push(s.initUri);
      }
      if (s.gap) text += '#EXT-X-GAP\n';
      text += `#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}\n`;
      for (const part of ll?.partsOf(this.firstSequence + i) ?? []) text += partLine(part);
      text += `#EXTINF:${s.duration.toFixed(3)},\n${s.uri}\n`;
      if (!s.gap) names.push(s.uri);
    }
    if (ll?.open) {
      // A new init segment means a new timeline (a reconnect, a restarted muxer), as the packager lists it.
      if (ll.open.initUri !== currentInit) {
        if (currentInit !== undefined) text += '#EXT-X-DISCONTINUITY\n';
        text += `#EXT-X-MAP:URI="${ll.open.initUri}"\n`;
        names.push(ll.open.initUri);
      }
      for (const part of ll.open.parts) text += partLine(part);
    }
    if (ll?.preloadHint) text += `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${ll.preloadHint}"\n`;
    if (this.ended) text += '#EXT-X-ENDLIST\n';
    return { text, names };
  }

  /** Parses a playlist this class rendered. */
  static parse(m3u8: string, windowLength: number): MediaPlaylist {
    if (m3u8.split('\n', 1)[0]!.trim() !== '#EXTM3U') throw new Error('not an m3u8 playlist');
    const parsed = parseMediaPlaylist(m3u8);
    const playlist = new MediaPlaylist(parsed.targetDuration ?? 1, windowLength);
    playlist.firstSequence = parsed.mediaSequence;
    playlist.discontinuitiesBefore = parsed.discontinuitySequence;
    playlist.ended = parsed.ended;
    for (const { uri, duration, programDateTime, initUri, discontinuity, gap } of parsed.segments) {
      playlist.segments.push({ uri, duration, programDateTime: programDateTime ?? 0, initUri, discontinuity, ...(gap ? { gap } : {}) });
    }
    return playlist;
  }
}

function partLine(part: PlaylistPart): string {
  return `#EXT-X-PART:DURATION=${part.duration.toFixed(3)},URI="${part.uri}"${part.independent ? ',INDEPENDENT=YES' : ''}\n`;
}

/** A media segment as a playlist lists it. */
export interface ListedSegment {
  uri: string;
  /** EXTINF, in seconds (0 when missing or unreadable). */
  duration: number;
  /** Media sequence number. */
  sequence: number;
  /**
   * Wall-clock ms of its first frame: its own EXT-X-PROGRAM-DATE-TIME, else
   * (RFC 8216) the previous segment's plus that one's duration; undefined
   * when no date precedes it.
   */
  programDateTime: number | undefined;
  /** The EXT-X-MAP in effect ('' when none). */
  initUri: string;
  /** An EXT-X-DISCONTINUITY precedes it. */
  discontinuity: boolean;
  /** EXT-X-GAP: no object behind the URI (a ladder rendition's missing segment); not in `uris`. */
  gap?: boolean;
}

export interface ParsedMediaPlaylist {
  /** EXT-X-TARGETDURATION; undefined when missing. */
  targetDuration: number | undefined;
  /** EXT-X-MEDIA-SEQUENCE (0 when missing): the sequence number of segments[0]. */
  mediaSequence: number;
  /** EXT-X-DISCONTINUITY-SEQUENCE (0 when missing). */
  discontinuitySequence: number;
  /** EXT-X-ENDLIST is present. */
  ended: boolean;
  segments: ListedSegment[];
  /** Every EXT-X-MAP URI, in order. */
  initUris: string[];
  /** Every URI named, init segments and media segments in the order listed (each init before the segments it applies to); gaps left out. */
  uris: string[];
}

/**
 * Reads any media playlist, leniently: unknown tags are skipped and a missing
 * or malformed value reads as absent, because the follower reads whatever a
 * CDN answers. It does not check for #EXTM3U (callers that must, do).
 */
export function parseMediaPlaylist(m3u8: string): ParsedMediaPlaylist {
  const out: ParsedMediaPlaylist = {
    targetDuration: undefined,
    mediaSequence: 0,
    discontinuitySequence: 0,
    ended: false,
    segments: [],
    initUris: [],
    uris: [],
  };
  let duration = 0;
  let programDateTime: number | undefined;
  let initUri = '';
  let discontinuity = false;
  let gap = false;
  for (const raw of m3u8.split('\n')) {
    const line = raw.trim();
    if (line.length === 0) continue;
    if (!line.startsWith('#')) {
      out.segments.push({
        uri: line,
        duration,
        sequence: out.mediaSequence + out.segments.length,
        programDateTime,
        initUri,
        discontinuity,
        ...(gap ? { gap } : {}),
      });
      if (!gap) out.uris.push(line);
      gap = false;
      // RFC 8216: a date applies to its segment; the segments after it follow on from it.
      if (programDateTime !== undefined) programDateTime += duration * 1000;
      duration = 0;
      discontinuity = false;
    } else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8)) || 0;
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      const t = Date.parse(line.slice(25));
      programDateTime = Number.isNaN(t) ? undefined : t;
    } else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line === '#EXT-X-GAP') gap = true;
    else if (line.startsWith('#EXT-X-MAP:')) {
      initUri = /URI="([^"]+)"/.exec(line)?.[1] ?? '';
      if (initUri) {
        out.initUris.push(initUri);
        out.uris.push(initUri);
      }
    } else if (line === '#EXT-X-ENDLIST') out.ended = true;
    else if (line.startsWith('#EXT-X-TARGETDURATION:')) out.targetDuration = integerValue(line) ?? out.targetDuration;
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) out.mediaSequence = integerValue(line) ?? 0;
    else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) out.discontinuitySequence = integerValue(line) ?? 0;
  }
  return out;
}

/** The decimal-integer value of a `#TAG:value` line; undefined when it is not one. */
function integerValue(line: string): number | undefined {
  const value = line.slice(line.indexOf(':') + 1);
  return /^\d+$/.test(value) ? Number(value) : undefined;
}
