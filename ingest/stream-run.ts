// One live run of one stream on this ingest, from its first publish (or its
// resumption after a restart) to its end: the one owner of the run's state.
//
//   live ──publisher drops──▶ grace ──publisher back in time──▶ live
//     │                         │
//     │ unpublish               │ grace runs out, or the claim is lost
//     ▼                         ▼
//   ended ◀─────────────────────┘          live/grace ──claim taken over──▶ handed over
//
// The run holds the stream's fleet-wide claim (Kubernetes) while it writes
// the playlist, and lets go of it once everything it wrote is stored — or
// passes it to the next run of the same stream on this ingest. A run that
// took the stream over from another ingest continues the playlist stored
// there; a kept run that continued one completes its VOD from the history
// the other ingest stored. The packager does the writing; the run tells it
// what to write, and the run storage port is its only way out.
import { randomBytes } from 'node:crypto';
import { retry } from '../common/backoff.ts';
import type { Logger } from '../common/log.ts';
import { streamId, type StreamRef, type StreamSettings } from '../common/livestream.ts';
import { MediaPlaylist, RUN_HISTORY_FILE } from '../common/media-playlist.ts';
import { PLAYLIST_FILE } from '../common/object-layout.ts';
import { isMultivariant, parseMultivariantPlaylist, type Variant } from '../common/multivariant-playlist.ts';
import { renditionPlaylistFile, SOURCE_RENDITION } from '../common/renditions.ts';
import type { MediaVolumeGuard } from './media-volume.ts';
import type { IngestMetrics } from './metrics.ts';
import type { PublishSession } from './packager/publish-session.ts';
import { StreamPackager, type RenditionSegmentOutcome, type SourceSegment, type StoredRun } from './packager/stream-packager.ts';
import type { RunStorage } from './run-storage.ts';
import type { PublishLimitSettings } from './packager/publish-limits.ts';
import type { LowLatencyRegistry } from './low-latency/ll-source.ts';

/** How often a stored playlist or run history is read before going on without it (backoff 250 ms to 2 s). */
const STORED_READ_ATTEMPTS = 8;

export type RunState = 'live' | 'grace' | 'ended' | 'handed_over';

/** What every run of this ingest shares. */
export interface RunContext {
  mediaDir: string;
  reconnectGraceMs: number;
  storage: RunStorage;
  /** Lets go of a stream's fleet-wide claim (absent: no claims, one machine). */
  releaseClaim?: (ref: StreamRef) => Promise<void>;
  volume?: MediaVolumeGuard;
  /** What one publish may hold and produce (publish-limits.ts); the defaults when absent. */
  publishLimits?: PublishLimitSettings;
  /**
   * Each source segment once written and numbered (the transcoder's driver:
   * it answers with run.addRenditionSegment). Called in the run's write
   * chain: it must return at once.
   */
  onSourceSegment?(run: StreamRun, segment: SourceSegment): void;
  /** LL-HLS parts and playlists of the live runs (ingest/low-latency/). */
  lowLatency?: LowLatencyRegistry;
  metrics: IngestMetrics;
  log: Logger;
}

export interface RunStart {
  ref: StreamRef;
  settings: StreamSettings;
  /** The previous run of the stream on this ingest, if it is still finishing: this run's writes come after its. */
  previous?: StreamRun;
}

export class StreamRun {
  readonly ref: StreamRef;
  private startedAt = new Date();
  private runState: RunState;
  /** This ingest holds the stream's fleet-wide claim for the run. */
  private claimed = false;
  private readonly packager: StreamPackager;
  private session: PublishSession | undefined;
  /** This run's own publish sessions' folders. */
  private readonly sessions: string[] = [];
  private graceTimer: NodeJS.Timeout | undefined;
  private ending: Promise<void> | undefined;
  /** Resolves once the run ended and what it wrote is stored (or the storage's bound passed). */
  readonly settled: Promise<void>;
  private resolveEnded!: () => void;

  private constructor(
    private readonly ctx: RunContext,
    start: RunStart,
    state: RunState,
  ) {
    this.ref = start.ref;
    this.runState = state;
    start.previous?.packager.supersede();
    this.packager = new StreamPackager({
      ref: start.ref,
      settings: start.settings,
      mediaDir: ctx.mediaDir,
      storage: ctx.storage,
      metrics: ctx.metrics,
      log: ctx.log,
      ...(ctx.volume ? { volume: ctx.volume } : {}),
      ...(ctx.publishLimits ? { publishLimits: ctx.publishLimits } : {}),
      ...(start.previous ? { after: start.previous.packager.flushed() } : {}),
      ...(ctx.onSourceSegment ? { onSourceSegment: (segment: SourceSegment) => ctx.onSourceSegment!(this, segment) } : {}),
      ...(ctx.lowLatency ? { lowLatency: ctx.lowLatency } : {}),
    });
    const ended = new Promise<void>((resolve) => (this.resolveEnded = resolve));
    // The claim says "this stream's media is being written here": the
    // controller deletes a removed stream's media once the claim is gone, so
    // a run that ended keeps it until its last objects are stored.
    this.settled = ended.then(async () => {
      await this.ctx.storage.settled(this.ref);
      if (this.claimed) {
        this.claimed = false;
        await this.ctx.releaseClaim?.(this.ref).catch(() => undefined);
      }
    });
  }

  /**
   * A new run, live with its first publish session. `continueStored`: this
   * ingest took the stream over from another, and the run continues the
   * playlist stored there (unless that one has ended).
   */
  static begin(ctx: RunContext, start: RunStart, options: { continueStored?: boolean } = {}): StreamRun {
    const run = new StreamRun(ctx, start, 'live');
    run.packager.startFresh();
    if (options.continueStored) run.packager.continueStored(() => run.readStoredPlaylist());
    return run;
  }

  /**
   * A run a previous process left unfinished on the media volume, waiting in
   * its reconnect grace as if its publisher had just dropped; undefined when
   * there is none.
   */
  static async resume(ctx: RunContext, start: RunStart): Promise<StreamRun | undefined> {
    const run = new StreamRun(ctx, start, 'grace');
    if (!(await run.packager.resumeFromVolume())) return undefined;
    // Still a live run to viewers, since its oldest listed segment, until its grace period ends it.
    run.startedAt = run.packager.oldestListedSegmentAt ?? run.startedAt;
    run.enterGrace();
    return run;
  }

  /** When the run went live (a resumed run: when its oldest listed segment arrived). */
  get since(): Date {
    return this.startedAt;
  }

  get state(): RunState {
    return this.runState;
  }

  /** Waiting for its publisher to come back. */
  get inGrace(): boolean {
    return this.runState === 'grace';
  }

  /** Ended or handed over: a new publish starts a new run. */
  get isOver(): boolean {
    return this.runState === 'ended' || this.runState === 'handed_over';
  }

  get holdsClaim(): boolean {
    return this.claimed;
  }

  /** The run holds the stream's claim (just acquired, or passed on from the run before). */
  holdClaim(): void {
    this.claimed = true;
  }

  /** The next run of the stream on this ingest takes the claim over from this one (which has ended). */
  passClaim(): boolean {
    const had = this.claimed;
    this.claimed = false;
    return had;
  }

  /**
   * A publish session: the first of the run, or one that continues it within
   * the grace period. `askedAt` (performance.now()): when the publish was
   * asked for, from which its media time is paced against the wall clock.
   */
  beginSession(askedAt?: number): PublishSession {
    if (this.runState === 'live' && this.session) throw new Error(`${streamId(this.ref)} already has a publisher`);
    if (this.isOver) throw new Error(`${streamId(this.ref)}: the run is over`);
    const afterDrop = this.runState === 'grace';
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.runState = 'live';
    const id = newSessionId();
    this.sessions.push(id);
    this.session = this.packager.startSession(id, afterDrop, askedAt);
    return this.session;
  }

  /**
   * The publish session ended. `clean` is true when the publisher unpublished
   * (OBS "Stop Streaming"), false when the connection dropped.
   */
  async endSession(session: PublishSession, clean: boolean): Promise<void> {
    if (this.session !== session) return;
    this.session = undefined;
    await this.packager.closeSession(session);
    if (clean) await this.finish();
    else if (!this.isOver) this.enterGrace();
  }

  /** Ends the run now, whatever its state, and waits until its final playlist is written (or stored from memory). */
  finish(): Promise<void> {
    if (this.ending) return this.ending;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.session = undefined;
    this.runState = 'ended';
    const vod = this.packager.settings.keepAfterEnd;
    this.ending = this.packager.writeFinal(vod ? () => this.completeHistory() : undefined).then(() => this.ended(false));
    return this.ending;
  }

  /**
   * Another ingest took the stream over (its claim): the run goes on there,
   * from the stored playlist. Nothing more is written here, and a kept run
   * first stores its whole history for the new holder's VOD.
   */
  handOver(): Promise<void> {
    if (this.ending) return this.ending;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.session = undefined;
    this.runState = 'handed_over';
    this.ending = this.packager
      .leave(() => this.completeHistory())
      .then(() => {
        this.ctx.log.info(
          { stream: streamId(this.ref), segments: this.packager.playlist.segments.length },
          'run handed over to the ingest that took the stream over: it continues the stored playlist',
        );
        this.ended(true);
      });
    return this.ending;
  }

  /**
   * This ingest lost the stream's claim. With a new holder the run is handed
   * over (no final playlist, which would end the stream for viewers, and no
   * deletion of media the new holder still lists); without one (the claim
   * was deleted) a run waiting in its grace ends here at once. A live run's
   * publish is ended by the hub.
   */
  claimLost(newHolder: string | undefined): void {
    this.claimed = false;
    if (this.isOver) return;
    if (newHolder !== undefined) void this.handOver();
    else if (this.inGrace) void this.finish();
  }

  /** The run's settings (its LiveStream's, as the run began). */
  get settings(): StreamSettings {
    return this.packager.settings;
  }

  /** Whether the run writes an adaptive ladder (a multivariant `index.m3u8`; see StreamPackager.isLadder). */
  get isLadder(): boolean {
    return this.packager.isLadder;
  }

  /** A segment of another rendition for the source's segment `sequence` (StreamPackager.addRenditionSegment). */
  addRenditionSegment(rendition: string, sequence: number, init: Uint8Array, data: Uint8Array): Promise<RenditionSegmentOutcome> {
    return this.packager.addRenditionSegment(rendition, sequence, init, data);
  }

  /** Resolves once every file the run queued so far is written. */
  flushed(): Promise<void> {
    return this.packager.flushed();
  }

  private ended(handedOver: boolean): void {
    const sessionFolders = [...new Set([...this.packager.adoptedFolders, ...this.sessions])];
    this.ctx.storage.runEnded({ ref: this.ref, sessionFolders, keep: this.packager.settings.keepAfterEnd, ...(handedOver ? { handedOver: true } : {}) });
    this.resolveEnded();
  }

  private enterGrace(): void {
    this.runState = 'grace';
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      void this.finish();
    }, this.ctx.reconnectGraceMs);
    this.graceTimer.unref();
  }

  /**
   * The run another ingest stored: its playlist, or for a ladder the source's
   * playlist (the run's timeline) and every rendition's that the
   * multivariant `index.m3u8` names.
   */
  private async readStoredPlaylist(): Promise<StoredRun | undefined> {
    // No playlist stored (the run before stored none yet) is an answer too: a new run.
    let text = await this.readStoredWithRetry(PLAYLIST_FILE, () => true);
    if (text === undefined) return undefined;
    const windowLength = this.packager.settings.playlistLength;
    try {
      if (!isMultivariant(text)) return { source: MediaPlaylist.parse(text, windowLength) };
      const variants: Variant[] = parseMultivariantPlaylist(text);
      text = await this.readStoredWithRetry(renditionPlaylistFile(SOURCE_RENDITION), (t) => t !== undefined);
      if (text === undefined) throw new Error('the ladder has no source playlist stored');
      const source = MediaPlaylist.parse(text, windowLength);
      const renditions = new Map<string, MediaPlaylist>();
      for (const v of variants) {
        if (v.name === SOURCE_RENDITION) continue;
        const body = await this.ctx.storage.readStored(this.ref, v.uri).catch(() => undefined);
        try {
          if (body !== undefined) renditions.set(v.name, MediaPlaylist.parse(body, windowLength));
        } catch {
          // A rendition unreadable: it starts over with its next segment.
        }
      }
      return { source, variants, renditions };
    } catch (error) {
      this.ctx.log.warn({ stream: streamId(this.ref), err: (error as Error).message }, 'the stored playlist is unreadable; starting a new run');
      return undefined;
    }
  }

  /**
   * A kept run that continues another ingest's lists only the window it took
   * over; the run's history object, which the ingest before stored when it
   * handed over, has the segments before it. A kept run's own playlist starts
   * at media sequence 0, so one that starts later lacks them.
   */
  private async completeHistory(): Promise<void> {
    const playlist = this.packager.playlist;
    if (playlist.firstSequence === 0 || playlist.segments.length === 0) return;
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
      this.ctx.log.error(
        { stream: streamId(this.ref), fromSequence: playlist.firstSequence },
        "the run's history before the takeover is not in the object store: the VOD lists the run from the window this ingest took over",
      );
      return;
    }
    const history = MediaPlaylist.parse(text!, 0);
    const earlier = history.segments.slice(0, playlist.firstSequence);
    playlist.segments.unshift(...earlier);
    playlist.firstSequence = 0;
    playlist.discontinuitiesBefore = history.discontinuitiesBefore;
    playlist.targetDuration = Math.max(playlist.targetDuration, history.targetDuration);
    this.ctx.log.info({ stream: streamId(this.ref), segments: earlier.length }, "the run's history before the takeover is read back from the object store");
  }

  /**
   * Reads a stored file until `done` says it is what is wanted, retrying
   * failed reads too (bounded: the segments of the run wait behind it in the
   * write chain); the last text read, if any.
   */
  private async readStoredWithRetry(file: string, done: (text: string | undefined) => boolean): Promise<string | undefined> {
    let text: string | undefined;
    const notYet = new Error('not what is wanted yet');
    let warned = false;
    try {
      return await retry(
        async () => {
          text = await this.ctx.storage.readStored(this.ref, file);
          if (!done(text)) throw notYet;
          return text;
        },
        {
          attempts: STORED_READ_ATTEMPTS,
          baseMs: 250,
          maxMs: 2000,
          onFailure: (error) => {
            if (error === notYet || warned) return;
            warned = true;
            this.ctx.log.warn({ stream: streamId(this.ref), file, err: (error as Error).message }, 'cannot read from the object store; retrying');
          },
        },
      );
    } catch {
      return text;
    }
  }
}

/** Unique for all time: a session's segment names are never reused, so CDNs may cache them forever. */
export function newSessionId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
