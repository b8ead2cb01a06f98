// Everything one stream writes to the media volume while it is live: its
// playlist, and for each publish session an init segment and media segments
// in a folder of that session's own. A publisher that drops and comes back
// within the reconnect grace period continues the same playlist after a
// discontinuity; a clean unpublish, or the end of the grace period, ends the
// playlist with EXT-X-ENDLIST.
//
// Across ingest pods (a takeover) a run moves from one packager to another:
// the old one hands it over (no final playlist; a kept run's history is
// stored beside the playlist), and the new one continues the stored
// playlist with the next media sequence number after a discontinuity.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../common/log.ts';
import { PLAYLIST_FILE } from '../../common/object-layout.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import type { MediaVolumeGuard } from '../media-volume.ts';
import type { IngestMetrics } from '../metrics.ts';
import { backoffDelay } from '../../common/backoff.ts';
import { MEDIA_TMP_DIR, writeFileAtomic } from '../../common/atomic-file.ts';
import { Fragmenter, type SegmentOutput } from './fragmenter.ts';
import { MediaPlaylist, RUN_HISTORY_FILE, type PlaylistSegment } from '../../common/media-playlist.ts';
import { PublishSession } from './publish-session.ts';
import type { MediaObject, MediaObjectKind } from './media-object.ts';
import { JOURNAL_FILE, readJournal, reconcileSegments, SegmentJournal, sequenceOf } from './segment-journal.ts';

export interface StreamEnd {
  ref: StreamRef;
  /** The session folders of the run that ended (relative to the stream's folder). */
  sessionFolders: string[];
  keep: boolean;
  /**
   * The run was handed over to another ingest (a takeover): it goes on there,
   * from the stored playlist, which may still list these sessions.
   */
  handedOver?: boolean;
}

/** How often a stored playlist or run history is read before going on without it (backoff 250 ms to 2 s). */
const STORED_READ_ATTEMPTS = 8;

export interface StreamPackagerOptions {
  ref: StreamRef;
  settings: StreamSettings;
  mediaDir: string;
  reconnectGraceMs: number;
  /**
   * Each finished object, in memory, in the order it was finished: a segment
   * or init segment once it is on the media volume, a playlist (or a run's
   * history) once the model has changed — also when the volume could not
   * take it, since the object store is its destination. The uploader stores
   * from here and reads the volume only at start-up.
   */
  onObject?: (object: MediaObject) => void;
  metrics: IngestMetrics;
  log: Logger;
  onEnded: (end: StreamEnd) => void;
  /** The media volume's state; without it segments are written until a write fails. */
  volume?: MediaVolumeGuard;
  /**
   * Reads a file of this stream from the object store ("index.m3u8",
   * "history.m3u8"); undefined when there is none. Needed to continue a run
   * another ingest handed over.
   */
  readStored?: (file: string) => Promise<string | undefined>;
}

/** What the media volume holds; `kind` labels the write-failure metric. */
type FileKind = 'segment' | 'init' | 'playlist' | 'journal';

type State = 'idle' | 'live' | 'grace' | 'ended';

export class StreamPackager {
  readonly ref: StreamRef;
  private settings: StreamSettings;
  private playlist: MediaPlaylist;
  private journal: SegmentJournal;
  private state: State = 'idle';
  private session: PublishSession | undefined;
  private sessionFolders: string[] = [];
  private graceTimer: NodeJS.Timeout | undefined;
  /**
   * File writes happen one after another, so a playlist is never written
   * before its segment; and the playlist model changes inside the same
   * chain, only once a segment is on the volume, so it never lists a
   * segment that could not be written.
   */
  private writes: Promise<void> = Promise.resolve();
  private nextSegmentIsDiscontinuity = false;
  private currentInitUri: string | undefined;
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
  /** Runs handed over to another ingest: nothing more of them is written here. */
  private readonly handedOver = new WeakSet<MediaPlaylist>();
  /** The run continues a stored playlist (a takeover): its next segment follows a discontinuity. */
  private continuesStoredRun = false;
  private readonly dir: string;
  private readonly tmpDir: string;

  constructor(private readonly options: StreamPackagerOptions) {
    this.ref = options.ref;
    this.settings = options.settings;
    this.dir = join(options.mediaDir, options.ref.namespace, options.ref.name);
    this.tmpDir = join(options.mediaDir, MEDIA_TMP_DIR);
    this.playlist = this.newPlaylist();
    this.journal = this.newJournal();
  }

  get isLive(): boolean {
    return this.state === 'live';
  }

  /** When the oldest segment the playlist still lists arrived (the run's start, when retained). */
  get oldestListedSegmentAt(): Date | undefined {
    const first = this.playlist.segments[0];
    return first ? new Date(first.programDateTime) : undefined;
  }

  /**
   * Picks up a playlist left on the media volume by a process that did not
   * end it (killed, or the node restarted the container): the stream waits in
   * its reconnect grace period, as if its publisher had just dropped. A
   * retained run's journal and playlist are reconciled: the run keeps every
   * segment either names (a kill can leave the journal one entry ahead, or
   * cut its last line).
   */
  async resumeFromDisk(): Promise<boolean> {
    const { log } = this.options;
    const stream = streamId(this.ref);
    let playlist: MediaPlaylist | undefined;
    const text = await readFile(join(this.dir, PLAYLIST_FILE), 'utf8').catch(() => undefined);
    if (text !== undefined) {
      try {
        playlist = MediaPlaylist.parse(text, this.settings.playlistLength);
      } catch (error) {
        log.warn({ stream, err: (error as Error).message }, 'the playlist on the media volume is unreadable; resuming from the segment journal, if any');
      }
    }
    if (playlist?.ended) return false;
    const journal = await readJournal(join(this.dir, JOURNAL_FILE));
    if (journal && journal.badLines > 0) {
      log.warn({ stream, ignoredLines: journal.badLines, entries: journal.entries.length }, 'the segment journal has lines cut short (an append interrupted by a kill or a full volume); they are ignored');
    }
    if (journal && journal.entries.length > 0) {
      const window = playlist?.segments ?? [];
      const segments = reconcileSegments(journal.entries, window);
      if (segments.length !== journal.entries.length || segments.length < window.length) {
        log.warn({ stream, journal: journal.entries.length, playlist: window.length, kept: segments.length }, 'the segment journal and the playlist disagree (the ingest stopped between writing one and the other); keeping every segment either names');
      }
      const whole = new MediaPlaylist(playlist?.targetDuration ?? this.settings.segmentSeconds, this.settings.playlistLength);
      whole.firstSequence = sequenceOf(segments[0]!.uri) ?? 0;
      for (const s of segments) whole.append(s);
      playlist = whole;
      // Repaired: whole lines only, in step with the playlist, so appends can go on.
      this.enqueue(() => this.writeJournal(() => this.journal.replace(segments)));
    }
    if (!playlist || playlist.segments.length === 0) return false;
    this.playlist = playlist;
    this.sessionFolders = [...new Set(playlist.segments.map((s) => s.uri.split('/')[0]!))];
    this.currentInitUri = playlist.segments.at(-1)?.initUri;
    this.nextSegmentIsDiscontinuity = true;
    this.enterGrace();
    log.info({ stream, segments: playlist.segments.length }, 'resumed an unfinished stream from the media volume');
    return true;
  }

  /**
   * Starts packaging a new publish session. With `continueStoredRun` (this
   * ingest took the stream over from another), a new run here continues the
   * playlist stored in the object store, unless that one has ended.
   */
  beginSession(settings: StreamSettings, options: { continueStoredRun?: boolean } = {}): PublishSession {
    if (this.state === 'live') throw new Error(`${streamId(this.ref)} already has a publisher`);
    if (this.state === 'ended' || this.state === 'idle') {
      // A new run: the last one's final playlist, if still being retried, is superseded.
      clearTimeout(this.finalRetry);
      this.finalRetry = undefined;
      this.settings = settings;
      this.playlist = this.newPlaylist();
      this.journal = this.newJournal();
      this.sessionFolders = [];
      const journal = this.journal;
      this.enqueue(() => this.writeJournal(() => journal.remove()));
      this.nextSegmentIsDiscontinuity = false;
      this.skippedInGap = 0;
      this.playlistBehind = false;
      this.warnedLongSegments = false;
      this.continuesStoredRun = false;
      if (options.continueStoredRun) {
        const playlist = this.playlist;
        this.enqueue(() => this.continueStoredRun(playlist, journal, settings.keepAfterEnd));
      }
    } else {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
      this.nextSegmentIsDiscontinuity = true;
    }
    this.state = 'live';
    const id = newSessionId();
    this.sessionFolders.push(id);
    const fragmenter = new Fragmenter(this.settings.segmentSeconds, {
      onInit: (init, generation) => this.onInit(id, init, generation),
      onSegment: (segment) => this.onSegment(id, segment),
      onDroppedPacket: (reason) => this.options.metrics.droppedPackets.inc({ reason }),
      onMuxerError: (error) => {
        this.options.metrics.muxerRestarts.inc();
        this.options.log.warn({ stream: streamId(this.ref), err: error }, 'muxer failed; packaging restarts at the next keyframe after a discontinuity');
      },
    });
    this.session = new PublishSession(id, fragmenter, {
      onIgnoredTrack: (kind, trackId) => this.options.log.info({ stream: streamId(this.ref), kind, trackId }, `multitrack publish: ${kind} track ${trackId} is ignored; only the default track 0 is packaged`),
    });
    return this.session;
  }

  /**
   * The publish session ended. `clean` is true when the publisher unpublished
   * (OBS "Stop Streaming"), false when the connection dropped.
   */
  async endSession(session: PublishSession, clean: boolean): Promise<void> {
    if (this.session !== session) return;
    this.session = undefined;
    await session.close();
    if (clean) await this.finish();
    else this.enterGrace();
  }

  /**
   * Ends the stream now, whatever its state, and waits until its final
   * playlist is on the media volume — or, when the volume cannot take it,
   * handed to the uploader from memory (and retried on the volume).
   */
  async finish(): Promise<void> {
    if (this.state === 'ended') return this.writes;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    const session = this.session;
    this.session = undefined;
    if (session) await session.close();
    this.state = 'ended';
    const playlist = this.playlist;
    const journal = this.journal;
    const vod = this.settings.keepAfterEnd;
    playlist.ended = true;
    clearTimeout(this.playlistRetry);
    this.playlistRetry = undefined;
    this.enqueue(async () => {
      if (vod) await this.completeHistory(playlist);
      if (playlist.segments.length > 0) await this.storeFinalPlaylist(playlist, journal, vod, 0);
    });
    await this.writes;
    this.options.onEnded({ ref: this.ref, sessionFolders: [...this.sessionFolders], keep: this.settings.keepAfterEnd });
  }

  /**
   * Another ingest took this stream over (its claim): the run goes on there,
   * from the stored playlist. So nothing more is written here — no final
   * playlist, no last partial segment — and the run's playlist and journal
   * leave the media volume, so a restart of this process does not resume it.
   * A kept run first stores its whole history beside the playlist, for the
   * new holder's final VOD.
   */
  async handOver(): Promise<void> {
    if (this.state === 'ended' || this.state === 'idle') return this.writes;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    clearTimeout(this.playlistRetry);
    this.playlistRetry = undefined;
    this.state = 'ended';
    const playlist = this.playlist;
    const journal = this.journal;
    const retained = this.settings.keepAfterEnd;
    this.handedOver.add(playlist);
    const session = this.session;
    this.session = undefined;
    if (session) await session.close();
    this.enqueue(async () => {
      if (retained && playlist.segments.length > 0) {
        await this.completeHistory(playlist);
        if (!(await this.writePlaylistObject(RUN_HISTORY_FILE, playlist, { vod: true }))) {
          this.options.log.warn({ stream: streamId(this.ref) }, 'the media volume cannot take the run\'s history: it is stored from memory only (if this process dies first, the new holder\'s VOD lacks the segments this ingest wrote before its live window)');
        }
      }
      // Even without the history: a journal left here would make a restarted
      // process resume the run and store its final playlist over the new holder's.
      await rm(join(this.dir, PLAYLIST_FILE), { force: true }).catch(() => undefined);
      await this.writeJournal(() => journal.remove());
    });
    await this.writes;
    this.options.log.info({ stream: streamId(this.ref), segments: playlist.segments.length }, 'run handed over to the ingest that took the stream over: it continues the stored playlist');
    this.options.onEnded({ ref: this.ref, sessionFolders: [...this.sessionFolders], keep: this.settings.keepAfterEnd, handedOver: true });
  }

  /**
   * A run that takes over from another ingest starts from the playlist that
   * ingest stored: its window, media sequence and discontinuity sequence go
   * on, and the first segment written here follows a discontinuity. Runs in
   * the write chain before this run's first segment.
   */
  private async continueStoredRun(playlist: MediaPlaylist, journal: SegmentJournal, retained: boolean): Promise<void> {
    const stream = streamId(this.ref);
    // No playlist stored (the run before stored none yet) is an answer too: a new run.
    const text = await this.readStoredWithRetry(PLAYLIST_FILE, () => true);
    if (text === undefined) return;
    let stored: MediaPlaylist;
    try {
      stored = MediaPlaylist.parse(text, this.settings.playlistLength);
    } catch (error) {
      this.options.log.warn({ stream, err: (error as Error).message }, 'the stored playlist is unreadable; starting a new run');
      return;
    }
    // An ended playlist is a finished run: the takeover starts a new one.
    if (stored.ended || stored.segments.length === 0 || playlist !== this.playlist || playlist.segments.length > 0) return;
    playlist.firstSequence = stored.firstSequence;
    playlist.discontinuitiesBefore = stored.discontinuitiesBefore;
    playlist.targetDuration = Math.max(playlist.targetDuration, stored.targetDuration);
    for (const segment of stored.segments) playlist.append(segment);
    // This run now answers for the stored sessions' media too (deleted at its end, unless kept).
    const folders = [...new Set(stored.segments.map((s) => s.uri.split('/')[0]!))].filter((f) => !this.sessionFolders.includes(f));
    this.sessionFolders.unshift(...folders);
    this.continuesStoredRun = true;
    if (retained) await this.writeJournal(() => journal.replace(playlist.segments));
    this.options.log.info({ stream, mediaSequence: playlist.nextSequence }, 'continuing the run another ingest stored: the playlist goes on after a discontinuity');
  }

  /**
   * A kept run that continues another ingest's lists only the window it took
   * over; the run's history object, which the ingest before stored when it
   * handed over, has the segments before it. A kept run's own playlist starts
   * at media sequence 0, so one that starts later lacks them.
   */
  private async completeHistory(playlist: MediaPlaylist): Promise<void> {
    if (playlist.firstSequence === 0 || playlist.segments.length === 0 || !this.options.readStored) return;
    const first = playlist.segments[0]!.uri;
    const fits = (text: string | undefined): boolean => {
      if (text === undefined) return false;
      try {
        const history = MediaPlaylist.parse(text, 0);
        // This run's (session folders are unique for all time), from its start, up to the window.
        return history.firstSequence === 0 && history.segments[playlist.firstSequence]?.uri === first;
      } catch {
        return false;
      }
    };
    // The ingest before may still be storing it, right after a takeover.
    const text = await this.readStoredWithRetry(RUN_HISTORY_FILE, fits);
    if (!fits(text)) {
      this.options.log.error({ stream: streamId(this.ref), fromSequence: playlist.firstSequence }, 'the run\'s history before the takeover is not in the object store: the VOD lists the run from the window this ingest took over');
      return;
    }
    const history = MediaPlaylist.parse(text!, 0);
    const earlier = history.segments.slice(0, playlist.firstSequence);
    playlist.segments.unshift(...earlier);
    playlist.firstSequence = 0;
    playlist.discontinuitiesBefore = history.discontinuitiesBefore;
    playlist.targetDuration = Math.max(playlist.targetDuration, history.targetDuration);
    this.options.log.info({ stream: streamId(this.ref), segments: earlier.length }, 'the run\'s history before the takeover is read back from the object store');
  }

  /**
   * Reads a stored file until `done` says it is what is wanted, retrying
   * failed reads too (bounded: the segments of the run wait behind it in the
   * write chain); the last text read, if any.
   */
  private async readStoredWithRetry(file: string, done: (text: string | undefined) => boolean): Promise<string | undefined> {
    const read = this.options.readStored;
    if (!read) return undefined;
    let text: string | undefined;
    for (let attempt = 0; attempt < STORED_READ_ATTEMPTS; attempt++) {
      try {
        text = await read(file);
        if (done(text)) return text;
      } catch (error) {
        if (attempt === 0) this.options.log.warn({ stream: streamId(this.ref), file, err: (error as Error).message }, 'cannot read from the object store; retrying');
      }
      if (attempt < STORED_READ_ATTEMPTS - 1) await sleep(backoffDelay(attempt, 250, 2000));
    }
    return text;
  }

  /** Resolves once every file queued so far is on the media volume (or could not be written). */
  flushed(): Promise<void> {
    return this.writes;
  }

  private enterGrace(): void {
    this.state = 'grace';
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      void this.finish();
    }, this.options.reconnectGraceMs);
    this.graceTimer.unref();
  }

  private newPlaylist(): MediaPlaylist {
    return new MediaPlaylist(this.settings.segmentSeconds, this.settings.playlistLength);
  }

  private newJournal(): SegmentJournal {
    return new SegmentJournal(join(this.dir, JOURNAL_FILE), this.tmpDir);
  }

  private onInit(sessionFolder: string, init: Uint8Array, generation: number): void {
    const uri = `${sessionFolder}/init-${generation}.mp4`;
    // A new init segment inside a session means the muxer restarted or the
    // publisher changed its encoder settings: timestamps start over.
    if (generation > 1) this.nextSegmentIsDiscontinuity = true;
    this.currentInitUri = uri;
    this.enqueue(async () => {
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
    const playlist = this.playlist;
    const journal = this.journal;
    const retained = this.settings.keepAfterEnd;
    const initUri = this.currentInitUri ?? `${sessionFolder}/init-${segment.initGeneration}.mp4`;
    const discontinuity = this.nextSegmentIsDiscontinuity;
    this.nextSegmentIsDiscontinuity = false;
    this.enqueue(async () => {
      // The run is another ingest's now.
      if (this.handedOver.has(playlist)) return;
      const written = await this.writeSegment(playlist, sessionFolder, segment.data);
      if (typeof written === 'string') {
        this.skipSegment(written);
        return;
      }
      if (this.handedOver.has(playlist)) return;
      const takeover = playlist === this.playlist && this.continuesStoredRun;
      if (takeover) this.continuesStoredRun = false;
      const entry: PlaylistSegment = {
        uri: written.uri,
        duration: segment.duration,
        programDateTime: segment.arrivedAt,
        initUri,
        // After a gap, or another ingest's publisher, the media jumps ahead: players must not expect continuity.
        discontinuity: discontinuity || takeover || this.skippedInGap > 0,
      };
      this.closeGap();
      playlist.append(entry);
      if (retained) await this.writeJournal(() => journal.append(entry));
      // Without retention only the live window is ever rendered again.
      if (!retained) {
        const excess = playlist.segments.length - this.settings.playlistLength;
        if (excess > 0) playlist.forgetBefore(excess);
      }
      await this.writeLivePlaylist(playlist);
    });
  }

  /** Writes a segment under its sequence number; returns why it was not written instead. */
  private async writeSegment(playlist: MediaPlaylist, sessionFolder: string, data: Uint8Array): Promise<{ uri: string } | 'volume_full' | 'write_failed'> {
    // The backlog bound: above it the rest of the volume is kept for playlists.
    if (this.options.volume && !this.options.volume.acceptsSegments()) return 'volume_full';
    if (this.unwrittenInit) {
      const init = this.unwrittenInit;
      if (!(await this.tryWrite(init.uri, init.data, 'init'))) return 'write_failed';
      this.unwrittenInit = undefined;
      this.hand(init.uri, 'init', init.data);
    }
    // A skipped segment uses no sequence number: the playlist's stay continuous.
    const uri = `${sessionFolder}/${playlist.nextSequence}.m4s`;
    if (!(await this.tryWrite(uri, data, 'segment'))) return 'write_failed';
    this.hand(uri, 'segment', data);
    return { uri };
  }

  private skipSegment(reason: 'volume_full' | 'write_failed'): void {
    this.options.metrics.skippedSegments.inc({ reason });
    if (this.skippedInGap === 0) {
      this.options.log.warn({ stream: streamId(this.ref), reason }, 'segment skipped: the media volume cannot take it; the playlist will mark the gap with a discontinuity');
    }
    this.skippedInGap++;
  }

  private closeGap(): void {
    if (this.skippedInGap > 0) {
      this.options.log.info({ stream: streamId(this.ref), skipped: this.skippedInGap }, 'writing segments to the media volume again; the gap is marked with a discontinuity');
    }
    this.skippedInGap = 0;
  }

  private async writeLivePlaylist(playlist: MediaPlaylist): Promise<void> {
    // A run that ended gets its final playlist instead; one handed over gets none from here.
    if (playlist !== this.playlist || playlist.ended || this.handedOver.has(playlist)) return;
    if (await this.writePlaylistObject(PLAYLIST_FILE, playlist)) {
      this.playlistBehind = false;
      this.playlistRetryAttempt = 0;
      return;
    }
    // Segments still written will write it again; a stream whose segments are
    // all skipped needs the timer to bring its playlist up to date.
    this.playlistBehind = true;
    if (this.playlistRetry) return;
    this.playlistRetry = setTimeout(() => {
      this.playlistRetry = undefined;
      this.enqueue(async () => {
        if (this.playlistBehind) await this.writeLivePlaylist(playlist);
      });
    }, backoffDelay(this.playlistRetryAttempt++, 500, 5000));
    this.playlistRetry.unref();
  }

  /**
   * The final playlist (EXT-X-ENDLIST) must never be lost. It goes to the
   * uploader from memory like every playlist; when the volume cannot take
   * it, writing it there is retried with backoff until it succeeds or a new
   * run starts. Until then the live playlist stays on the volume, so an
   * ingest restarted meanwhile resumes the run and ends it again.
   */
  private async storeFinalPlaylist(playlist: MediaPlaylist, journal: SegmentJournal, vod: boolean, attempt: number): Promise<void> {
    // Handed over once; a retry only brings the volume's copy up to date.
    if (await this.writePlaylistObject(PLAYLIST_FILE, playlist, { vod, hand: attempt === 0 })) {
      if (attempt > 0) this.options.log.info({ stream: streamId(this.ref), attempts: attempt + 1 }, 'final playlist written to the media volume after retrying');
      // The journal is needed until the final playlist is safe; not for a new run's journal.
      if (this.playlist === playlist) await this.writeJournal(() => journal.remove());
      return;
    }
    if (attempt === 0) {
      this.options.log.warn({ stream: streamId(this.ref), segments: playlist.segments.length }, 'the media volume cannot take the final playlist: it is stored from memory, and writing it to the volume is retried');
    }
    this.finalRetry = setTimeout(() => {
      this.finalRetry = undefined;
      if (this.playlist === playlist) this.enqueue(() => this.storeFinalPlaylist(playlist, journal, vod, attempt + 1));
    }, backoffDelay(attempt, 500, 10_000));
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
   * Renders a playlist (the live one, the final one, or a run's history),
   * writes it to the volume and hands it to the uploader — whether or not the
   * volume took it: the object store is its destination, the volume's copy is
   * for a restart. False when the volume could not take it.
   */
  private async writePlaylistObject(file: typeof PLAYLIST_FILE | typeof RUN_HISTORY_FILE, playlist: MediaPlaylist, options: { vod?: boolean; hand?: boolean } = {}): Promise<boolean> {
    const { text, names } = playlist.renderNamed({ vod: options.vod ?? false });
    const body = Buffer.from(text);
    const written = await this.tryWrite(file, body, 'playlist');
    if (options.hand !== false) {
      if (file === PLAYLIST_FILE) this.hand(file, 'playlist', body, { names, targetDuration: playlist.targetDuration });
      else this.hand(file, 'history', body, { names });
    }
    return written;
  }

  /** Hands a finished object to the uploader, in memory. */
  private hand(uri: string, kind: MediaObjectKind, body: Uint8Array, extra: { names?: readonly string[]; targetDuration?: number } = {}): void {
    this.options.onObject?.({ uri, kind, body, completedAt: Date.now(), ...extra });
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

  private enqueue(op: () => Promise<void>): void {
    this.writes = this.writes.then(op).catch((error: unknown) => {
      this.options.log.error({ stream: streamId(this.ref), err: error }, 'media volume write step failed');
    });
  }
}

/** Unique for all time: a session's segment names are never reused, so CDNs may cache them forever. */
export function newSessionId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
