// Uploads one stream's objects in order: every segment and init segment as the
// packager hands it over, and the playlist only after every object it names
// is stored, so no viewer ever gets a playlist line whose segment is missing.
// Failed uploads are retried with backoff until they succeed; while the store
// is down, objects wait (in memory while there is room, on the media volume
// always), and the volume's copy of a segment is deleted only once it is
// stored. Objects come from the packager in memory; only what a previous
// process left is found on the volume (at start-up) and read from there.
import { readFile, unlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { retry } from '../../common/backoff.ts';
import type { Logger } from '../../common/log.ts';
import { contentTypeFor, isPlaylistUri, joinKey, playlistCacheControl, SEGMENT_CACHE_CONTROL } from '../../common/object-layout.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../common/multivariant-playlist.ts';
import type { IngestMetrics } from '../metrics.ts';
import { parseMediaPlaylist } from '../../common/media-playlist.ts';
import type { MediaObject } from '../run-storage.ts';
import { failureReason, type ObjectStore } from '../../common/storage/object-store.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import type { Semaphore } from './semaphore.ts';
import type { BacklogEntry, UploadBacklog } from './upload-backlog.ts';

export interface UploadContext {
  mediaDir: string;
  store: ObjectStore;
  prefix: string;
  /** The key root between prefix and stream (`_private` for a private stream), asked at every upload. */
  keyRoot?: (ref: StreamRef) => string;
  /** Fixed playlist max-age; undefined means half the playlist's target duration. */
  playlistMaxAgeSeconds: number | undefined;
  metrics: IngestMetrics;
  log: Logger;
  semaphore: Semaphore;
  backlog: UploadBacklog;
}

/** A segment, init segment or run history waiting to be stored. */
interface PendingObject {
  /** Relative to the stream's folder, e.g. "<session>/3.m4s". */
  uri: string;
  kind: 'segment' | 'init' | 'history';
  /** When it was complete (handed over, or its mtime when found on the volume). */
  completedAt: number;
  /** Its bytes; absent: read them from the volume (found there, or memory was short). */
  body?: Uint8Array;
  /** Its share of the upload backlog (segments and init segments). */
  counted?: BacklogEntry;
  /** A history's URIs (absent: parse the body). */
  names?: readonly string[];
}

/** The playlist to store next. */
interface PlaylistVersion {
  /** Absent: the one on the media volume, left by a previous process. */
  body?: Uint8Array;
  names?: readonly string[];
  targetDuration?: number;
}

export class StreamUploadQueue {
  /** Objects not yet stored, oldest first. */
  private readonly pending = new Map<string, PendingObject>();
  /** Stored segments not yet named by a stored playlist, for the latency metric. */
  private readonly awaitingPlaylist = new Map<string, number>();
  /**
   * Each playlist to store next, by file ("index.m3u8"; a ladder's
   * "source.m3u8", "480p.m3u8", …): the latest version wins.
   */
  private readonly playlists = new Map<string, PlaylistVersion>();
  /** Playlists the packager has handed over: the volume's copy is never newer from then on. */
  private readonly playlistsHanded = new Set<string>();
  private readonly lastStoredPlaylists = new Map<string, Uint8Array>();
  private readonly extraTasks: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  /** "<namespace>/<name>", the stream's folder under the media volume and the prefix. */
  private readonly streamPath: string;

  constructor(
    private readonly ref: StreamRef,
    private readonly ctx: UploadContext,
  ) {
    this.streamPath = streamId(ref);
  }

  get idle(): boolean {
    return this.running === undefined;
  }

  /** The packager finished an object (on the volume already, unless it is a playlist the volume could not take). */
  objectFinished(object: MediaObject): void {
    if (object.kind === 'playlist') {
      this.playlists.set(object.uri, {
        body: object.body,
        ...(object.names ? { names: object.names } : {}),
        ...(object.targetDuration !== undefined ? { targetDuration: object.targetDuration } : {}),
      });
      this.playlistsHanded.add(object.uri);
    } else if (object.kind === 'history') {
      // A small text, not media: kept in memory, and not part of the segment backlog.
      this.pending.set(object.uri, {
        uri: object.uri,
        kind: 'history',
        completedAt: object.completedAt,
        body: object.body,
        ...(object.names ? { names: object.names } : {}),
      });
    } else {
      if (this.pending.has(object.uri)) return;
      const counted = this.ctx.backlog.add(object.body.byteLength, true);
      this.pending.set(object.uri, {
        uri: object.uri,
        kind: object.kind,
        completedAt: object.completedAt,
        counted,
        ...(counted.inMemory ? { body: object.body } : {}),
      });
    }
    this.kick();
  }

  /** A file found on the media volume (at start-up, or by the safety-net sweep). */
  foundOnVolume(uri: string, completedAt: number, bytes: number): void {
    if (isPlaylistUri(uri)) {
      if (this.playlistsHanded.has(uri)) return;
      this.playlists.set(uri, {});
    } else if (!this.pending.has(uri)) {
      const kind = uri.endsWith('.mp4') ? 'init' : uri.endsWith('.m4s') ? 'segment' : 'history';
      this.pending.set(uri, { uri, kind, completedAt, ...(kind !== 'history' ? { counted: this.ctx.backlog.add(bytes, false) } : {}) });
    }
    this.kick();
  }

  /** Whether the object is waiting to be stored. */
  has(uri: string): boolean {
    return this.pending.has(uri);
  }

  /** Runs a task (a deletion) after everything queued before it. */
  enqueue(task: () => Promise<void>): void {
    this.extraTasks.push(task);
    this.kick();
  }

  /** Resolves when nothing is left to upload. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (!this.closed && (this.pending.size > 0 || this.playlists.size > 0 || this.extraTasks.length > 0)) this.kick();
      else for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      const next = this.pending.values().next();
      if (!next.done) {
        await this.upload(next.value);
        continue;
      }
      const playlist = this.playlists.entries().next();
      if (!playlist.done) {
        const [uri, version] = playlist.value;
        this.playlists.delete(uri);
        await this.publishPlaylist(uri, version);
        continue;
      }
      const task = this.extraTasks.shift();
      if (task) {
        await task();
        continue;
      }
      return;
    }
  }

  private async upload(object: PendingObject): Promise<void> {
    const path = this.pathOf(object.uri);
    let body = object.body;
    if (!body) {
      try {
        body = await readFile(path);
      } catch (error) {
        // Gone from the volume means it was stored and removed before (by an earlier process).
        this.forget(object);
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.ctx.log.error({ stream: this.streamPath, file: object.uri, err: error }, 'cannot read a segment from the media volume; it is lost');
        }
        return;
      }
    }
    if (object.kind === 'history') {
      // A run's history (a takeover): stored after every segment it names, like a playlist, and
      // overwritten by a later handover, so it is not cached as immutable.
      this.pending.delete(object.uri);
      await this.storeNamed(object.names ?? parseMediaPlaylist(Buffer.from(body).toString('utf8')).uris);
      await this.putWithRetry('playlist', this.keyOf(object.uri), body, playlistCacheControl(0));
      await this.removeFromVolume(path);
      return;
    }
    await this.putWithRetry(object.kind, this.keyOf(object.uri), body, SEGMENT_CACHE_CONTROL);
    this.forget(object);
    // The latency metric is the source's: a ladder's other renditions sit one folder deeper.
    if (object.kind === 'segment' && object.uri.split('/').length === 2) this.awaitingPlaylist.set(object.uri, object.completedAt);
    // Stored: the media volume's copy is no longer needed.
    await this.removeFromVolume(path);
  }

  /** The object no longer waits. */
  private forget(object: PendingObject): void {
    if (this.pending.get(object.uri) !== object) return;
    this.pending.delete(object.uri);
    if (object.counted) this.ctx.backlog.remove(object.counted);
  }

  /**
   * Stores, in the order given, every named object still waiting: segments,
   * and (for a ladder's multivariant playlist) the media playlists it names,
   * each after what it names in turn.
   */
  private async storeNamed(names: readonly string[]): Promise<void> {
    for (const uri of names) {
      const waiting = this.pending.get(uri);
      if (waiting) await this.upload(waiting);
      const playlist = this.playlists.get(uri);
      if (playlist) {
        this.playlists.delete(uri);
        await this.publishPlaylist(uri, playlist);
      }
    }
  }

  private async publishPlaylist(uri: string, version: PlaylistVersion): Promise<void> {
    let body = version.body;
    if (!body) {
      try {
        body = await readFile(this.pathOf(uri));
      } catch {
        return; // removed after the stream's media was deleted
      }
    }
    const last = this.lastStoredPlaylists.get(uri);
    if (last && Buffer.compare(body, last) === 0) return;
    let { names, targetDuration } = version;
    if (!names) {
      const text = Buffer.from(body).toString('utf8');
      if (isMultivariant(text)) {
        try {
          names = parseMultivariantPlaylist(text).map((v) => v.uri);
        } catch {
          names = [];
        }
      } else {
        const parsed = parseMediaPlaylist(text);
        names = parsed.uris;
        targetDuration = parsed.targetDuration;
      }
    }
    // Store everything the playlist names first, in the order it names them.
    await this.storeNamed(names);
    const maxAge = this.ctx.playlistMaxAgeSeconds ?? (targetDuration ?? 1) / 2;
    await this.putWithRetry('playlist', this.keyOf(uri), body, playlistCacheControl(maxAge));
    const storedAt = Date.now();
    this.lastStoredPlaylists.set(uri, body);
    for (const uri of names) {
      const completedAt = this.awaitingPlaylist.get(uri);
      if (completedAt !== undefined) {
        this.ctx.metrics.segmentLatency.observe(Math.max(0, storedAt - completedAt) / 1000);
        this.awaitingPlaylist.delete(uri);
      }
    }
    // Segments that slid out of the window before a playlist named them are not waited for.
    if (this.awaitingPlaylist.size > 1000) this.awaitingPlaylist.clear();
  }

  private async putWithRetry(kind: string, key: string, body: Uint8Array, cacheControl: string): Promise<void> {
    await retry(
      async (attempt) => {
        const started = performance.now();
        await this.ctx.semaphore.use(() => this.ctx.store.put(key, body, { contentType: contentTypeFor(key), cacheControl }));
        this.ctx.metrics.uploadDuration.observe({ kind }, (performance.now() - started) / 1000);
        if (attempt > 0) this.ctx.log.info({ stream: this.streamPath, key, attempts: attempt + 1 }, 'upload succeeded after retrying');
      },
      {
        attempts: Infinity,
        onFailure: (error, attempt) => {
          const reason = failureReason(error);
          this.ctx.metrics.uploadFailures.inc({ kind, reason });
          if (attempt === 0 || attempt % 20 === 0) {
            this.ctx.log.warn({ stream: this.streamPath, key, reason, attempt: attempt + 1, err: (error as Error).message }, 'upload failed; retrying');
          }
        },
        stop: () => this.closed,
      },
    );
  }

  /** Deletes a stored object's copy on the volume (one unlink; fs.rm would lstat it first). */
  private async removeFromVolume(path: string): Promise<void> {
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      // Left behind, it is uploaded once more at the next start: harmless, but worth knowing.
      if (error.code !== 'ENOENT')
        this.ctx.log.warn({ stream: this.streamPath, file: path, err: error }, "cannot delete a stored object's copy from the media volume");
    });
  }

  private pathOf(uri: string): string {
    return join(this.ctx.mediaDir, this.streamPath, uri);
  }

  private keyOf(uri: string): string {
    return joinKey(this.ctx.prefix, this.ctx.keyRoot?.(this.ref) ?? '', this.streamPath, posix.normalize(uri));
  }
}
