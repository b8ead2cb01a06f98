// The HLS media playlist of one stream (version 7, fMP4/CMAF segments):
// a sliding live window, discontinuities where a publisher reconnected or the
// muxer restarted, EXT-X-PROGRAM-DATE-TIME on every segment, and ENDLIST when
// the stream ends. It renders to m3u8 and parses back from it, so a restarted
// ingest can pick up a stream where the last process left it.

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
    const all = this.segments;
    const start = options.vod || this.windowLength <= 0 ? 0 : Math.max(0, all.length - this.windowLength);
    const visible = all.slice(start);
    let discontinuitySequence = this.discontinuitiesBefore;
    for (const s of all.slice(0, start)) if (s.discontinuity) discontinuitySequence++;
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      `#EXT-X-TARGETDURATION:${this.targetDuration}`,
      `#EXT-X-MEDIA-SEQUENCE:${this.firstSequence + start}`,
      `#EXT-X-DISCONTINUITY-SEQUENCE:${discontinuitySequence}`,
      '#EXT-X-INDEPENDENT-SEGMENTS',
    ];
    if (options.vod) lines.push('#EXT-X-PLAYLIST-TYPE:VOD');
    let currentInit: string | undefined;
    for (const s of visible) {
      if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
      if (s.initUri !== currentInit) {
        lines.push(`#EXT-X-MAP:URI="${s.initUri}"`);
        currentInit = s.initUri;
      }
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
      lines.push(`#EXTINF:${s.duration.toFixed(3)},`);
      lines.push(s.uri);
    }
    if (this.ended) lines.push('#EXT-X-ENDLIST');
    return lines.join('\n') + '\n';
  }

  /** Every URI the rendered playlist names (init segments first), for upload ordering. */
  static referencedUris(m3u8: string): string[] {
    const uris: string[] = [];
    for (const line of m3u8.split('\n')) {
      const map = /^#EXT-X-MAP:.*URI="([^"]+)"/.exec(line);
      if (map) uris.push(map[1]!);
      else if (line.length > 0 && !line.startsWith('#')) uris.push(line.trim());
    }
    return uris;
  }

  /** Parses a playlist this class rendered. */
  static parse(m3u8: string, windowLength: number): MediaPlaylist {
    const lines = m3u8.split('\n').map((l) => l.trim());
    if (lines[0] !== '#EXTM3U') throw new Error('not an m3u8 playlist');
    const tag = (name: string) => lines.find((l) => l.startsWith(`#${name}:`))?.slice(name.length + 2);
    const playlist = new MediaPlaylist(Number(tag('EXT-X-TARGETDURATION') ?? 1), windowLength);
    playlist.firstSequence = Number(tag('EXT-X-MEDIA-SEQUENCE') ?? 0);
    playlist.discontinuitiesBefore = Number(tag('EXT-X-DISCONTINUITY-SEQUENCE') ?? 0);
    let initUri = '';
    let discontinuity = false;
    let pdt = 0;
    let duration = 0;
    for (const line of lines) {
      if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
      else if (line.startsWith('#EXT-X-MAP:')) initUri = /URI="([^"]+)"/.exec(line)?.[1] ?? '';
      else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
      else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
      else if (line === '#EXT-X-ENDLIST') playlist.ended = true;
      else if (line.length > 0 && !line.startsWith('#')) {
        playlist.segments.push({ uri: line, duration, programDateTime: pdt, initUri, discontinuity });
        discontinuity = false;
      }
    }
    return playlist;
  }
}
