// Decides who may publish and keeps each stream's packager. A publish is
// admitted only for a well-formed, known key of an enabled LiveStream that
// has no publisher yet, here or (through the claim hook) anywhere in the
// fleet. Live publishes are re-checked whenever the keys change, so a rotated
// key or a disabled stream ends the publish.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/log.ts';
import type { LiveEvents } from '../common/stream-view.ts';
import { DEFAULT_SETTINGS, isValidName, isValidNamespace, streamId, type StreamRef } from '../common/livestream.ts';
import { isWellFormedKey, type KeySource, type StreamGrant } from './keys/key-source.ts';
import type { MediaVolumeGuard } from './media-volume.ts';
import type { IngestMetrics } from './metrics.ts';
import type { PublishSession } from './packager/publish-session.ts';
import { StreamPackager, type StreamEnd } from './packager/stream-packager.ts';

/** Fleet-wide "one publisher per stream"; the Kubernetes implementation holds a Lease per stream. */
export interface StreamClaims {
  acquire(ref: StreamRef): Promise<boolean>;
  release(ref: StreamRef): Promise<void>;
  /** Called when a held claim is lost (not renewed in time, taken over): the publish must end. */
  onLost?(listener: (ref: StreamRef) => void): void;
}

export type Admission =
  | { ok: true; publish: LivePublish }
  | { ok: false; code: string; reason: string; description: string };

export interface LivePublish {
  ref: StreamRef;
  session: PublishSession;
  /** Ends the publish; `clean` when the publisher unpublished rather than dropped. */
  end(clean: boolean): Promise<void>;
}

interface LiveEntry {
  key: string;
  /** Undefined while the publish is being admitted (its fleet-wide claim is under way). */
  publish?: LivePublish;
  disconnect: () => void;
}

export interface StreamHubOptions {
  app: string;
  mediaDir: string;
  reconnectGraceMs: number;
  keys: KeySource;
  claims?: StreamClaims;
  metrics: IngestMetrics;
  log: Logger;
  onStreamEnded: (end: StreamEnd) => void;
  /** Resolves once everything the stream wrote is stored (bounded by the implementation). */
  uploadsSettled?: (ref: StreamRef) => Promise<unknown>;
  /** Passed to each stream's packager: a file is complete on the media volume. */
  onFileWritten?: (path: string) => void;
  // --- media volume (helper "disk"): a full volume refuses publishes; packagers skip segments above its bound.
  mediaVolume?: MediaVolumeGuard & { admitsPublishes(): boolean };
}

export class StreamHub implements LiveEvents {
  private readonly packagers = new Map<string, StreamPackager>();
  private readonly liveListeners: Array<(ref: StreamRef, live: boolean, since: Date | undefined) => void> = [];
  /** When each stream's current run went live; a run lasts until its playlist ends. */
  private readonly runsSince = new Map<string, Date>();
  private readonly live = new Map<string, LiveEntry>();
  private accepting = true;

  constructor(private readonly options: StreamHubOptions) {
    options.keys.onChange(() => this.recheckLive());
    // Another ingest may now have the stream: two publishers must never both package it.
    options.claims?.onLost?.((ref) => {
      const entry = this.live.get(streamId(ref));
      if (!entry) return;
      this.options.log.warn({ stream: streamId(ref) }, 'ending a live publish: this ingest lost its claim on the stream');
      entry.disconnect();
      void entry.publish?.end(true);
    });
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
    if (this.live.has(id)) return refuse('NetStream.Publish.BadName', 'already_live', 'This stream already has a publisher.');
    // Media volume above its high-water mark (helper "disk"): new streams go to another pod; a run in its reconnect grace may continue.
    if (this.options.mediaVolume?.admitsPublishes() === false && !this.runsSince.has(id)) return refuse('NetStream.Publish.Denied', 'volume_full', 'This ingest\'s media volume is full; reconnect to reach another ingest.');
    // Reserve the stream before any await, so two concurrent publishes cannot both pass.
    const entry: LiveEntry = { key, disconnect };
    this.live.set(id, entry);
    if (this.options.claims) {
      let claimed: boolean;
      try {
        claimed = await this.options.claims.acquire(grant.ref);
      } catch (error) {
        // Without the claim another ingest could take the same stream: refuse, and say it is on our side.
        this.live.delete(id);
        this.options.log.error({ stream: id, err: (error as Error).message }, 'cannot claim the stream (Kubernetes API unreachable?)');
        return refuse('NetStream.Publish.Denied', 'claim_unavailable', 'The ingest cannot claim this stream right now; retry shortly.');
      }
      if (!claimed) {
        this.live.delete(id);
        return refuse('NetStream.Publish.BadName', 'live_elsewhere', 'This stream is live on another ingest.');
      }
    }
    const packager = this.packagerFor(grant.ref, grant);
    const session = packager.beginSession(grant.settings);
    let ended = false;
    entry.publish = {
      ref: grant.ref,
      session,
      end: async (clean: boolean) => {
        if (ended) return;
        ended = true;
        this.live.delete(id);
        this.options.metrics.liveStreams.set(this.live.size);
        await packager.endSession(session, clean);
        // The claim says "this stream's media is being written here": the
        // controller deletes a removed stream's media once the claim is gone,
        // so a run that ended keeps it until its last objects are stored.
        if (clean) await this.options.uploadsSettled?.(grant.ref);
        await this.options.claims?.release(grant.ref).catch(() => undefined);
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

  /** Ends every publish and every stream waiting for its publisher (shutdown). */
  async finishAll(): Promise<void> {
    for (const entry of [...this.live.values()]) entry.disconnect();
    await Promise.all([...this.live.values()].map((e) => e.publish?.end(false)));
    await Promise.all([...this.packagers.values()].map((p) => p.finish()));
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
      ...(this.options.onFileWritten ? { onFileWritten: this.options.onFileWritten } : {}),
      ...(this.options.mediaVolume ? { volume: this.options.mediaVolume } : {}),
      metrics: this.options.metrics,
      log: this.options.log,
      onEnded: (end) => {
        if (this.packagers.get(id) === packager && !packager.isLive) this.packagers.delete(id);
        this.runsSince.delete(id);
        this.options.onStreamEnded(end);
        // Viewers see the run end when its final playlist (ENDLIST) is stored,
        // not when it is written: only then say it is over.
        void Promise.resolve(this.options.uploadsSettled?.(ref)).then(() => {
          if (!this.runsSince.has(id)) this.emitLive(ref, false);
        });
      },
    });
    this.packagers.set(id, packager);
    return packager;
  }
}
