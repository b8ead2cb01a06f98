// Uploads one stream's files in order: every segment and init segment as it
// appears on the media volume, and the playlist only after every file it
// names is stored, so no viewer ever gets a playlist line whose segment is
// missing. Failed uploads are retried with backoff until they succeed; while
// the store is down, files wait on the media volume, and the local copy of a
// segment is deleted only once it is stored.
import { readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, posix } from 'node:path';
import { backoffDelay } from '../../common/backoff.ts';
import type { Logger } from '../../common/log.ts';
import { contentTypeFor, joinKey, playlistCacheControl, PLAYLIST_FILE, SEGMENT_CACHE_CONTROL } from '../../common/object-layout.ts';
import type { IngestMetrics } from '../metrics.ts';
import { parseMediaPlaylist, RUN_HISTORY_FILE } from '../../common/media-playlist.ts';
import { failureReason, type ObjectStore } from '../storage/object-store.ts';
import type { Semaphore } from './semaphore.ts';

export interface UploadContext {
  mediaDir: string;
  store: ObjectStore;
  prefix: string;
  /** The key root between prefix and stream (`_private` for a private stream), asked at every upload. */
  keyRoot?: (streamPath: string) => string;
  /** Fixed playlist max-age; undefined means half the playlist's target duration. */
  playlistMaxAgeSeconds: number | undefined;
  metrics: IngestMetrics;
  log: Logger;
  semaphore: Semaphore;
  backlog: BacklogTracker;
}

export interface BacklogTracker {
  add(path: string, bytes: number): void;
  remove(path: string): void;
}

interface PendingFile {
  /** Path relative to the stream's folder, e.g. "<session>/3.m4s". */
  uri: string;
  /** When the file was complete on disk (its mtime). */
  completedAt: number;
}

export class StreamUploadQueue {
  /** Files seen on disk and not yet stored, oldest first. */
  private readonly pending = new Map<string, PendingFile>();
  /** Stored segments not yet named by a stored playlist, for the latency metric. */
  private readonly awaitingPlaylist = new Map<string, number>();
  private playlistDirty = false;
  /** A final playlist the media volume could not take, handed over in memory; stored before any on disk. */
  private memoryPlaylist: string | undefined;
  /** The live playlist the volume still held when a final one came from memory: never stored over it. */
  private supersededPlaylist: string | undefined;
  private lastStoredPlaylist = '';
  private trailingCheck: NodeJS.Timeout | undefined;
  private readonly extraTasks: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    /** "<namespace>/<name>", the stream's folder under the media volume and the prefix. */
    private readonly streamPath: string,
    private readonly ctx: UploadContext,
  ) {}

  get idle(): boolean {
    return this.running === undefined;
  }

  fileAppeared(uri: string, completedAt: number): void {
    if (uri === PLAYLIST_FILE) {
      this.playlistDirty = true;
      // chokidar drops a file's change events that follow another within
      // 50 ms (it throttles them), so the playlist's last version could go
      // unnoticed: look once more after that window.
      clearTimeout(this.trailingCheck);
      this.trailingCheck = setTimeout(() => {
        this.playlistDirty = true;
        this.kick();
      }, 75);
      this.trailingCheck.unref();
    } else if (!this.pending.has(uri)) {
      this.pending.set(uri, { uri, completedAt });
    }
    this.kick();
  }

  /**
   * Stores this playlist (a final one the media volume could not take) as if
   * it had been read from the volume: after every file it names.
   */
  playlistFromMemory(text: string): void {
    this.memoryPlaylist = text;
    this.playlistDirty = true;
    this.kick();
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
    clearTimeout(this.trailingCheck);
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.pending.size > 0 || this.playlistDirty || this.extraTasks.length > 0) this.kick();
      else for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      const next = this.pending.values().next();
      if (!next.done) {
        await this.uploadFile(next.value);
        continue;
      }
      if (this.playlistDirty) {
        this.playlistDirty = false;
        await this.publishPlaylist();
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

  private async uploadFile(file: PendingFile): Promise<void> {
    const path = join(this.ctx.mediaDir, this.streamPath, file.uri);
    let body: Buffer;
    try {
      body = await readFile(path);
    } catch (error) {
      // Gone from disk means it was stored and removed before (by an earlier process).
      this.pending.delete(file.uri);
      this.ctx.backlog.remove(path);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.ctx.log.error({ stream: this.streamPath, file: file.uri, err: error }, 'cannot read a segment from the media volume; it is lost');
      }
      return;
    }
    if (file.uri === RUN_HISTORY_FILE) {
      // A run's history (a takeover): stored after every segment it names, like a playlist, and
      // overwritten by a later handover, so it is not cached as immutable.
      this.pending.delete(file.uri);
      for (const uri of parseMediaPlaylist(body.toString('utf8')).uris) {
        const named = this.pending.get(uri) ?? (await this.onDiskNotSeenYet(uri));
        if (named) await this.uploadFile(named);
      }
      await this.putWithRetry('playlist', this.keyOf(file.uri), body, playlistCacheControl(0));
      await rm(path, { force: true });
      return;
    }
    const kind = file.uri.endsWith('.mp4') ? 'init' : 'segment';
    await this.putWithRetry(kind, this.keyOf(file.uri), body, SEGMENT_CACHE_CONTROL);
    this.pending.delete(file.uri);
    if (kind === 'segment') this.awaitingPlaylist.set(file.uri, file.completedAt);
    // Stored: the media volume's copy is no longer needed.
    await rm(path, { force: true });
    this.ctx.backlog.remove(path);
  }

  private async publishPlaylist(): Promise<void> {
    const path = join(this.ctx.mediaDir, this.streamPath, PLAYLIST_FILE);
    let text: string;
    if (this.memoryPlaylist !== undefined) {
      text = this.memoryPlaylist;
      // What the volume holds now is older than this final playlist (which the
      // volume could not take); it stays there for a restarted ingest to end
      // the run again, but must never be stored over the final one.
      const onDisk = await readFile(path, 'utf8').catch(() => undefined);
      if (onDisk !== undefined && onDisk !== text) this.supersededPlaylist = onDisk;
    } else {
      try {
        text = await readFile(path, 'utf8');
      } catch {
        return; // removed after the stream's media was deleted
      }
      if (text === this.supersededPlaylist) return;
    }
    if (text === this.lastStoredPlaylist) {
      if (this.memoryPlaylist === text) this.memoryPlaylist = undefined;
      return;
    }
    const playlist = parseMediaPlaylist(text);
    // Store everything the playlist names first, in the order it names them.
    for (const uri of playlist.uris) {
      const pending = this.pending.get(uri) ?? (await this.onDiskNotSeenYet(uri));
      if (pending) await this.uploadFile(pending);
    }
    const maxAge = this.ctx.playlistMaxAgeSeconds ?? (playlist.targetDuration ?? 1) / 2;
    await this.putWithRetry('playlist', this.keyOf(PLAYLIST_FILE), Buffer.from(text), playlistCacheControl(maxAge));
    const storedAt = Date.now();
    this.lastStoredPlaylist = text;
    if (this.memoryPlaylist === text) {
      this.memoryPlaylist = undefined;
      // The volume's playlist may have changed meanwhile (the packager's retry, or a new run).
      this.playlistDirty = true;
    }
    for (const uri of playlist.uris) {
      const completedAt = this.awaitingPlaylist.get(uri);
      if (completedAt !== undefined) {
        this.ctx.metrics.segmentLatency.observe(Math.max(0, storedAt - completedAt) / 1000);
        this.awaitingPlaylist.delete(uri);
      }
    }
    // Segments that slid out of the window before a playlist named them are not waited for.
    if (this.awaitingPlaylist.size > 1000) this.awaitingPlaylist.clear();
  }

  /** A file the playlist names that the watcher has not reported yet (events can arrive late). */
  private async onDiskNotSeenYet(uri: string): Promise<PendingFile | undefined> {
    try {
      const s = await stat(join(this.ctx.mediaDir, this.streamPath, uri));
      return { uri, completedAt: s.mtimeMs };
    } catch {
      return undefined;
    }
  }

  private async putWithRetry(kind: string, key: string, body: Buffer, cacheControl: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      try {
        await this.ctx.semaphore.use(() => this.ctx.store.put(key, body, { contentType: contentTypeFor(key), cacheControl }));
        this.ctx.metrics.uploadDuration.observe({ kind }, (performance.now() - started) / 1000);
        if (attempt > 0) this.ctx.log.info({ stream: this.streamPath, key, attempts: attempt + 1 }, 'upload succeeded after retrying');
        return;
      } catch (error) {
        const reason = failureReason(error);
        this.ctx.metrics.uploadFailures.inc({ kind, reason });
        if (attempt === 0 || attempt % 20 === 0) {
          this.ctx.log.warn({ stream: this.streamPath, key, reason, attempt: attempt + 1, err: (error as Error).message }, 'upload failed; retrying');
        }
        if (this.closed) throw error;
        await sleep(backoffDelay(attempt));
      }
    }
  }

  private keyOf(uri: string): string {
    return joinKey(this.ctx.prefix, this.ctx.keyRoot?.(this.streamPath) ?? '', this.streamPath, posix.normalize(uri));
  }
}
