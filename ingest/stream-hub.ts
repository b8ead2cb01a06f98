// Decides who may publish and keeps each stream's packager. A publish is
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
import type { MediaObject } from './packager/media-object.ts';
import { StreamPackager, type StreamEnd } from './packager/stream-packager.ts';
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

export type Admission =
  | { ok: true; publish: LivePublish }
  | { ok: false; code: string; reason: string; description: string };

/** What the RTMP layer feeds a publisher's media into. */
export type PublishMedia = Pick<PublishSession, 'id' | 'video' | 'audio'>;

export interface LivePublish {
  ref: StreamRef;
  /** The packager's session, seen through the hub, which notes when media last arrived. */
  session: PublishMedia;
  /** Ends the publish; `clean` when the publisher unpublished rather than dropped. */
  end(clean: boolean): Promise<void>;
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
  onStreamEnded: (end: StreamEnd) => void;
  /** Resolves once everything the stream wrote is stored (bounded by the implementation). */
  uploadsSettled?: (ref: StreamRef) => Promise<unknown>;
  /** Each object a stream's packager finishes, in memory (see StreamPackagerOptions.onObject). */
  onObject?: (ref: StreamRef, object: MediaObject) => void;
  /** Reads a stream's file from the object store (undefined: none), to continue a run taken over from another ingest. */
  readStored?: (ref: StreamRef, file: string) => Promise<string | undefined>;
  // --- media volume (helper "disk"): a full volume refuses publishes; packagers skip segments above its bound.
  mediaVolume?: MediaVolumeGuard & { admitsPublishes(): boolean };
}

export class StreamHub implements LiveEvents {
  private readonly packagers = new Map<string, StreamPackager>();
  private readonly liveListeners: Array<(ref: StreamRef, live: boolean, since: Date | undefined) => void> = [];
  /** When each stream's current run went live; a run lasts until its playlist ends. */
  private readonly runsSince = new Map<string, Date>();
  private readonly live = new Map<string, LiveEntry>();
  /** Streams whose fleet-wide claim this ingest holds (Kubernetes), from admission to the end of the run. */
  private readonly claimed = new Map<string, StreamRef>();
  private readonly sweepTimer: NodeJS.Timeout;
  private accepting = true;
  /** Runs being handed over to another ingest: a shutdown waits for them (a kept run's history must reach the volume). */
  private readonly handOvers = new Set<Promise<void>>();

  constructor(private readonly options: StreamHubOptions) {
    options.keys.onChange(() => this.recheckLive());
    // Another ingest may now have the stream: two publishers must never both package it.
    options.claims?.onLost?.((ref, lost) => {
      const id = streamId(ref);
      this.claimed.delete(id);
      const entry = this.live.get(id);
      const packager = this.packagers.get(id);
      // Another ingest holds the claim and continues the run from the stored
      // playlist: hand it over (no final playlist, which would end the stream
      // for viewers, and no deletion of media the new holder still lists).
      // Without a new holder (the claim was deleted) the run ends here.
      const handOver = lost.newHolder !== undefined;
      if (entry) {
        this.options.log.warn({ stream: id }, 'ending a live publish: this ingest lost its claim on the stream');
        // The packager first: it lets go of the publish session at once, so the publish's end does not end the run.
        if (handOver && packager) this.track(packager.handOver());
        void entry.publish?.end(true);
        entry.disconnect();
        return;
      }
      // Waiting in its grace period: the stream is another ingest's now. End
      // the run at once, not when the grace runs out and its final playlist
      // would overwrite the new holder's live one.
      if (packager && !packager.isLive && this.runsSince.has(id)) {
        this.options.log.info({ stream: id }, handOver ? 'another ingest took the stream over during its reconnect grace; handing the run over' : 'lost the stream\'s claim during its reconnect grace; ending the run here');
        if (handOver) this.track(packager.handOver());
        else void packager.finish();
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

  private emitLive(ref: StreamRef, live: boolean): void {
    const since = this.runsSince.get(streamId(ref));
    for (const l of this.liveListeners) l(ref, live, since);
  }

  /** Picks up streams a previous process left unfinished on the media volume. */
  async recover(): Promise<void> {
    const { mediaDir, keys } = this.options;
    const namespaces = await readdir(mediaDir).catch(() => [] as string[]);
    for (const namespace of namespaces.filter(isValidNamespace)) {
      const names = await readdir(join(mediaDir, namespace)).catch(() => [] as string[]);
      for (const name of names.filter(isValidName)) {
        const ref = { namespace, name };
        const grant = keys.streams().find((g) => g.ref.namespace === namespace && g.ref.name === name);
        const packager = this.packagerFor(ref, grant);
        if (!(await packager.resumeFromDisk())) {
          this.packagers.delete(streamId(ref));
          continue;
        }
        // Still a live run to viewers until its grace period ends it.
        this.runsSince.set(streamId(ref), packager.oldestListedSegmentAt ?? new Date());
        this.emitLive(ref, true);
      }
    }
  }

  /** Stops admitting publishes (shutdown). */
  stopAccepting(): void {
    this.accepting = false;
  }

  async admit(app: string, key: string, disconnect: () => void): Promise<Admission> {
    const refuse = (code: string, reason: string, description: string): Admission => {
      this.options.metrics.publishes.inc({ outcome: reason });
      return { ok: false, code, reason, description };
    };
    if (!this.accepting) return refuse('NetStream.Publish.Denied', 'shutting_down', 'This ingest is shutting down; reconnect.');
    if (app !== this.options.app) return refuse('NetStream.Publish.BadName', 'unknown_app', `Unknown application; publish to /${this.options.app}/<stream key>.`);
    if (!isWellFormedKey(key)) return refuse('NetStream.Publish.BadName', 'malformed_key', 'Malformed stream key.');
    const grant = this.options.keys.lookup(key);
    if (!grant) return refuse('NetStream.Publish.BadName', 'unknown_key', 'Unknown stream key.');
    if (!grant.settings.enabled) return refuse('NetStream.Publish.Denied', 'disabled', 'This stream is disabled.');
    const id = streamId(grant.ref);
    // Media volume above its high-water mark: new streams go to another pod; a run that is live or in its reconnect grace may continue.
    if (this.options.mediaVolume?.admitsPublishes() === false && !this.runsSince.has(id)) return refuse('NetStream.Publish.Denied', 'volume_full', 'This ingest\'s media volume is full; reconnect to reach another ingest.');
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
    if (current && silentFor !== undefined) {
      this.options.metrics.takeovers.inc({ from: 'same_ingest' });
      this.options.log.info(
        { stream: id, silentSeconds: Number((silentFor / 1000).toFixed(1)) },
        'a new publish with the same key takes over from the silent publisher; the playlist continues after a discontinuity',
      );
      // A drop, not an unpublish: the packager waits for a publisher and the new one continues the run.
      const ending = current.publish?.end(false);
      current.disconnect();
      await ending;
    }
    let claimedHow: boolean | 'taken_over' = true;
    if (this.options.claims && this.claimed.has(id)) {
      // Still ours from the run this publish continues: tell the fleet the stream is no longer silent.
      this.options.claims.reportSilence?.(grant.ref, undefined);
    } else if (this.options.claims) {
      let claimed: boolean | 'taken_over';
      try {
        claimed = await this.options.claims.acquire(grant.ref, { waitForSilenceMs: this.options.takeoverSilenceMs + REMOTE_SILENCE_MARGIN_MS });
      } catch (error) {
        // Without the claim another ingest could take the same stream: refuse, and say it is on our side.
        if (this.live.get(id) === entry) this.live.delete(id);
        this.options.log.error({ stream: id, err: (error as Error).message }, 'cannot claim the stream (Kubernetes API unreachable?)');
        return refuse('NetStream.Publish.Denied', 'claim_unavailable', 'The ingest cannot claim this stream right now; retry shortly.');
      }
      if (!claimed) {
        if (this.live.get(id) === entry) this.live.delete(id);
        return refuse('NetStream.Publish.BadName', 'live_elsewhere', 'This stream is live on another ingest.');
      }
      this.claimed.set(id, grant.ref);
      claimedHow = claimed;
      if (claimed === 'taken_over') this.options.metrics.takeovers.inc({ from: 'other_ingest' });
    }
    const packager = this.packagerFor(grant.ref, grant);
    // Taken over from another ingest: a new run here continues the one it stored.
    const session = packager.beginSession(grant.settings, { continueStoredRun: claimedHow === 'taken_over' });
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
        // The claim is released when the run ends (packagerFor's onEnded), not
        // here: through the reconnect grace the playlist is still this ingest's.
        await packager.endSession(session, clean);
      },
    };
    this.options.metrics.publishes.inc({ outcome: 'accepted' });
    this.options.metrics.liveStreams.set(this.live.size);
    // A reconnect within the grace period continues the run that was live.
    if (!this.runsSince.has(id)) {
      this.runsSince.set(id, new Date());
      this.emitLive(grant.ref, true);
    }
    return { ok: true, publish: entry.publish };
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
    await Promise.all([...this.handOvers]);
    await Promise.all([...this.packagers.values()].map((p) => p.finish()));
    // This pod is going away: its streams may go live elsewhere at once.
    await Promise.all([...this.claimed.keys()].map((id) => this.releaseClaim(id)));
  }

  /**
   * Shutdown with claims: the streams whose publishers were just closed wait
   * in their reconnect grace (bounded by `waitMs`) until another ingest takes
   * them over (handed over) or their grace ends (ended here). The silence
   * mark is written at once, not at the next sweep, so the other pod's
   * takeover need not wait for it.
   */
  private async waitForTakeovers(waitMs: number): Promise<void> {
    const waiting = () => [...this.packagers.entries()].filter(([id, p]) => !p.isLive && this.runsSince.has(id) && this.claimed.has(id));
    const ids = waiting().map(([id]) => id);
    if (ids.length === 0) return;
    for (const id of ids) this.options.claims?.reportSilence?.(this.claimed.get(id)!, new Date());
    this.options.log.info({ streams: ids.length, waitSeconds: Number((waitMs / 1000).toFixed(1)) }, 'shutting down: live streams wait for their publishers to reconnect to another ingest pod, which takes them over');
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
    for (const [id, ref] of this.claimed) {
      const entry = this.live.get(id);
      if (entry && !entry.publish) continue; // being admitted
      // No publisher at all (the reconnect grace) is silence too.
      const silentFor = entry ? now - entry.lastMediaAt : Infinity;
      const since = silentFor >= this.options.takeoverSilenceMs ? new Date(Date.now() - (entry ? silentFor : 0)) : undefined;
      claims.reportSilence(ref, since);
    }
  }

  private track(handOver: Promise<void>): void {
    const settled = handOver.catch(() => undefined).finally(() => this.handOvers.delete(settled));
    this.handOvers.add(settled);
  }

  private async releaseClaim(id: string): Promise<void> {
    const ref = this.claimed.get(id);
    if (!ref) return;
    this.claimed.delete(id);
    await this.options.claims?.release(ref).catch(() => undefined);
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

  private packagerFor(ref: StreamRef, grant: StreamGrant | undefined): StreamPackager {
    const id = streamId(ref);
    const existing = this.packagers.get(id);
    if (existing) return existing;
    const packager: StreamPackager = new StreamPackager({
      ref,
      settings: grant?.settings ?? DEFAULT_SETTINGS,
      mediaDir: this.options.mediaDir,
      reconnectGraceMs: this.options.reconnectGraceMs,
      ...(this.options.onObject ? { onObject: (object: MediaObject) => this.options.onObject!(ref, object) } : {}),
      ...(this.options.mediaVolume ? { volume: this.options.mediaVolume } : {}),
      ...(this.options.readStored ? { readStored: (file: string) => this.options.readStored!(ref, file) } : {}),
      metrics: this.options.metrics,
      log: this.options.log,
      onEnded: (end) => {
        if (this.packagers.get(id) === packager && !packager.isLive) this.packagers.delete(id);
        this.runsSince.delete(id);
        this.options.onStreamEnded(end);
        // Viewers see the run end when its final playlist (ENDLIST) is stored,
        // not when it is written: only then say it is over.
        // The claim says "this stream's media is being written here": the
        // controller deletes a removed stream's media once the claim is gone,
        // so a run that ended keeps it until its last objects are stored.
        void Promise.resolve(this.options.uploadsSettled?.(ref)).then(async () => {
          if (this.runsSince.has(id)) return; // a new run began meanwhile: it goes on with the claim
          this.emitLive(ref, false);
          await this.releaseClaim(id);
        });
      },
    });
    this.packagers.set(id, packager);
    return packager;
  }
}
