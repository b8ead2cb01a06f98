// Media in, objects out, for one run of one stream: each publish session's
// media is cut into an init segment and media segments in a folder of that
// session's own, written to the media volume, appended to the run's playlist
// (and, for a kept run, its segment journal), and handed to the run storage
// port in memory. When, whether and how the run ends is the run's business
// (stream-run.ts); the packager only writes what the run tells it to.
//
// Writes happen one after another in one chain per run (and a run's chain
// starts after the one before it on this stream), so a playlist is never
// written before its segment; the playlist model changes inside the chain,
// only once a segment is on the volume, so it never lists a segment that
// could not be written.
import { readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { PLAYLIST_FILE, sessionFolderOf } from '../../common/object-layout.ts';
import { isRenditionName, renditionFolder, renditionPlaylistFile, SOURCE_RENDITION, trackRendition } from '../../common/renditions.ts';
import { isMultivariant, parseMultivariantPlaylist, renderMultivariantPlaylist, type Variant } from '../../common/multivariant-playlist.ts';
import { BitRate, describeRendition, variantsChanged, type RenditionDescription } from './rendition-media.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import type { MediaVolumeGuard } from '../media-volume.ts';
import type { IngestMetrics } from '../metrics.ts';
import { backoffDelay } from '../../common/backoff.ts';
import { MEDIA_TMP_DIR, writeFileAtomic } from '../../common/atomic-file.ts';
import { Fragmenter, type SegmentOutput } from './fragmenter.ts';
import { MediaPlaylist, RUN_HISTORY_FILE, type PlaylistSegment } from '../../common/media-playlist.ts';
import { PublishSession } from './publish-session.ts';
import { TrackAligner, type Misalignment, type TrackSegment } from './track-aligner.ts';
import { DEFAULT_PUBLISH_LIMITS, PublishLimits, type PublishLimitSettings } from './publish-limits.ts';
import type { MediaObjectKind, RunStorage } from '../run-storage.ts';
import { JOURNAL_FILE, readJournal, reconcileSegments, SegmentJournal, sequenceOf } from './segment-journal.ts';

export interface StreamPackagerOptions {
  ref: StreamRef;
  settings: StreamSettings;
  mediaDir: string;
  /** Where finished objects go, in memory, in the order they were finished. */
  storage: RunStorage;
  metrics: IngestMetrics;
  log: Logger;
  /** The media volume's state; without it segments are written until a write fails. */
  volume?: MediaVolumeGuard;
  /** The previous run's writes on this stream: this run's first write waits for them. */
  after?: Promise<void>;
  /** What one publish may hold and produce (publish-limits.ts); the defaults when absent. */
  publishLimits?: PublishLimitSettings;
  /**
   * Called once a source segment is on the media volume and numbered (handed
   * to storage, its playlist written), with its init segment's bytes, so a
   * consumer (the transcoder's driver, thumbnails) can decode it alone.
   * Called in the packager's write chain: it must return at once.
   */
  onSourceSegment?(segment: SourceSegment): void;
}

/** A source segment as onSourceSegment gets it. */
export interface SourceSegment {
  /** The publish session's folder, relative to the stream's folder. */
  sessionFolder: string;
  /** Its media sequence number: a rendition's segment for the same stretch gets the same (addRenditionSegment). */
  sequence: number;
  /** Its init segment's URI, relative to the stream's folder. */
  initUri: string;
  init: Uint8Array;
  data: Uint8Array;
  /** Presentation time of its first frame on its init segment's timeline, in seconds (the tfdt a rendition's segment must start at). */
  startSeconds: number;
  /** Its duration in seconds (the playlist's EXTINF). */
  duration: number;
}

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

/** At the end of a run, its final playlists wait at most this many segment durations for the renditions of its last segments. */
const RENDITION_FINAL_WAIT_SECONDS = 3;

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

/** What the media volume holds; `kind` labels the write-failure metric. */
type FileKind = 'segment' | 'init' | 'playlist' | 'journal';

export class StreamPackager {
  readonly ref: StreamRef;
  readonly settings: StreamSettings;
  /** The run's playlist: its window, or every segment of a kept run. */
  readonly playlist: MediaPlaylist;
  /** Session folders of a playlist this run took up (resumed from the volume, continued from the store): the run answers for them too. */
  readonly adoptedFolders: string[] = [];
  private readonly journal: SegmentJournal;
  private session: PublishSession | undefined;
  private writes: Promise<void>;
  private nextSegmentIsDiscontinuity = false;
  /** Set in the write chain once a stored run is continued: its next segment follows a discontinuity. */
  private nextStoredIsDiscontinuity = false;
  private currentInitUri: string | undefined;
  /** The current init segment's bytes (onSourceSegment hands them with each segment). */
  private currentInitData: Uint8Array | undefined;
  /** The current init segment, while it could not be written: segments need it on the volume first. */
  private unwrittenInit: { uri: string; data: Uint8Array } | undefined;
  /** Segments skipped since the last one written: the next one listed starts with a discontinuity. */
  private skippedInGap = 0;
  /** The live playlist on the volume is behind the model (its write failed): retried on a timer. */
  private playlistBehind = false;
  private playlistRetry: NodeJS.Timeout | undefined;
  private playlistRetryAttempt = 0;
  private finalRetry: NodeJS.Timeout | undefined;
  /** Kinds of file whose last write failed: logged once per streak, not once per file. */
  private readonly failing = new Set<FileKind>();
  private warnedLongSegments = false;
  /** No more live playlists: the run ended (its final one is written) or was handed over (none from here). */
  private closed = false;
  /** Handed over to another ingest: nothing more of the run is written here. */
  private left = false;
  /** A newer run of the stream began here: this one's final playlist is no longer retried. */
  private superseded = false;
  private readonly dir: string;
  private readonly tmpDir: string;
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
  /** A multitrack publish's other video tracks' segments, lined up with the source's (track-aligner.ts). */
  private readonly aligner = new TrackAligner((segment, why) => this.misaligned(segment, why));
  private warnedMisaligned = false;

  constructor(private readonly options: StreamPackagerOptions) {
    this.ref = options.ref;
    this.settings = options.settings;
    this.dir = join(options.mediaDir, options.ref.namespace, options.ref.name);
    this.tmpDir = join(options.mediaDir, MEDIA_TMP_DIR);
    this.playlist = new MediaPlaylist(this.settings.segmentSeconds, this.settings.playlistLength);
    this.journal = new SegmentJournal(join(this.dir, JOURNAL_FILE), this.tmpDir);
    this.writes = options.after ?? Promise.resolve();
    this.ladder = (this.settings.renditions ?? []).length > 0;
  }

  /** Whether the run writes a ladder (a multivariant `index.m3u8`). */
  get isLadder(): boolean {
    return this.ladder;
  }

  /** The source's media playlist: `index.m3u8`, or `source.m3u8` in a ladder. */
  get sourcePlaylistFile(): string {
    return this.ladder ? renditionPlaylistFile(SOURCE_RENDITION) : PLAYLIST_FILE;
  }

  /**
   * Makes the run a ladder (a multitrack publish announced another video
   * track). Only before its first playlist is written; false after.
   */
  useLadder(): boolean {
    if (this.ladder) return true;
    if (this.formFixed) return false;
    this.ladder = true;
    return true;
  }

  /** When the oldest segment the playlist still lists arrived (the run's start, when retained). */
  get oldestListedSegmentAt(): Date | undefined {
    const first = this.playlist.segments[0];
    return first ? new Date(first.programDateTime) : undefined;
  }

  /** A new run: the journal a previous run left on the volume goes. */
  startFresh(): void {
    const journal = this.journal;
    this.enqueue(() => this.writeJournal(() => journal.remove()));
  }

  /**
   * Picks up a playlist left on the media volume by a process that did not
   * end it (killed, or the node restarted the container). A retained run's
   * journal and playlist are reconciled: the run keeps every segment either
   * names (a kill can leave the journal one entry ahead, or cut its last
   * line). False when there is nothing to resume.
   */
  async resumeFromVolume(): Promise<boolean> {
    const { log } = this.options;
    const stream = streamId(this.ref);
    let found: MediaPlaylist | undefined;
    let text = await readFile(join(this.dir, PLAYLIST_FILE), 'utf8').catch(() => undefined);
    // A ladder's index.m3u8 names the playlists; the source's is the run's timeline.
    let variants: Variant[] | undefined;
    if (text !== undefined && isMultivariant(text)) {
      variants = parseVariants(text);
      text = await readFile(join(this.dir, renditionPlaylistFile(SOURCE_RENDITION)), 'utf8').catch(() => undefined);
    } else if (text === undefined) {
      // Killed between a ladder's first source playlist and its first multivariant one.
      text = await readFile(join(this.dir, renditionPlaylistFile(SOURCE_RENDITION)), 'utf8').catch(() => undefined);
      if (text !== undefined) variants = [];
    }
    if (text !== undefined) {
      try {
        found = MediaPlaylist.parse(text, this.settings.playlistLength);
      } catch (error) {
        log.warn({ stream, err: (error as Error).message }, 'the playlist on the media volume is unreadable; resuming from the segment journal, if any');
      }
    }
    if (found?.ended) return false;
    let segments = found?.segments ?? [];
    const journal = await readJournal(join(this.dir, JOURNAL_FILE));
    if (journal && journal.badLines > 0) {
      log.warn(
        { stream, ignoredLines: journal.badLines, entries: journal.entries.length },
        'the segment journal has lines cut short (an append interrupted by a kill or a full volume); they are ignored',
      );
    }
    const fromJournal = journal !== undefined && journal.entries.length > 0;
    if (fromJournal) {
      segments = reconcileSegments(journal.entries, found?.segments ?? []);
      if (segments.length !== journal.entries.length || segments.length < (found?.segments.length ?? 0)) {
        log.warn(
          { stream, journal: journal.entries.length, playlist: found?.segments.length ?? 0, kept: segments.length },
          'the segment journal and the playlist disagree (the ingest stopped between writing one and the other); keeping every segment either names',
        );
      }
    }
    if (segments.length === 0) return false;
    this.playlist.targetDuration = found?.targetDuration ?? this.settings.segmentSeconds;
    this.playlist.firstSequence = fromJournal ? (sequenceOf(segments[0]!.uri) ?? 0) : found!.firstSequence;
    this.playlist.discontinuitiesBefore = fromJournal ? 0 : found!.discontinuitiesBefore;
    for (const s of segments) this.playlist.append(s);
    // Repaired: whole lines only, in step with the playlist, so appends can go on.
    if (fromJournal) this.enqueue(() => this.writeJournal(() => this.journal.replace(segments)));
    this.adoptedFolders.push(...foldersOf(segments));
    this.currentInitUri = segments.at(-1)?.initUri;
    this.formFixed = true;
    this.ladder = variants !== undefined;
    if (variants) {
      const playlists = new Map<string, MediaPlaylist>();
      for (const v of variants) {
        if (v.name === SOURCE_RENDITION) continue;
        const body = await readFile(join(this.dir, v.uri), 'utf8').catch(() => undefined);
        const parsed = body === undefined ? undefined : parseOrUndefined(body, this.settings.playlistLength);
        if (parsed) playlists.set(v.name, parsed);
      }
      this.adoptLadder(variants, playlists);
    }
    log.info({ stream, segments: segments.length, renditions: this.renditions.size }, 'resumed an unfinished stream from the media volume');
    return true;
  }

  /**
   * Continues the playlist another ingest stored (a takeover): its window,
   * media sequence and discontinuity sequence go on, and the first segment
   * written here follows a discontinuity. `read` is run in the write chain,
   * before this run's first segment.
   */
  continueStored(read: () => Promise<StoredRun | undefined>): void {
    this.enqueue(async () => {
      const run = await read();
      const stored = run?.source;
      // An ended playlist is a finished run: the takeover starts a new one.
      if (!run || !stored || stored.ended || stored.segments.length === 0 || this.playlist.segments.length > 0) return;
      // The form players have loaded goes on: a ladder stays one, a single playlist stays single.
      this.formFixed = true;
      this.ladder = run.variants !== undefined;
      if (run.variants) this.adoptLadder(run.variants, run.renditions ?? new Map());
      this.playlist.firstSequence = stored.firstSequence;
      this.playlist.discontinuitiesBefore = stored.discontinuitiesBefore;
      this.playlist.targetDuration = Math.max(this.playlist.targetDuration, stored.targetDuration);
      for (const segment of stored.segments) this.playlist.append(segment);
      this.adoptedFolders.push(...foldersOf(stored.segments));
      this.nextStoredIsDiscontinuity = true;
      if (this.settings.keepAfterEnd) await this.writeJournal(() => this.journal.replace(this.playlist.segments));
      this.options.log.info(
        { stream: streamId(this.ref), mediaSequence: this.playlist.nextSequence },
        'continuing the run another ingest stored: the playlist goes on after a discontinuity',
      );
    });
  }

  /**
   * The renditions of a ladder another process wrote (resumed from the
   * volume, continued from the store): their playlists go on, numbered like
   * the source's; their next segment (or gap) follows what they list.
   */
  private adoptLadder(variants: readonly Variant[], playlists: ReadonlyMap<string, MediaPlaylist>): void {
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

  /**
   * Starts packaging a publish session into the folder `id`. `afterDrop`: it
   * continues the run after its publisher dropped (or after a restart), so
   * its first segment follows a discontinuity. `startedAt` (performance.now()):
   * when the publish was asked for, before its admission.
   */
  startSession(id: string, afterDrop: boolean, startedAt?: number): PublishSession {
    if (this.session) throw new Error(`${streamId(this.ref)} already has a publish session`);
    if (afterDrop) this.nextSegmentIsDiscontinuity = true;
    const limits = new PublishLimits(this.options.publishLimits ?? DEFAULT_PUBLISH_LIMITS, this.settings.segmentSeconds, startedAt);
    const fragmenter = new Fragmenter(
      this.settings.segmentSeconds,
      {
        onInit: (init, generation) => this.onInit(id, init, generation),
        onSegment: (segment) => this.onSegment(id, segment),
        onDroppedPacket: (reason) => this.options.metrics.droppedPackets.inc({ reason }),
        onMuxerError: (error) => {
          this.options.metrics.muxerRestarts.inc();
          this.options.log.warn({ stream: streamId(this.ref), err: error }, 'muxer failed; packaging restarts at the next keyframe after a discontinuity');
        },
      },
      limits,
    );
    this.session = new PublishSession(id, fragmenter, {
      onIgnoredTrack: (kind, trackId) =>
        this.options.log.info(
          { stream: streamId(this.ref), kind, trackId },
          kind === 'audio'
            ? `multitrack publish: audio track ${trackId} is ignored; audio track 0 is muxed into every rendition`
            : `multitrack publish: video track ${trackId} is ignored; this run continues a playlist written without a ladder`,
        ),
      openVideoTrack: (trackId) => this.openVideoTrack(id, trackId, fragmenter, startedAt),
      onTrackFailed: (trackId, error) =>
        this.options.log.warn(
          { stream: streamId(this.ref), trackId, err: error.message },
          `multitrack publish: video track ${trackId} cannot be packaged and is closed; the other tracks go on`,
        ),
    });
    return this.session;
  }

  /**
   * Another video track of a multitrack publish: the rendition `track<N>`,
   * cut by a fragmenter of its own on the source's timeline, muxed with the
   * audio of track 0, with publish limits of its own (so a publish holds at
   * most MAX_VIDEO_TRACKS times one track's bounds). Undefined (ignored) when
   * the run cannot be a ladder: it continues a playlist written without one.
   */
  private openVideoTrack(sessionFolder: string, trackId: number, source: Fragmenter, startedAt: number | undefined): Fragmenter | undefined {
    if (!this.useLadder()) return undefined;
    const rendition = trackRendition(trackId);
    const inits = new Map<number, Uint8Array>();
    const limits = new PublishLimits(this.options.publishLimits ?? DEFAULT_PUBLISH_LIMITS, this.settings.segmentSeconds, startedAt);
    this.options.log.info({ stream: streamId(this.ref), trackId, rendition }, `multitrack publish: video track ${trackId} is the rendition ${rendition}`);
    return new Fragmenter(
      this.settings.segmentSeconds,
      {
        onInit: (init, generation) => {
          inits.clear();
          inits.set(generation, init);
        },
        onSegment: (segment) => {
          const init = inits.get(segment.initGeneration);
          if (!init) return;
          const trackSegment: TrackSegment = { rendition, sessionFolder, init, data: segment.data, startDtsMs: segment.startDtsMs, duration: segment.duration };
          this.enqueue(async () => {
            this.aligner.add(trackSegment);
            await this.listAlignedTracks();
          });
        },
        onDroppedPacket: (reason) => this.options.metrics.droppedPackets.inc({ reason }),
        onMuxerError: (error) => {
          this.options.metrics.muxerRestarts.inc();
          this.options.log.warn(
            { stream: streamId(this.ref), trackId, err: error },
            'muxer failed on a multitrack video track; it restarts at its next keyframe',
          );
        },
      },
      limits,
      source,
    );
  }

  /** Lists the other tracks' segments that line up with numbered source segments (in the write chain). */
  private async listAlignedTracks(): Promise<void> {
    for (const { segment, sequence } of this.aligner.take()) {
      const outcome = await this.writeRenditionSegment(segment.rendition, sequence, segment.init, segment.data);
      if (outcome !== 'refused') this.options.metrics.renditionSegments.inc({ rendition: segment.rendition, outcome });
    }
  }

  private misaligned(segment: TrackSegment, why: Misalignment): void {
    this.options.metrics.multitrackMisaligned.inc({ rendition: segment.rendition });
    if (this.warnedMisaligned) return;
    this.warnedMisaligned = true;
    this.options.log.warn(
      { stream: streamId(this.ref), rendition: segment.rendition, reason: why, startMs: segment.startDtsMs, seconds: segment.duration },
      "multitrack publish: a track's keyframes do not line up with track 0's; its segments that do not start and end where the source's do are left out (a gap in its playlist). Give every track the same keyframe interval",
    );
  }

  /** Ends the current publish session (its last partial segment is written, unless the run was handed over). */
  async closeSession(session = this.session): Promise<boolean> {
    if (!session || this.session !== session) return false;
    this.session = undefined;
    await session.close();
    return true;
  }

  /**
   * Writes the final playlist (EXT-X-ENDLIST; every segment of a kept run:
   * a VOD). `before` runs first in the chain (a kept run's history read
   * back). The final playlist must never be lost: it goes to the storage
   * from memory like every playlist; when the volume cannot take it,
   * writing it there is retried with backoff until it succeeds or a newer
   * run starts. Until then the live playlist stays on the volume, so an
   * ingest restarted meanwhile resumes the run and ends it again.
   */
  async writeFinal(before?: () => Promise<void>): Promise<void> {
    await this.closeSession();
    await this.awaitRenditions();
    this.closed = true;
    this.playlist.ended = true;
    clearTimeout(this.playlistRetry);
    this.playlistRetry = undefined;
    const vod = this.settings.keepAfterEnd;
    this.enqueue(async () => {
      if (before) await before();
      if (this.playlist.segments.length === 0) return;
      // A ladder's renditions end with the source: each covers the source's whole timeline (gaps where it has no segment).
      for (const track of this.renditions.values()) {
        this.padTrack(track, this.playlist.nextSequence - 1, vod);
        track.playlist.ended = true;
        await this.writeTrackPlaylist(track, { vod });
      }
      await this.storeFinalPlaylist(vod, 0);
      if (this.ladder) await this.writeMultivariant();
    });
    await this.writes;
  }

  /**
   * Another ingest continues the run from the stored playlist: nothing more
   * is written here — no final playlist, no last partial segment — and the
   * run's playlist and journal leave the media volume, so a restart of this
   * process does not resume it. A kept run first stores its whole history
   * beside the playlist (`history` completes it first), for the new holder's VOD.
   */
  async leave(history?: () => Promise<void>): Promise<void> {
    this.closed = true;
    this.left = true;
    clearTimeout(this.playlistRetry);
    this.playlistRetry = undefined;
    await this.closeSession();
    this.enqueue(async () => {
      if (this.settings.keepAfterEnd && this.playlist.segments.length > 0) {
        if (history) await history();
        if (!(await this.writeSourcePlaylist(RUN_HISTORY_FILE, { vod: true }))) {
          this.options.log.warn(
            { stream: streamId(this.ref) },
            "the media volume cannot take the run's history: it is stored from memory only (if this process dies first, the new holder's VOD lacks the segments this ingest wrote before its live window)",
          );
        }
      }
      // Even without the history: a journal left here would make a restarted
      // process resume the run and store its final playlist over the new holder's.
      for (const file of this.playlistFiles()) await rm(join(this.dir, file), { force: true }).catch(() => undefined);
      await this.writeJournal(() => this.journal.remove());
    });
    await this.writes;
  }

  /**
   * A ladder's last source segments are cut by the end of the run, and their
   * renditions (encoded after them) arrive after it: the final playlists
   * wait for them, boundedly, so a VOD does not end on gaps. Only renditions
   * that have listed a segment are waited for (a preset above the source's
   * height never comes).
   */
  private async awaitRenditions(): Promise<void> {
    if (!this.ladder) return;
    const deadline = performance.now() + RENDITION_FINAL_WAIT_SECONDS * this.settings.segmentSeconds * 1000;
    for (;;) {
      // What the session's last segments queued (a multitrack publish's own renditions among them) goes first.
      await this.writes;
      const last = this.playlist.nextSequence - 1;
      if ([...this.renditions.values()].every((track) => track.playlist.nextSequence > last) || performance.now() >= deadline) return;
      await sleep(50);
    }
  }

  /** A newer run of the stream began here: a final playlist still being retried is left as it is. */
  supersede(): void {
    this.superseded = true;
    clearTimeout(this.finalRetry);
    this.finalRetry = undefined;
  }

  /** Resolves once every file queued so far is on the media volume (or could not be written). */
  flushed(): Promise<void> {
    return this.writes;
  }

  private onInit(sessionFolder: string, init: Uint8Array, generation: number): void {
    const uri = `${sessionFolder}/init-${generation}.mp4`;
    // A new init segment inside a session means the muxer restarted or the
    // publisher changed its encoder settings: timestamps start over.
    if (generation > 1) this.nextSegmentIsDiscontinuity = true;
    this.currentInitUri = uri;
    this.currentInitData = init;
    this.enqueue(async () => {
      if (this.left) return;
      // Kept until written: it is retried before the next segment, which needs it.
      this.unwrittenInit = { uri, data: init };
      if (await this.tryWrite(uri, init, 'init')) {
        this.unwrittenInit = undefined;
        this.hand(uri, 'init', init);
      }
    });
  }

  private onSegment(sessionFolder: string, segment: SegmentOutput): void {
    const { metrics, log } = this.options;
    metrics.segmentDuration.observe(segment.duration);
    if (segment.duration > 1.5 * this.settings.segmentSeconds) {
      metrics.longSegments.inc();
      if (!this.warnedLongSegments) {
        this.warnedLongSegments = true;
        log.warn(
          { stream: streamId(this.ref), segmentSeconds: segment.duration, targetSeconds: this.settings.segmentSeconds },
          `segments are longer than their target: the publisher's keyframe interval is too long. In OBS set Output > Keyframe Interval to ${this.settings.segmentSeconds} s`,
        );
      }
    }
    const initUri = this.currentInitUri ?? `${sessionFolder}/init-${segment.initGeneration}.mp4`;
    const initData = this.currentInitData;
    const startDtsMs = segment.startDtsMs;
    const discontinuity = this.nextSegmentIsDiscontinuity;
    this.nextSegmentIsDiscontinuity = false;
    this.enqueue(async () => {
      // The run is another ingest's now.
      if (this.left) return;
      const written = await this.writeSegment(sessionFolder, segment.data);
      if (typeof written === 'string') {
        this.skipSegment(written);
        return;
      }
      if (this.left) return;
      const afterStored = this.nextStoredIsDiscontinuity;
      this.nextStoredIsDiscontinuity = false;
      const entry: PlaylistSegment = {
        uri: written.uri,
        duration: segment.duration,
        programDateTime: segment.arrivedAt,
        initUri,
        // After a gap, or another ingest's publisher, the media jumps ahead: players must not expect continuity.
        discontinuity: discontinuity || afterStored || this.skippedInGap > 0,
      };
      this.closeGap();
      const sequence = this.playlist.nextSequence;
      this.playlist.append(entry);
      if (this.settings.keepAfterEnd) await this.writeJournal(() => this.journal.append(entry));
      else {
        // Without retention only the live window is ever rendered again.
        const excess = this.playlist.segments.length - this.settings.playlistLength;
        if (excess > 0) this.playlist.forgetBefore(excess);
      }
      if (this.ladder) {
        this.sourceBitRate.add(segment.data.byteLength, segment.duration);
        if (initData && this.sourceDescribedInit !== initUri) {
          this.sourceDescription = await this.describe(SOURCE_RENDITION, initData, segment.data);
          this.sourceDescribedInit = initUri;
        }
      }
      await this.writeLivePlaylist();
      if (this.ladder) {
        this.aligner.sourceNumbered({ sequence, sessionFolder, startDtsMs, duration: segment.duration });
        await this.listAlignedTracks();
      }
      if (this.ladder && !this.closed) {
        // Renditions more than the patience behind get a gap, so their playlists keep up with the source's.
        for (const track of this.renditions.values()) {
          if (this.padTrack(track, sequence - 1 - RENDITION_PATIENCE_SEGMENTS, false)) await this.writeTrackPlaylist(track);
        }
        await this.writeMultivariant();
      }
      if (initData && this.options.onSourceSegment) {
        try {
          this.options.onSourceSegment({
            sessionFolder,
            sequence,
            initUri,
            init: initData,
            data: segment.data,
            startSeconds: segment.startSeconds,
            duration: segment.duration,
          });
        } catch (error) {
          log.error({ stream: streamId(this.ref), err: error }, 'a source segment consumer failed');
        }
      }
    });
  }

  /**
   * A segment of another rendition of the ladder (a transcoded one, or
   * another track of a multitrack publish) for the source's segment
   * `sequence`: written to the media volume under the source's session
   * folder (`<session>/<rendition>/<sequence>.m4s`, with its init segment
   * beside it when it differs from the last one), handed to storage, and
   * listed in `<rendition>.m3u8` with the source segment's duration, date
   * and discontinuity, so every rendition's timeline is the source's. The
   * rendition enters the multivariant playlist with its first segment.
   * Resolves with what became of it (see RenditionSegmentOutcome).
   */
  addRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): Promise<RenditionSegmentOutcome> {
    return new Promise((resolve) => {
      this.enqueue(async () => {
        let outcome: RenditionSegmentOutcome = 'refused';
        try {
          outcome = await this.writeRenditionSegment(rendition, sequence, init, data);
        } finally {
          if (outcome !== 'refused') this.options.metrics.renditionSegments.inc({ rendition, outcome });
          resolve(outcome);
        }
      });
    });
  }

  private async writeRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): Promise<RenditionSegmentOutcome> {
    const { log } = this.options;
    if (rendition === SOURCE_RENDITION || !isRenditionName(rendition)) return 'refused';
    if (!this.ladder) {
      if (!this.warnedNoLadder) {
        this.warnedNoLadder = true;
        log.warn(
          { stream: streamId(this.ref), rendition },
          'this run continues a playlist written without a ladder: its renditions are not listed until the next run',
        );
      }
      return 'refused';
    }
    if (this.closed || this.left) return 'late';
    const source = this.sourceEntry(sequence);
    if (!source) return 'late';
    let track = this.renditions.get(rendition);
    if (track && sequence < track.playlist.nextSequence) return 'late';
    if (this.options.volume && !this.options.volume.acceptsSegments()) return 'skipped';
    const folder = renditionFolder(sessionFolderOf(source.uri), rendition);
    track ??= this.newTrack(rendition, sequence, this.discontinuitiesBefore(sequence));
    if (track.initData === undefined || !track.initUri?.startsWith(`${folder}/`) || !sameBytes(track.initData, init)) {
      track.initUri = `${folder}/init-${++track.initCount}.mp4`;
      track.initData = init;
      track.initWritten = false;
    }
    if (!track.initWritten) {
      if (!(await this.tryWrite(track.initUri!, init, 'init'))) return 'skipped';
      track.initWritten = true;
      this.hand(track.initUri!, 'init', init);
    }
    const uri = `${folder}/${sequence}.m4s`;
    if (!(await this.tryWrite(uri, data, 'segment'))) return 'skipped';
    this.hand(uri, 'segment', data);
    if (this.left) return 'listed';
    if (track.playlist.segments.length === 0) {
      // Its first listed segment (an earlier one may have been skipped): the playlist starts here.
      track.playlist.firstSequence = sequence;
      track.playlist.discontinuitiesBefore = this.discontinuitiesBefore(sequence);
    }
    this.padTrack(track, sequence - 1, false);
    // The source's entries are never gaps: the rendition's takes its duration, date and discontinuity.
    track.playlist.append({ ...source, uri, initUri: track.initUri! });
    if (!this.settings.keepAfterEnd) {
      const excess = track.playlist.segments.length - this.settings.playlistLength;
      if (excess > 0) track.playlist.forgetBefore(excess);
    }
    track.bitRate.add(data.byteLength, source.duration);
    if (track.describedInit !== track.initUri) {
      track.description = await this.describe(rendition, init, data);
      track.describedInit = track.initUri;
    }
    await this.writeTrackPlaylist(track);
    await this.writeMultivariant();
    return 'listed';
  }

  private newTrack(name: string, firstSequence: number, discontinuitiesBefore: number): RenditionTrack {
    const playlist = new MediaPlaylist(this.playlist.targetDuration, this.settings.playlistLength);
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
    const index = sequence - this.playlist.firstSequence;
    return index >= 0 ? this.playlist.segments[index] : undefined;
  }

  /** Discontinuities before the source's segment `sequence` (a rendition playlist starting there carries the same EXT-X-DISCONTINUITY-SEQUENCE). */
  private discontinuitiesBefore(sequence: number): number {
    let count = this.playlist.discontinuitiesBefore;
    for (let i = 0; i < sequence - this.playlist.firstSequence; i++) if (this.playlist.segments[i]!.discontinuity) count++;
    return count;
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
    if (list.nextSequence < this.playlist.firstSequence) {
      // Behind the source's whole window: what it lists is gone from every playlist; start over at the window.
      list.forgetBefore(list.segments.length);
      list.firstSequence = this.playlist.firstSequence;
      list.discontinuitiesBefore = this.playlist.discontinuitiesBefore;
    }
    if (front && list.firstSequence > this.playlist.firstSequence) {
      const initUri = list.segments[0]?.initUri ?? track.initUri;
      const earlier: PlaylistSegment[] = [];
      for (let s = this.playlist.firstSequence; s < list.firstSequence; s++) earlier.push(this.gapFor(track, s, initUri)!);
      list.segments.unshift(...earlier);
      list.firstSequence = this.playlist.firstSequence;
      list.discontinuitiesBefore = this.playlist.discontinuitiesBefore;
      added += earlier.length;
    }
    while (list.nextSequence <= through) {
      const gap = this.gapFor(track, list.nextSequence, list.segments.at(-1)?.initUri ?? track.initUri);
      if (!gap) break;
      list.append(gap);
      added++;
    }
    if (added === 0) return false;
    if (!this.settings.keepAfterEnd) {
      const excess = list.segments.length - this.settings.playlistLength;
      if (excess > 0) list.forgetBefore(excess);
    }
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
        { stream: streamId(this.ref), rendition, err: (error as Error).message },
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

  /** Writes the multivariant playlist when its variants changed (see variantsChanged); after every playlist it names. */
  private async writeMultivariant(): Promise<void> {
    if (this.left || this.playlist.segments.length === 0) return;
    const variants = this.variants();
    if (!variantsChanged(this.writtenVariants, variants)) return;
    const body = Buffer.from(renderMultivariantPlaylist(variants));
    this.writtenVariants = variants;
    await this.tryWrite(PLAYLIST_FILE, body, 'playlist');
    this.hand(PLAYLIST_FILE, 'playlist', body, { names: variants.map((v) => v.uri), targetDuration: this.playlist.targetDuration });
  }

  private async writeTrackPlaylist(track: RenditionTrack, options: { vod?: boolean } = {}): Promise<void> {
    if (this.left) return;
    track.playlist.targetDuration = Math.max(track.playlist.targetDuration, this.playlist.targetDuration);
    const { text, names } = track.playlist.renderNamed({ vod: options.vod ?? false });
    const file = renditionPlaylistFile(track.name);
    const body = Buffer.from(text);
    await this.tryWrite(file, body, 'playlist');
    this.hand(file, 'playlist', body, { names, targetDuration: track.playlist.targetDuration });
  }

  /** Every playlist file the run writes on the volume. */
  private playlistFiles(): string[] {
    const files = [PLAYLIST_FILE];
    if (this.ladder) files.push(renditionPlaylistFile(SOURCE_RENDITION), ...[...this.renditions.keys()].map(renditionPlaylistFile));
    return files;
  }

  /** Writes a segment under its sequence number; returns why it was not written instead. */
  private async writeSegment(sessionFolder: string, data: Uint8Array): Promise<{ uri: string } | 'volume_full' | 'write_failed'> {
    // The backlog bound: above it the rest of the volume is kept for playlists.
    if (this.options.volume && !this.options.volume.acceptsSegments()) return 'volume_full';
    if (this.unwrittenInit) {
      const init = this.unwrittenInit;
      if (!(await this.tryWrite(init.uri, init.data, 'init'))) return 'write_failed';
      this.unwrittenInit = undefined;
      this.hand(init.uri, 'init', init.data);
    }
    // A skipped segment uses no sequence number: the playlist's stay continuous.
    const uri = `${sessionFolder}/${this.playlist.nextSequence}.m4s`;
    if (!(await this.tryWrite(uri, data, 'segment'))) return 'write_failed';
    this.hand(uri, 'segment', data);
    return { uri };
  }

  private skipSegment(reason: 'volume_full' | 'write_failed'): void {
    this.options.metrics.skippedSegments.inc({ reason });
    if (this.skippedInGap === 0) {
      this.options.log.warn(
        { stream: streamId(this.ref), reason },
        'segment skipped: the media volume cannot take it; the playlist will mark the gap with a discontinuity',
      );
    }
    this.skippedInGap++;
  }

  private closeGap(): void {
    if (this.skippedInGap > 0) {
      this.options.log.info(
        { stream: streamId(this.ref), skipped: this.skippedInGap },
        'writing segments to the media volume again; the gap is marked with a discontinuity',
      );
    }
    this.skippedInGap = 0;
  }

  private async writeLivePlaylist(): Promise<void> {
    // A run that ended gets its final playlist instead; one handed over gets none from here.
    if (this.closed) return;
    this.formFixed = true;
    if (await this.writeSourcePlaylist(this.sourcePlaylistFile)) {
      this.playlistBehind = false;
      this.playlistRetryAttempt = 0;
      return;
    }
    // Segments still written will write it again; a stream whose segments are
    // all skipped needs the timer to bring its playlist up to date.
    this.playlistBehind = true;
    if (this.playlistRetry) return;
    this.playlistRetry = setTimeout(
      () => {
        this.playlistRetry = undefined;
        this.enqueue(async () => {
          if (this.playlistBehind) await this.writeLivePlaylist();
        });
      },
      backoffDelay(this.playlistRetryAttempt++, 500, 5000),
    );
    this.playlistRetry.unref();
  }

  /** See writeFinal; a retry only brings the volume's copy up to date (it was handed over once). */
  private async storeFinalPlaylist(vod: boolean, attempt: number): Promise<void> {
    if (await this.writeSourcePlaylist(this.sourcePlaylistFile, { vod, hand: attempt === 0 })) {
      if (attempt > 0)
        this.options.log.info({ stream: streamId(this.ref), attempts: attempt + 1 }, 'final playlist written to the media volume after retrying');
      // The journal is needed until the final playlist is safe; not for a newer run's journal.
      if (!this.superseded) await this.writeJournal(() => this.journal.remove());
      return;
    }
    if (attempt === 0) {
      this.options.log.warn(
        { stream: streamId(this.ref), segments: this.playlist.segments.length },
        'the media volume cannot take the final playlist: it is stored from memory, and writing it to the volume is retried',
      );
    }
    this.finalRetry = setTimeout(
      () => {
        this.finalRetry = undefined;
        if (!this.superseded) this.enqueue(() => this.storeFinalPlaylist(vod, attempt + 1));
      },
      backoffDelay(attempt, 500, 10_000),
    );
    this.finalRetry.unref();
  }

  /** Writes a file whole; false when the volume could not take it (counted, logged once per streak). */
  private async tryWrite(relativePath: string, data: Uint8Array | string, kind: FileKind): Promise<boolean> {
    const path = join(this.dir, relativePath);
    try {
      await writeFileAtomic(path, data, this.tmpDir);
    } catch (error) {
      this.writeFailed(kind, relativePath, error);
      return false;
    }
    this.writeSucceeded(kind);
    return true;
  }

  /**
   * Renders the source's playlist (live, final, or the run's history), writes
   * it to the volume and hands it over — whether or not the volume took it:
   * the object store is its destination, the volume's copy is for a restart.
   * False when the volume could not take it.
   */
  private async writeSourcePlaylist(file: string, options: { vod?: boolean; hand?: boolean } = {}): Promise<boolean> {
    this.formFixed = true;
    const { text, names } = this.playlist.renderNamed({ vod: options.vod ?? false });
    const body = Buffer.from(text);
    const written = await this.tryWrite(file, body, 'playlist');
    if (options.hand !== false) {
      if (file === RUN_HISTORY_FILE) this.hand(file, 'history', body, { names });
      else this.hand(file, 'playlist', body, { names, targetDuration: this.playlist.targetDuration });
    }
    return written;
  }

  /** Hands a finished object to the storage, in memory. */
  private hand(uri: string, kind: MediaObjectKind, body: Uint8Array, extra: { names?: readonly string[]; targetDuration?: number } = {}): void {
    this.options.storage.objectFinished(this.ref, { uri, kind, body, completedAt: Date.now(), ...extra });
  }

  private async writeJournal(op: () => Promise<void>): Promise<void> {
    try {
      await op();
      this.writeSucceeded('journal');
    } catch (error) {
      // The packager's own list is complete; the journal catches up with the next append.
      this.writeFailed('journal', JOURNAL_FILE, error);
    }
  }

  private writeFailed(kind: FileKind, file: string, error: unknown): void {
    this.options.metrics.mediaWriteFailures.inc({ kind });
    this.options.volume?.writeFailed();
    const fields = { stream: streamId(this.ref), file, err: error };
    if (this.failing.has(kind)) this.options.log.debug(fields, 'could not write to the media volume');
    else this.options.log.error(fields, 'could not write to the media volume');
    this.failing.add(kind);
  }

  private writeSucceeded(kind: FileKind): void {
    if (this.failing.delete(kind)) this.options.log.info({ stream: streamId(this.ref), kind }, 'writing to the media volume works again');
  }

  /** Runs `op` after every write queued before it. */
  private enqueue(op: () => Promise<void>): void {
    this.writes = this.writes.then(op).catch((error: unknown) => {
      this.options.log.error({ stream: streamId(this.ref), err: error }, 'media volume write step failed');
    });
  }
}

/** What the run storage's readStored found of a run another ingest stored: its source playlist, and a ladder's variants and their playlists. */
export interface StoredRun {
  source: MediaPlaylist;
  /** Present when the stored `index.m3u8` is a multivariant playlist. */
  variants?: Variant[];
  renditions?: Map<string, MediaPlaylist>;
}

function parseVariants(text: string): Variant[] {
  try {
    return parseMultivariantPlaylist(text);
  } catch {
    return [];
  }
}

function parseOrUndefined(text: string, windowLength: number): MediaPlaylist | undefined {
  try {
    return MediaPlaylist.parse(text, windowLength);
  } catch {
    return undefined;
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

/** The session folders that segments live in, each once, in order. */
function foldersOf(segments: readonly PlaylistSegment[]): string[] {
  return [...new Set(segments.map((s) => sessionFolderOf(s.uri)))];
}
