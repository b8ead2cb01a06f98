// The playlist model of a run's adaptive ladder: whether the run is a ladder
// at all, each rendition's media playlist (numbered like the source's, gaps
// where a rendition has no segment or is too late), and the multivariant
// playlist's variants and when it must be rewritten. It does no file I/O: the
// packager (stream-packager.ts) writes what it says, in its write chain, and
// tells it what reached the media volume.
import type { Logger } from '../../common/log.ts';
import { PLAYLIST_FILE, sessionFolderOf } from '../../common/object-layout.ts';
import { isRenditionName, renditionFolder, renditionPlaylistFile, SOURCE_RENDITION } from '../../common/renditions.ts';
import { renderMultivariantPlaylist, type Variant } from '../../common/multivariant-playlist.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import { MediaPlaylist, type PlaylistSegment } from '../../common/media-playlist.ts';
import type { IngestMetrics } from '../metrics.ts';
import { BitRate, describeRendition, variantsChanged, type RenditionDescription } from './rendition-media.ts';

/**
 * What became of a rendition's segment (addRenditionSegment): listed in the
 * rendition's playlist; `late` (its sequence number left the source's
 * window, or its place was already marked as a gap, or the run is over);
 * `skipped` (the media volume could not take it: a gap); `refused` (not a
 * rendition this run can have: no ladder, or not a rendition name).
 */
export type RenditionSegmentOutcome = 'listed' | 'late' | 'skipped' | 'refused';

/**
 * A rendition segment may arrive until the source has listed this many more
 * segments after its own; past that its place is marked as a gap
 * (EXT-X-GAP), so a rendition that lags or stops still has a playlist that
 * moves with the source's, and hls.js switches away from it without an error.
 */
export const RENDITION_PATIENCE_SEGMENTS = 1;

/** One rendition of a ladder besides the source: its media playlist, numbered like the source's. */
interface RenditionTrack {
  name: string;
  playlist: MediaPlaylist;
  /** The current init segment: its URI, bytes (absent when adopted from a playlist read back) and whether it is written. */
  initUri: string | undefined;
  initData: Uint8Array | undefined;
  initWritten: boolean;
  initCount: number;
  bitRate: BitRate;
  description: RenditionDescription | undefined;
  /** The init segment the description was read with. */
  describedInit: string | undefined;
}

/** Where a rendition's segment goes (placeRendition): its init segment first when that is not on the volume yet. */
export interface RenditionPlace {
  initUri: string;
  initUnwritten: boolean;
  uri: string;
}

/** A playlist to write: its text, the URIs it names and its target duration. */
export interface RenderedPlaylist {
  file: string;
  text: string;
  names: readonly string[];
  targetDuration: number;
}

export interface LadderPlaylistsOptions {
  ref: StreamRef;
  settings: StreamSettings;
  /** The source's playlist (the packager's own): every rendition's timeline. */
  source: MediaPlaylist;
  metrics: IngestMetrics;
  log: Logger;
}

export class LadderPlaylists {
  /**
   * The run writes a ladder: `index.m3u8` is the multivariant playlist and
   * the source's media playlist is `source.m3u8` (common/renditions.ts).
   * Decided before the run's first playlist and never changed after it: a
   * player that loaded one form must find the same at every reload.
   */
  private ladder: boolean;
  /** A playlist of the run was written: its form (ladder or not) is fixed. */
  private formFixed = false;
  private readonly renditions = new Map<string, RenditionTrack>();
  private sourceBitRate = new BitRate();
  private sourceDescription: RenditionDescription | undefined;
  private sourceDescribedInit: string | undefined;
  /** The multivariant playlist's variants as last written. */
  private writtenVariants: Variant[] | undefined;
  private warnedNoLadder = false;
  private readonly source: MediaPlaylist;
  private readonly settings: StreamSettings;

  constructor(private readonly options: LadderPlaylistsOptions) {
    this.source = options.source;
    this.settings = options.settings;
    this.ladder = (this.settings.renditions ?? []).length > 0;
  }

  get isLadder(): boolean {
    return this.ladder;
  }

  /** Makes the run a ladder; only before its form is fixed (false after). */
  useLadder(): boolean {
    if (this.ladder) return true;
    if (this.formFixed) return false;
    this.ladder = true;
    return true;
  }

  /** A playlist is being written (or was, by the process whose run this continues, in the form `ladder`): the form stays. */
  fixForm(ladder = this.ladder): void {
    this.formFixed = true;
    this.ladder = ladder;
  }

  get renditionCount(): number {
    return this.renditions.size;
  }

  /** The renditions besides the source, in the order they first listed a segment. */
  renditionNames(): string[] {
    return [...this.renditions.keys()];
  }

  /** Every playlist file the run writes. */
  playlistFiles(): string[] {
    const files = [PLAYLIST_FILE];
    if (this.ladder) files.push(renditionPlaylistFile(SOURCE_RENDITION), ...[...this.renditions.keys()].map(renditionPlaylistFile));
    return files;
  }

  /**
   * The renditions of a ladder another process wrote (resumed from the
   * volume, continued from the store): their playlists go on, numbered like
   * the source's; their next segment (or gap) follows what they list.
   */
  adopt(variants: readonly Variant[], playlists: ReadonlyMap<string, MediaPlaylist>): void {
    const source = variants.find((v) => v.name === SOURCE_RENDITION);
    if (source) {
      this.sourceDescription = descriptionOf(source);
      this.sourceBitRate = new BitRate({ peak: source.bandwidth, ...(source.averageBandwidth !== undefined ? { average: source.averageBandwidth } : {}) });
    }
    for (const v of variants) {
      const playlist = playlists.get(v.name);
      if (v.name === SOURCE_RENDITION || !isRenditionName(v.name) || !playlist || playlist.segments.length === 0) continue;
      const track = this.newTrack(v.name, playlist.firstSequence, playlist.discontinuitiesBefore);
      track.playlist.targetDuration = playlist.targetDuration;
      for (const segment of playlist.segments) track.playlist.append(segment);
      track.initUri = playlist.segments.at(-1)!.initUri;
      track.initWritten = true;
      track.bitRate = new BitRate({ peak: v.bandwidth, ...(v.averageBandwidth !== undefined ? { average: v.averageBandwidth } : {}) });
      track.description = descriptionOf(v);
    }
  }

  /** A source segment was listed: its bytes count towards the source's bit rate; a new init segment is described. */
  async sourceListed(initUri: string, init: Uint8Array | undefined, data: Uint8Array, duration: number): Promise<void> {
    this.sourceBitRate.add(data.byteLength, duration);
    if (init && this.sourceDescribedInit !== initUri) {
      this.sourceDescription = await this.describe(SOURCE_RENDITION, init, data);
      this.sourceDescribedInit = initUri;
    }
  }

  /** Whether the run can list a rendition of this name (warns once when the run is not a ladder). */
  accepts(rendition: string): boolean {
    if (rendition === SOURCE_RENDITION || !isRenditionName(rendition)) return false;
    if (this.ladder) return true;
    if (!this.warnedNoLadder) {
      this.warnedNoLadder = true;
      this.options.log.warn(
        { stream: streamId(this.options.ref), rendition },
        'this run continues a playlist written without a ladder: its renditions are not listed until the next run',
      );
    }
    return false;
  }

  /** Whether the rendition's segment for the source's `sequence` is too late: the source no longer has it, or its place is taken or a gap. */
  isLate(rendition: string, sequence: number): boolean {
    if (!this.sourceEntry(sequence)) return true;
    const track = this.renditions.get(rendition);
    return track !== undefined && sequence < track.playlist.nextSequence;
  }

  /**
   * Where the rendition's segment for the source's `sequence` goes: under
   * the source segment's session folder, with a new init segment when the
   * bytes differ from the last one (or the session changed). Only after isLate.
   */
  placeRendition(rendition: string, sequence: number, init: Uint8Array): RenditionPlace {
    const folder = renditionFolder(sessionFolderOf(this.sourceEntry(sequence)!.uri), rendition);
    const track = this.renditions.get(rendition) ?? this.newTrack(rendition, sequence, this.discontinuitiesBefore(sequence));
    if (track.initData === undefined || !track.initUri?.startsWith(`${folder}/`) || !sameBytes(track.initData, init)) {
      track.initUri = `${folder}/init-${++track.initCount}.mp4`;
      track.initData = init;
      track.initWritten = false;
    }
    return { initUri: track.initUri!, initUnwritten: !track.initWritten, uri: `${folder}/${sequence}.m4s` };
  }

  /** The rendition's current init segment is on the volume. */
  initWritten(rendition: string): void {
    this.renditions.get(rendition)!.initWritten = true;
  }

  /**
   * Lists a rendition's segment (on the volume at `uri`) under the source's
   * `sequence`, with the source segment's duration, date and discontinuity,
   * after gaps for any the rendition skipped.
   */
  async listRendition(rendition: string, sequence: number, uri: string, init: Uint8Array, data: Uint8Array): Promise<void> {
    const track = this.renditions.get(rendition)!;
    const source = this.sourceEntry(sequence)!;
    if (track.playlist.segments.length === 0) {
      // Its first listed segment (an earlier one may have been skipped): the playlist starts here.
      track.playlist.firstSequence = sequence;
      track.playlist.discontinuitiesBefore = this.discontinuitiesBefore(sequence);
    }
    this.padTrack(track, sequence - 1, false);
    // The source's entries are never gaps: the rendition's takes its duration, date and discontinuity.
    track.playlist.append({ ...source, uri, initUri: track.initUri! });
    this.trimToWindow(track.playlist);
    track.bitRate.add(data.byteLength, source.duration);
    if (track.describedInit !== track.initUri) {
      track.description = await this.describe(rendition, init, data);
      track.describedInit = track.initUri;
    }
  }

  /** Gaps for a rendition more than the patience behind the source's `sequence`; true when its playlist changed. */
  padLagging(rendition: string, sequence: number): boolean {
    return this.padTrack(this.renditions.get(rendition)!, sequence - 1 - RENDITION_PATIENCE_SEGMENTS, false);
  }

  /** The run ended: the rendition's playlist ends with the source's and (a VOD) covers its whole timeline, gaps where it has no segment. */
  endRendition(rendition: string, vod: boolean): void {
    const track = this.renditions.get(rendition)!;
    this.padTrack(track, this.source.nextSequence - 1, vod);
    track.playlist.ended = true;
  }

  /** Whether every rendition has listed (or marked as a gap) the source's last segment. */
  caughtUp(): boolean {
    const last = this.source.nextSequence - 1;
    return [...this.renditions.values()].every((track) => track.playlist.nextSequence > last);
  }

  /** A rendition's media playlist as it is now. */
  renderRendition(rendition: string, vod: boolean): RenderedPlaylist {
    const track = this.renditions.get(rendition)!;
    track.playlist.targetDuration = Math.max(track.playlist.targetDuration, this.source.targetDuration);
    const { text, names } = track.playlist.renderNamed({ vod });
    return { file: renditionPlaylistFile(track.name), text, names, targetDuration: track.playlist.targetDuration };
  }

  /** The multivariant playlist when its variants changed since it was last asked for (see variantsChanged); undefined when they did not. */
  multivariantToWrite(): RenderedPlaylist | undefined {
    const variants = this.variants();
    if (!variantsChanged(this.writtenVariants, variants)) return undefined;
    this.writtenVariants = variants;
    return {
      file: PLAYLIST_FILE,
      text: renderMultivariantPlaylist(variants),
      names: variants.map((v) => v.uri),
      targetDuration: this.source.targetDuration,
    };
  }

  private newTrack(name: string, firstSequence: number, discontinuitiesBefore: number): RenditionTrack {
    const playlist = new MediaPlaylist(this.source.targetDuration, this.settings.playlistLength);
    playlist.firstSequence = firstSequence;
    playlist.discontinuitiesBefore = discontinuitiesBefore;
    const track: RenditionTrack = {
      name,
      playlist,
      initUri: undefined,
      initData: undefined,
      initWritten: false,
      initCount: 0,
      bitRate: new BitRate(),
      description: undefined,
      describedInit: undefined,
    };
    this.renditions.set(name, track);
    return track;
  }

  /** The source's playlist entry with this media sequence number, while the packager still has it. */
  private sourceEntry(sequence: number): PlaylistSegment | undefined {
    const index = sequence - this.source.firstSequence;
    return index >= 0 ? this.source.segments[index] : undefined;
  }

  /** Discontinuities before the source's segment `sequence` (a rendition playlist starting there carries the same EXT-X-DISCONTINUITY-SEQUENCE). */
  private discontinuitiesBefore(sequence: number): number {
    let count = this.source.discontinuitiesBefore;
    for (let i = 0; i < sequence - this.source.firstSequence; i++) if (this.source.segments[i]!.discontinuity) count++;
    return count;
  }

  /** Without retention only the live window is ever rendered again. */
  private trimToWindow(list: MediaPlaylist): void {
    if (this.settings.keepAfterEnd) return;
    const excess = list.segments.length - this.settings.playlistLength;
    if (excess > 0) list.forgetBefore(excess);
  }

  /**
   * Lists a gap (EXT-X-GAP) in a rendition's playlist for every source
   * segment up to `through` it has none for; `front` also fills the start of
   * a VOD, so that every rendition covers the source's whole timeline. True
   * when it added any.
   */
  private padTrack(track: RenditionTrack, through: number, front: boolean): boolean {
    const list = track.playlist;
    if (list.segments.length === 0 || track.initUri === undefined) return false;
    let added = 0;
    if (list.nextSequence < this.source.firstSequence) {
      // Behind the source's whole window: what it lists is gone from every playlist; start over at the window.
      list.forgetBefore(list.segments.length);
      list.firstSequence = this.source.firstSequence;
      list.discontinuitiesBefore = this.source.discontinuitiesBefore;
    }
    if (front && list.firstSequence > this.source.firstSequence) {
      const initUri = list.segments[0]?.initUri ?? track.initUri;
      const earlier: PlaylistSegment[] = [];
      for (let s = this.source.firstSequence; s < list.firstSequence; s++) earlier.push(this.gapFor(track, s, initUri)!);
      list.segments.unshift(...earlier);
      list.firstSequence = this.source.firstSequence;
      list.discontinuitiesBefore = this.source.discontinuitiesBefore;
      added += earlier.length;
    }
    while (list.nextSequence <= through) {
      const gap = this.gapFor(track, list.nextSequence, list.segments.at(-1)?.initUri ?? track.initUri);
      if (!gap) break;
      list.append(gap);
      added++;
    }
    if (added === 0) return false;
    this.trimToWindow(list);
    this.options.metrics.renditionGaps.inc({ rendition: track.name }, added);
    return true;
  }

  private gapFor(track: RenditionTrack, sequence: number, initUri: string): PlaylistSegment | undefined {
    const source = this.sourceEntry(sequence);
    if (!source) return undefined;
    return { ...source, uri: `${renditionFolder(sessionFolderOf(source.uri), track.name)}/${sequence}.m4s`, initUri, gap: true };
  }

  private async describe(rendition: string, init: Uint8Array, data: Uint8Array): Promise<RenditionDescription> {
    try {
      return await describeRendition(init, data);
    } catch (error) {
      this.options.log.warn(
        { stream: streamId(this.options.ref), rendition, err: (error as Error).message },
        "cannot read a rendition's codecs and picture size from its media; the multivariant playlist leaves them out",
      );
      return { codecs: [] };
    }
  }

  /** The multivariant playlist's variants: the source first, then every other rendition with a segment in its live window, highest bandwidth first. */
  private variants(): Variant[] {
    const variant = (name: string, bitRate: BitRate, description: RenditionDescription | undefined): Variant => ({
      name,
      uri: renditionPlaylistFile(name),
      bandwidth: Math.max(1, bitRate.peak),
      ...(bitRate.measured && bitRate.average > 0 ? { averageBandwidth: bitRate.average } : {}),
      ...(description?.resolution ? { resolution: description.resolution } : {}),
      ...(description?.frameRate !== undefined ? { frameRate: description.frameRate } : {}),
      codecs: description?.codecs ?? [],
    });
    const others = [...this.renditions.values()]
      .filter((track) => track.playlist.segments.slice(-this.settings.playlistLength).some((s) => !s.gap))
      .map((track) => variant(track.name, track.bitRate, track.description))
      .sort((a, b) => b.bandwidth - a.bandwidth);
    return [variant(SOURCE_RENDITION, this.sourceBitRate, this.sourceDescription), ...others];
  }
}

function descriptionOf(v: Variant): RenditionDescription {
  return {
    codecs: v.codecs,
    ...(v.resolution ? { resolution: v.resolution } : {}),
    ...(v.frameRate !== undefined ? { frameRate: v.frameRate } : {}),
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
