// Decides who may publish, and keeps each stream's run (stream-run.ts). A publish is
// admitted only for a well-formed, known key of an enabled LiveStream that
// has no publisher yet, here or (through the claim hook) anywhere in the
// fleet. Live publishes are re-checked whenever the keys change, so a rotated
// key or a disabled stream ends the publish.
//
// A streamer whose network drops is never locked out. The hub watches each
// publisher's media: one that sends none for `publisherIdleMs` is treated as
// a dropped connection (closed; reconnect grace; then the end), because a
// connection lost without a FIN (Wi-Fi to LTE, a NAT timeout, a pulled
// cable) can stay open for minutes. And a second publish with the same key
// takes over at once from a publisher that has sent nothing for
// `takeoverSilenceMs` (the old connection is closed, the playlist continues
// after a discontinuity), here or, through the claims, on another ingest pod.
// A publisher whose media flows is never displaced.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/log.ts';
import type { LiveEvents } from '../common/stream-view.ts';
import { DEFAULT_SETTINGS, isValidName, isValidNamespace, streamId, type StreamRef } from '../common/livestream.ts';
import { isWellFormedKey, type KeySource, type StreamGrant } from '../common/keys/key-source.ts';
import type { MediaVolumeGuard } from './media-volume.ts';
import type { IngestMetrics } from './metrics.ts';
import type { PublishSession } from './packager/publish-session.ts';
import type { RunStorage } from './run-storage.ts';
import { StreamRun, type RunContext } from './stream-run.ts';
import type { PublishLimitSettings } from './packager/publish-limits.ts';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Fleet-wide "one publisher per stream"; the Kubernetes implementation holds
 * a Lease per stream. A claim is held from the publish's admission until the
 * run ends (through its reconnect grace period), so that only one ingest ever
 * writes the stream's playlist.
 */
export interface StreamClaims {
  /**
   * Claims the stream for this ingest. When another ingest holds it, waits up
   * to `waitForSilenceMs` for that holder to report its stream silent, and
   * then takes the claim over ('taken_over'). False: held elsewhere.
   */
  acquire(ref: StreamRef, options?: { waitForSilenceMs?: number }): Promise<boolean | 'taken_over'>;
  release(ref: StreamRef): Promise<void>;
  /**
   * Called when a held claim is lost (not renewed in time, taken over): the
   * publish must end. `newHolder`: another ingest holds it now and writes
   * the stream's playlist.
   */
  onLost?(listener: (ref: StreamRef, lost: { newHolder?: string }) => void): void;
  /**
   * The holder's report, repeated freely: since when the stream has had no
   * media for the takeover threshold (no publisher at all counts), or
   * undefined while its media flows. Another ingest may take over a silent claim.
   */
  reportSilence?(ref: StreamRef, silentSince: Date | undefined): void;
  /** Ends the claims' work at shutdown: waits and requests under way are cut short, nothing more is renewed. */
  stop?(): Promise<void>;
}

export type Admission = { ok: true; publish: LivePublish } | { ok: false; code: string; reason: string; description: string };

/** What the RTMP layer feeds a publisher's media into. */
export type PublishMedia = Pick<PublishSession, 'id' | 'video' | 'audio'>;

export interface LivePublish {
  ref: StreamRef;
  /** The run's publish session, seen through the hub, which notes when media last arrived. */
  session: PublishMedia;
  /** Ends the publish; `clean` when the publisher unpublished rather than dropped. */
  end(clean: boolean): Promise<void>;
}

/** What an admission did after reserving the stream, to be undone if it does not finish. */
interface AdmissionUndo {
  claimedHere: boolean;
  runBegun?: StreamRun;
  session?: { run: StreamRun; session: PublishSession };
}

interface LiveEntry {
  key: string;
  /** Undefined while the publish is being admitted (its fleet-wide claim is under way). */
  publish?: LivePublish;
  disconnect: () => void;
  /** performance.now() of the publisher's last audio or video message (its admission before the first). */
  lastMediaAt: number;
  /** A second publish with the same key is waiting to see whether this publisher is silent. */
  contended: boolean;
}

/**
 * How much longer than the takeover threshold a publish waits for another
 * ingest's holder to report its stream silent: the holder notices within a
 * sweep and writes its claim, and the claimant reads it at its next poll.
 */
const REMOTE_SILENCE_MARGIN_MS = 1000;

export interface StreamHubOptions {
  app: string;
  mediaDir: string;
  reconnectGraceMs: number;
  /** A publisher that sends no media for this long is treated as dropped. */
  publisherIdleMs: number;
  /** A second publish with the same key takes over from a publisher silent for this long. */
  takeoverSilenceMs: number;
  keys: KeySource;
  claims?: StreamClaims;
  metrics: IngestMetrics;
  log: Logger;
  /** Where the runs' objects go, and what the object store holds for a stream. */
  storage: RunStorage;
  /** A full volume refuses publishes; runs skip segments above its bound. */
  mediaVolume?: MediaVolumeGuard & { admitsPublishes(): boolean };
  /** What one admitted publish may hold and produce (publish-limits.ts). */
  publishLimits?: PublishLimitSettings;
  /** Each run's source segments once written (the renditions' driver: ingest/renditions/run-renditions.ts). */
  onSourceSegment?: RunContext['onSourceSegment'];
  /** LL-HLS parts and playlists of the live runs. */
  lowLatency?: RunContext['lowLatency'];
}

export class StreamHub implements LiveEvents {
  /** Each stream's latest run on this ingest, kept until it ended and what it wrote is stored. */
  private readonly runs = new Map<string, StreamRun>();
  private readonly liveListeners: Array<(ref: StreamRef, live: boolean, since: Date | undefined) => void> = [];
  /** Publishers: admitted, or being admitted. */
  private readonly live = new Map<string, LiveEntry>();
  private readonly runContext: RunContext;
  private readonly sweepTimer: NodeJS.Timeout;
  private accepting = true;

  constructor(private readonly options: StreamHubOptions) {
    const { claims } = options;
    this.runContext = {
      mediaDir: options.mediaDir,
      reconnectGraceMs: options.reconnectGraceMs,
      storage: options.storage,
      ...(claims ? { releaseClaim: (ref: StreamRef) => claims.release(ref) } : {}),
      ...(options.mediaVolume ? { volume: options.mediaVolume } : {}),
      ...(options.publishLimits ? { publishLimits: options.publishLimits } : {}),
      ...(options.onSourceSegment ? { onSourceSegment: options.onSourceSegment } : {}),
      ...(options.lowLatency ? { lowLatency: options.lowLatency } : {}),
      metrics: options.metrics,
      log: options.log,
    };
    options.keys.onChange(() => this.recheckLive());
    // Another ingest may now have the stream: two publishers must never both package it.
    claims?.onLost?.((ref, lost) => {
      const id = streamId(ref);
      const run = this.runs.get(id);
      const entry = this.live.get(id);
      if (entry) this.options.log.warn({ stream: id }, 'ending a live publish: this ingest lost its claim on the stream');
      else if (run?.inGrace) {
        this.options.log.info(
          { stream: id },
          lost.newHolder !== undefined
            ? 'another ingest took the stream over during its reconnect grace; handing the run over'
            : "lost the stream's claim during its reconnect grace; ending the run here",
        );
      }
      // The run first: handed over, it lets go of the publish session at once, so the publish's end does not end it.
      run?.claimLost(lost.newHolder);
      if (entry) {
        void entry.publish?.end(true);
        entry.disconnect();
      }
    });
    // Silence is noticed within a quarter of the takeover threshold.
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(250, options.takeoverSilenceMs / 4));
    this.sweepTimer.unref();
  }

  get liveCount(): number {
    return this.live.size;
  }

  onLiveChange(listener: (ref: StreamRef, live: boolean, since: Date | undefined) => void): void {
    this.liveListeners.push(listener);
  }

  private emitLive(run: StreamRun, live: boolean): void {
    for (const l of this.liveListeners) l(run.ref, live, run.since);
  }

  /** The stream's run while it is live or in its reconnect grace. */
  private runningRun(id: string): StreamRun | undefined {
    const run = this.runs.get(id);
    return run && !run.isOver ? run : undefined;
  }

  /** Picks up streams a previous process left unfinished on the media volume. */
  async recover(): Promise<void> {
    const { mediaDir, keys } = this.options;
    const namespaces = await readdir(mediaDir).catch(() => [] as string[]);
    for (const namespace of namespaces.filter(isValidNamespace)) {
      const names = await readdir(join(mediaDir, namespace)).catch(() => [] as string[]);
      for (const name of names.filter(isValidName)) {
        const ref = { namespace, name };
        const grant = keys.grantOf(ref);
        const run = await StreamRun.resume(this.runContext, { ref, settings: grant?.settings ?? DEFAULT_SETTINGS });
        if (run) this.track(run);
      }
    }
  }

  /** Keeps a new run of a stream and tells listeners it is live; forgets it once it ended and is stored. */
  private track(run: StreamRun): void {
    const id = streamId(run.ref);
    this.runs.set(id, run);
    // Viewers see the run end when its final playlist (ENDLIST) is stored,
    // not when it is written: only then say it is over.
    void run.settled.then(() => {
      if (this.runs.get(id) !== run) return; // a new run began meanwhile: it goes on
      this.runs.delete(id);
      this.emitLive(run, false);
    });
    this.emitLive(run, true);
  }

  /** Stops admitting publishes (shutdown). */
  stopAccepting(): void {
    this.accepting = false;
  }

  async admit(app: string, key: string, disconnect: () => void): Promise<Admission> {
    // The publish's media time is paced against the wall clock from here (publish-limits.ts).
    const askedAt = performance.now();
    const refuse = (code: string, reason: string, description: string): Admission => {
      this.options.metrics.publishes.inc({ outcome: reason });
      return { ok: false, code, reason, description };
    };
    if (!this.accepting) return refuse('NetStream.Publish.Denied', 'shutting_down', 'This ingest is shutting down; reconnect.');
    if (app !== this.options.app)
      return refuse('NetStream.Publish.BadName', 'unknown_app', `Unknown application; publish to /${this.options.app}/<stream key>.`);
    if (!isWellFormedKey(key)) return refuse('NetStream.Publish.BadName', 'malformed_key', 'Malformed stream key.');
    const grant = this.options.keys.lookup(key);
    if (!grant) return refuse('NetStream.Publish.BadName', 'unknown_key', 'Unknown stream key.');
    if (!grant.settings.enabled) return refuse('NetStream.Publish.Denied', 'disabled', 'This stream is disabled.');
    const id = streamId(grant.ref);
    // Media volume above its high-water mark: new streams go to another pod; a run that is live or in its reconnect grace may continue.
    if (this.options.mediaVolume?.admitsPublishes() === false && !this.runningRun(id))
      return refuse('NetStream.Publish.Denied', 'volume_full', "This ingest's media volume is full; reconnect to reach another ingest.");
    const alreadyLive = () => refuse('NetStream.Publish.BadName', 'already_live', 'This stream already has a publisher.');
    const current = this.live.get(id);
    let silentFor: number | undefined;
    if (current) {
      // The same key again while a publisher is live: the newcomer takes over
      // only if that publisher has gone silent.
      if (!current.publish || current.contended) return alreadyLive();
      current.contended = true;
      const silent = await this.waitForSilence(id, current);
      current.contended = false;
      if (this.live.has(id) && this.live.get(id) !== current) return alreadyLive();
      if (this.live.get(id) === current) {
        if (!silent) return alreadyLive();
        silentFor = performance.now() - current.lastMediaAt;
      }
      // (Or the publisher ended while we watched: the stream is free.)
      if (!this.accepting) return refuse('NetStream.Publish.Denied', 'shutting_down', 'This ingest is shutting down; reconnect.');
    }
    // Reserve the stream before any other await, so two concurrent publishes cannot both pass.
    const entry: LiveEntry = { key, disconnect, lastMediaAt: performance.now(), contended: false };
    this.live.set(id, entry);
    // Whatever fails from here on (a listener, the run, the claims) must not
    // leave the key reserved until a restart: the reservation, a claim taken
    // here and a run or session begun here are let go again.
    const undo: AdmissionUndo = { claimedHere: false };
    let admitted = false;
    try {
      if (current && silentFor !== undefined) {
        this.options.metrics.takeovers.inc({ from: 'same_ingest' });
        this.options.log.info(
          { stream: id, silentSeconds: Number((silentFor / 1000).toFixed(1)) },
          'a new publish with the same key takes over from the silent publisher; the playlist continues after a discontinuity',
        );
        // A drop, not an unpublish: the run waits for a publisher and the new one continues it.
        const ending = current.publish?.end(false);
        current.disconnect();
        await ending;
      }
      let claimedHow: boolean | 'taken_over' = true;
      if (this.options.claims && this.runs.get(id)?.holdsClaim) {
        // Still ours from the run this publish continues (or the one before it): tell the fleet the stream is no longer silent.
        this.options.claims.reportSilence?.(grant.ref, undefined);
      } else if (this.options.claims) {
        let claimed: boolean | 'taken_over';
        try {
          claimed = await this.options.claims.acquire(grant.ref, { waitForSilenceMs: this.options.takeoverSilenceMs + REMOTE_SILENCE_MARGIN_MS });
        } catch (error) {
          // Without the claim another ingest could take the same stream: refuse, and say it is on our side.
          this.options.log.error({ stream: id, err: (error as Error).message }, 'cannot claim the stream (Kubernetes API unreachable?)');
          return refuse('NetStream.Publish.Denied', 'claim_unavailable', 'The ingest cannot claim this stream right now; retry shortly.');
        }
        if (!claimed) return refuse('NetStream.Publish.BadName', 'live_elsewhere', 'This stream is live on another ingest.');
        undo.claimedHere = true;
        claimedHow = claimed;
        if (claimed === 'taken_over') this.options.metrics.takeovers.inc({ from: 'other_ingest' });
      }
      // A reconnect within the grace period continues the run that was live; otherwise a new run.
      let run = this.runningRun(id);
      if (!run) {
        const previous = this.runs.get(id);
        // The run before, still finishing, passes its claim on rather than letting go of it.
        previous?.passClaim();
        // Taken over from another ingest: the new run continues the one it stored.
        run = StreamRun.begin(
          this.runContext,
          { ref: grant.ref, settings: grant.settings, ...(previous ? { previous } : {}) },
          { continueStored: claimedHow === 'taken_over' },
        );
        undo.runBegun = run;
        // Acquired or passed on: the run holds the claim until it ended and is stored.
        if (this.options.claims) run.holdClaim();
        this.track(run);
      } else if (this.options.claims) run.holdClaim();
      const liveRun = run;
      // The publish's media time is paced against the wall clock from when it was asked for (publish-limits.ts).
      const session = liveRun.beginSession(askedAt);
      undo.session = { run: liveRun, session };
      let ended = false;
      const media: PublishMedia = {
        id: session.id,
        video: (timestampMs, body, arrivedAt) => {
          entry.lastMediaAt = performance.now();
          session.video(timestampMs, body, arrivedAt);
        },
        audio: (timestampMs, body) => {
          entry.lastMediaAt = performance.now();
          session.audio(timestampMs, body);
        },
      };
      entry.publish = {
        ref: grant.ref,
        session: media,
        end: async (clean: boolean) => {
          if (ended) return;
          ended = true;
          // A publish that took over is in the map now: leave it there.
          if (this.live.get(id) === entry) this.live.delete(id);
          this.options.metrics.liveStreams.set(this.live.size);
          // The claim is released when the run ends and is stored, not here:
          // through the reconnect grace the playlist is still this ingest's.
          await liveRun.endSession(session, clean);
        },
      };
      this.options.metrics.publishes.inc({ outcome: 'accepted' });
      this.options.metrics.liveStreams.set(this.live.size);
      admitted = true;
      return { ok: true, publish: entry.publish };
    } finally {
      if (!admitted) this.abandonAdmission(id, grant.ref, entry, undo);
    }
  }

  /** An admission that failed or was refused after the stream was reserved: undo what it did, so the key can publish again. */
  private abandonAdmission(id: string, ref: StreamRef, entry: LiveEntry, undo: AdmissionUndo): void {
    if (this.live.get(id) !== entry) return; // taken over since
    this.live.delete(id);
    if (undo.session) {
      this.options.log.error({ stream: id }, 'admitting a publish failed after the stream was reserved; the reservation is released');
      // Ends the run like an unpublish; its end releases the claim.
      void undo.session.run.endSession(undo.session.session, true).catch(() => undefined);
    } else if (undo.runBegun) {
      this.options.log.error({ stream: id }, 'admitting a publish failed after the stream was reserved; the reservation is released');
      void undo.runBegun.finish().catch(() => undefined);
    } else if (undo.claimedHere) {
      void this.options.claims?.release(ref).catch(() => undefined);
    }
  }

  /**
   * Ends every publish and every stream waiting for its publisher (shutdown).
   * With claims and `waitForTakeoverMs`, each live stream first waits as a
   * dropped one does, up to that long, with its claim marked silent: its
   * publisher, told to reconnect, reaches another ingest pod, which takes the
   * stream over at once, and the run is handed over there (no EXT-X-ENDLIST,
   * the playlist goes on). Streams nobody took over end here after the wait.
   */
  async finishAll(options: { waitForTakeoverMs?: number } = {}): Promise<void> {
    const waitMs = this.options.claims ? (options.waitForTakeoverMs ?? 0) : 0;
    if (waitMs <= 0) clearInterval(this.sweepTimer);
    for (const entry of [...this.live.values()]) entry.disconnect();
    await Promise.all([...this.live.values()].map((e) => e.publish?.end(false)));
    if (waitMs > 0) {
      await this.waitForTakeovers(waitMs);
      clearInterval(this.sweepTimer);
    }
    // Handed-over runs finish their hand-over (a kept run's history must reach the volume); the rest end here.
    await Promise.all([...this.runs.values()].map((run) => run.finish()));
    // This pod is going away: its streams may go live elsewhere at once.
    await Promise.all([...this.runs.values()].filter((run) => run.passClaim()).map((run) => this.options.claims?.release(run.ref).catch(() => undefined)));
  }

  /**
   * Shutdown with claims: the streams whose publishers were just closed wait
   * in their reconnect grace (bounded by `waitMs`) until another ingest takes
   * them over (handed over) or their grace ends (ended here). The silence
   * mark is written at once, not at the next sweep, so the other pod's
   * takeover need not wait for it.
   */
  private async waitForTakeovers(waitMs: number): Promise<void> {
    const waiting = () => [...this.runs.values()].filter((run) => run.inGrace && run.holdsClaim);
    const runs = waiting();
    if (runs.length === 0) return;
    for (const run of runs) this.options.claims?.reportSilence?.(run.ref, new Date());
    this.options.log.info(
      { streams: runs.length, waitSeconds: Number((waitMs / 1000).toFixed(1)) },
      'shutting down: live streams wait for their publishers to reconnect to another ingest pod, which takes them over',
    );
    const deadline = performance.now() + waitMs;
    // Bounded by the deadline (and the iteration count, 50 ms apart).
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      if (waiting().length === 0) break;
      await sleep(Math.min(50, Math.max(1, deadline - performance.now())));
    }
    const left = waiting().length;
    if (left > 0) this.options.log.info({ streams: left }, 'shutting down: streams nobody took over end here');
  }

  /**
   * Resolves true once `entry`'s publisher has sent no media for the takeover
   * threshold (or its publish ended), false as soon as it sends media.
   */
  private async waitForSilence(id: string, entry: LiveEntry): Promise<boolean> {
    const arrived = performance.now();
    // Bounded: silence is reached by lastMediaAt + threshold at the latest.
    for (let i = 0; i < 10_000; i++) {
      if (this.live.get(id) !== entry) return true;
      if (entry.lastMediaAt > arrived) return false;
      const silentFor = performance.now() - entry.lastMediaAt;
      if (silentFor >= this.options.takeoverSilenceMs) return true;
      await sleep(Math.min(50, this.options.takeoverSilenceMs - silentFor + 1));
    }
    return false;
  }

  /** Drops idle publishers, and tells the fleet which claimed streams are silent. */
  private sweep(): void {
    const now = performance.now();
    for (const entry of [...this.live.values()]) {
      const publish = entry.publish;
      if (!publish) continue;
      const silentFor = now - entry.lastMediaAt;
      if (silentFor < this.options.publisherIdleMs) continue;
      this.options.log.warn(
        { stream: streamId(publish.ref), silentSeconds: Number((silentFor / 1000).toFixed(1)) },
        'publisher sent no media for too long (TTEOK_PUBLISHER_IDLE_SECONDS): closing it as a dropped connection',
      );
      this.options.metrics.idlePublishersDropped.inc();
      // A drop, not an unpublish: the stream waits in its reconnect grace.
      void publish.end(false);
      entry.disconnect();
    }
    const claims = this.options.claims;
    if (!claims?.reportSilence) return;
    for (const [id, run] of this.runs) {
      if (!run.holdsClaim) continue;
      const ref = run.ref;
      const entry = this.live.get(id);
      if (entry && !entry.publish) continue; // being admitted
      // No publisher at all (the reconnect grace) is silence too.
      const silentFor = entry ? now - entry.lastMediaAt : Infinity;
      const since = silentFor >= this.options.takeoverSilenceMs ? new Date(Date.now() - (entry ? silentFor : 0)) : undefined;
      claims.reportSilence(ref, since);
    }
  }

  private recheckLive(): void {
    for (const [id, entry] of this.live) {
      const grant: StreamGrant | undefined = this.options.keys.lookup(entry.key);
      const why = !grant || streamId(grant.ref) !== id ? 'its stream key is no longer valid' : !grant.settings.enabled ? 'the stream was disabled' : undefined;
      if (why) {
        this.options.log.info({ stream: id }, `ending a live publish: ${why}`);
        entry.disconnect();
        void entry.publish?.end(true);
      }
    }
  }
}
