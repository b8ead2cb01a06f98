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
import { renditionPlaylistFile, SOURCE_RENDITION } from '../../common/renditions.ts';
import { isMultivariant, parseMultivariantPlaylist, type Variant } from '../../common/multivariant-playlist.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import type { MediaVolumeGuard } from '../media-volume.ts';
import type { IngestMetrics } from '../metrics.ts';
import { backoffDelay } from '../../common/backoff.ts';
import { MEDIA_TMP_DIR, writeFileAtomic } from '../../common/atomic-file.ts';
import { Fragmenter, type SegmentOutput } from './fragmenter.ts';
import { MediaPlaylist, RUN_HISTORY_FILE, type PlaylistSegment } from '../../common/media-playlist.ts';
import { PublishSession } from './publish-session.ts';
import { LadderPlaylists, type RenderedPlaylist, type RenditionSegmentOutcome } from './ladder-playlists.ts';
import { MultitrackRenditions } from './multitrack-renditions.ts';
import { DEFAULT_PUBLISH_LIMITS, PublishLimits, type PublishLimitSettings } from './publish-limits.ts';
import type { MediaObjectKind, RunStorage } from '../run-storage.ts';
import { JOURNAL_FILE, readJournal, reconcileSegments, SegmentJournal, sequenceOf } from './segment-journal.ts';
import { LowLatencyStream } from '../low-latency/ll-stream.ts';
import type { LowLatencyRegistry } from '../low-latency/ll-source.ts';

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
  /** LL-HLS: where the run's parts and LL playlist are served from while it is live (absent, or parts off: none). */
  lowLatency?: LowLatencyRegistry;
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

export { RENDITION_PATIENCE_SEGMENTS, type RenditionSegmentOutcome } from './ladder-playlists.ts';

/** At the end of a run, its final playlists wait at most this many segment durations for the renditions of its last segments. */
const RENDITION_FINAL_WAIT_SECONDS = 3;

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
  /** The ladder's playlists (ladder-playlists.ts): the packager writes what they say. */
  private readonly ladderPlaylists: LadderPlaylists;
  /** A multitrack publish's other video tracks, as renditions (multitrack-renditions.ts). */
  private readonly multitrack: MultitrackRenditions;
  /** The run's LL-HLS parts and playlist state, while it is live (ingest/low-latency/). */
  private readonly lowLatency: LowLatencyStream | undefined;

  constructor(private readonly options: StreamPackagerOptions) {
    this.ref = options.ref;
    this.settings = options.settings;
    this.dir = join(options.mediaDir, options.ref.namespace, options.ref.name);
    this.tmpDir = join(options.mediaDir, MEDIA_TMP_DIR);
    this.playlist = new MediaPlaylist(this.settings.segmentSeconds, this.settings.playlistLength);
    this.journal = new SegmentJournal(join(this.dir, JOURNAL_FILE), this.tmpDir);
    this.writes = options.after ?? Promise.resolve();
    this.ladderPlaylists = new LadderPlaylists({
      ref: options.ref,
      settings: options.settings,
      source: this.playlist,
      metrics: options.metrics,
      log: options.log,
    });
    this.multitrack = new MultitrackRenditions({
      ref: options.ref,
      settings: options.settings,
      metrics: options.metrics,
      log: options.log,
      publishLimits: options.publishLimits,
      partSeconds: options.lowLatency?.partSeconds ?? 0,
      useLadder: () => this.useLadder(),
      enqueue: (op) => this.enqueue(op),
      writeRenditionSegment: (rendition, sequence, init, data) => this.writeRenditionSegment(rendition, sequence, init, data),
    });
    const registry = options.lowLatency;
    if (registry && registry.partSeconds > 0) {
      this.lowLatency = new LowLatencyStream(this.playlist, registry.partSeconds, () => this.sourcePlaylistFile);
      registry.attach(options.ref, this.lowLatency);
    }
  }

  /** The run is no longer live here: no more LL playlists from it. */
  private endLowLatency(): void {
    if (this.lowLatency) this.options.lowLatency?.detach(this.ref, this.lowLatency);
  }

  /** Whether the run writes a ladder (a multivariant `index.m3u8`). */
  get isLadder(): boolean {
    return this.ladderPlaylists.isLadder;
  }

  /** The source's media playlist: `index.m3u8`, or `source.m3u8` in a ladder. */
  get sourcePlaylistFile(): string {
    return this.isLadder ? renditionPlaylistFile(SOURCE_RENDITION) : PLAYLIST_FILE;
  }

  /**
   * Makes the run a ladder (a multitrack publish announced another video
   * track). Only before its first playlist is written; false after.
   */
  useLadder(): boolean {
    return this.ladderPlaylists.useLadder();
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
    this.ladderPlaylists.fixForm(variants !== undefined);
    if (variants) {
      const playlists = new Map<string, MediaPlaylist>();
      for (const v of variants) {
        if (v.name === SOURCE_RENDITION) continue;
        const body = await readFile(join(this.dir, v.uri), 'utf8').catch(() => undefined);
        const parsed = body === undefined ? undefined : parseOrUndefined(body, this.settings.playlistLength);
        if (parsed) playlists.set(v.name, parsed);
      }
      this.ladderPlaylists.adopt(variants, playlists);
    }
    log.info({ stream, segments: segments.length, renditions: this.ladderPlaylists.renditionCount }, 'resumed an unfinished stream from the media volume');
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
      this.ladderPlaylists.fixForm(run.variants !== undefined);
      if (run.variants) this.ladderPlaylists.adopt(run.variants, run.renditions ?? new Map());
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
        onPart: (part) => this.lowLatency?.part(id, part),
        onPartsAbandoned: () => this.lowLatency?.abandon(),
        onSegment: (segment) => {
          this.lowLatency?.segmentComplete(segment.data);
          this.onSegment(id, segment);
        },
        onDroppedPacket: (reason) => this.options.metrics.droppedPackets.inc({ reason }),
        onMuxerError: (error) => {
          this.options.metrics.muxerRestarts.inc();
          this.options.log.warn({ stream: streamId(this.ref), err: error }, 'muxer failed; packaging restarts at the next keyframe after a discontinuity');
        },
      },
      limits,
      undefined,
      this.lowLatency?.partSeconds ?? 0,
    );
    this.session = new PublishSession(id, fragmenter, this.multitrack.sessionHooks(id, fragmenter, startedAt));
    return this.session;
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
    this.endLowLatency();
    this.playlist.ended = true;
    clearTimeout(this.playlistRetry);
    this.playlistRetry = undefined;
    const vod = this.settings.keepAfterEnd;
    this.enqueue(async () => {
      if (before) await before();
      if (this.playlist.segments.length === 0) return;
      // A ladder's renditions end with the source: each covers the source's whole timeline (gaps where it has no segment).
      for (const rendition of this.ladderPlaylists.renditionNames()) {
        this.ladderPlaylists.endRendition(rendition, vod);
        await this.writeRenditionPlaylist(rendition, vod);
      }
      await this.storeFinalPlaylist(vod, 0);
      if (this.isLadder) await this.writeMultivariant();
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
    this.endLowLatency();
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
      for (const file of this.ladderPlaylists.playlistFiles()) await rm(join(this.dir, file), { force: true }).catch(() => undefined);
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
    if (!this.isLadder) return;
    const deadline = performance.now() + RENDITION_FINAL_WAIT_SECONDS * this.settings.segmentSeconds * 1000;
    for (;;) {
      // What the session's last segments queued (a multitrack publish's own renditions among them) goes first.
      await this.writes;
      if (this.ladderPlaylists.caughtUp() || performance.now() >= deadline) return;
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
    this.lowLatency?.init(uri, init);
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
        this.lowLatency?.skipped();
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
      this.lowLatency?.listed(sequence);
      if (this.settings.keepAfterEnd) await this.writeJournal(() => this.journal.append(entry));
      else {
        // Without retention only the live window is ever rendered again.
        const excess = this.playlist.segments.length - this.settings.playlistLength;
        if (excess > 0) this.playlist.forgetBefore(excess);
      }
      if (this.isLadder) await this.ladderPlaylists.sourceListed(initUri, initData, segment.data, segment.duration);
      await this.writeLivePlaylist();
      if (this.isLadder) await this.multitrack.sourceNumbered({ sequence, sessionFolder, startDtsMs, duration: segment.duration });
      if (this.isLadder && !this.closed) {
        // Renditions more than the patience behind get a gap, so their playlists keep up with the source's.
        for (const rendition of this.ladderPlaylists.renditionNames()) {
          if (this.ladderPlaylists.padLagging(rendition, sequence)) await this.writeRenditionPlaylist(rendition);
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
    if (!this.ladderPlaylists.accepts(rendition)) return 'refused';
    if (this.closed || this.left) return 'late';
    if (this.ladderPlaylists.isLate(rendition, sequence)) return 'late';
    if (this.options.volume && !this.options.volume.acceptsSegments()) return 'skipped';
    const place = this.ladderPlaylists.placeRendition(rendition, sequence, init);
    if (place.initUnwritten) {
      if (!(await this.tryWrite(place.initUri, init, 'init'))) return 'skipped';
      this.ladderPlaylists.initWritten(rendition);
      this.hand(place.initUri, 'init', init);
    }
    if (!(await this.tryWrite(place.uri, data, 'segment'))) return 'skipped';
    this.hand(place.uri, 'segment', data);
    if (this.left) return 'listed';
    await this.ladderPlaylists.listRendition(rendition, sequence, place.uri, init, data);
    await this.writeRenditionPlaylist(rendition);
    await this.writeMultivariant();
    return 'listed';
  }

  /** Writes the multivariant playlist when its variants changed; after every playlist it names. */
  private async writeMultivariant(): Promise<void> {
    if (this.left || this.playlist.segments.length === 0) return;
    const multivariant = this.ladderPlaylists.multivariantToWrite();
    if (multivariant) await this.writePlaylist(multivariant);
  }

  private async writeRenditionPlaylist(rendition: string, vod = false): Promise<void> {
    if (this.left) return;
    await this.writePlaylist(this.ladderPlaylists.renderRendition(rendition, vod));
  }

  private async writePlaylist({ file, text, names, targetDuration }: RenderedPlaylist): Promise<void> {
    const body = Buffer.from(text);
    await this.tryWrite(file, body, 'playlist');
    if (!this.closed) this.lowLatency?.storedPlaylists.set(file, body);
    this.hand(file, 'playlist', body, { names, targetDuration });
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
    this.ladderPlaylists.fixForm();
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
    this.ladderPlaylists.fixForm();
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

/** The session folders that segments live in, each once, in order. */
function foldersOf(segments: readonly PlaylistSegment[]): string[] {
  return [...new Set(segments.map((s) => sessionFolderOf(s.uri)))];
}
