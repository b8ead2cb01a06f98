// Watches the media volume and stores what the packager finishes. The volume
// is the durable queue between the two: an emptyDir outlives a container
// restart, so on start every file already there is reported and uploaded,
// and nothing the packager wrote is lost to a crash of this process.
import { readFile, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { backoffDelay } from '../../common/backoff.ts';
import type { Logger } from '../../common/log.ts';
import { joinKey, PLAYLIST_FILE } from '../../common/object-layout.ts';
import { streamId } from '../../common/livestream.ts';
import { accessRoot, type PlaybackAccess } from '../../common/playback-token.ts';
import type { IngestMetrics } from '../metrics.ts';
import { isTemporaryName } from '../packager/atomic-file.ts';
import { parseMediaPlaylist, RUN_HISTORY_FILE } from '../../common/media-playlist.ts';
import type { StreamEnd } from '../packager/stream-packager.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { Semaphore } from './semaphore.ts';
import { StreamUploadQueue, type BacklogTracker } from './stream-upload-queue.ts';

export interface UploaderOptions {
  mediaDir: string;
  store: ObjectStore;
  prefix: string;
  playlistMaxAgeSeconds: number | undefined;
  concurrency: number;
  backlogWarnSegments: number;
  /** How long a finished stream's media stays before it is deleted (when not retained). */
  deleteDelayMs: number;
  /**
   * A stream's playback access ("<namespace>/<name>"), asked at every upload:
   * private streams' objects go under `_private/` (common/playback-token.ts).
   * Absent: everything is public.
   */
  accessOf?: (streamPath: string) => PlaybackAccess;
  metrics: IngestMetrics;
  log: Logger;
}

export class Uploader implements BacklogTracker {
  private readonly queues = new Map<string, StreamUploadQueue>();
  private readonly backlog = new Map<string, number>();
  private backlogBytes = 0;
  private backlogWarned = false;
  private watcher: FSWatcher | undefined;
  private readonly semaphore: Semaphore;
  private readonly deletionTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: UploaderOptions) {
    this.semaphore = new Semaphore(options.concurrency);
  }

  /** Starts watching; resolves once the files already on the volume are queued. */
  async start(): Promise<void> {
    const { mediaDir } = this.options;
    this.watcher = watch(mediaDir, {
      ignored: (path) => isTemporaryName(path) && path !== mediaDir,
      alwaysStat: true,
      ignoreInitial: false,
    });
    const onFile = (path: string, stats?: { size: number; mtimeMs: number }) => this.fileAppeared(path, stats);
    this.watcher.on('add', onFile);
    this.watcher.on('change', onFile);
    this.watcher.on('error', (error) => this.options.log.error({ err: error }, 'media volume watcher failed'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  /** Deletes a finished stream's media after the delay, unless its LiveStream keeps it. */
  streamEnded(end: StreamEnd): void {
    if (end.keep || end.sessionFolders.length === 0) return;
    const streamPath = `${end.ref.namespace}/${end.ref.name}`;
    const timer = setTimeout(() => {
      this.deletionTimers.delete(timer);
      this.queueFor(streamPath).enqueue(() => this.deleteRun(streamPath, end));
    }, this.options.deleteDelayMs);
    timer.unref();
    this.deletionTimers.add(timer);
  }

  /**
   * Resolves when every file on the media volume is stored, or after
   * timeoutMs. Returns whether it drained. Files are looked up on disk rather
   * than trusted to the watcher, whose events for the last writes may still
   * be on their way.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    await this.sweep(this.options.mediaDir);
    return this.settle(() => [...this.queues.values()], timeoutMs);
  }

  /** The same for one stream ("<namespace>/<name>"): everything it wrote is stored. */
  async streamSettled(streamPath: string, timeoutMs: number): Promise<boolean> {
    await this.sweep(join(this.options.mediaDir, streamPath));
    return this.settle(() => [this.queues.get(streamPath)].filter((q) => q !== undefined), timeoutMs);
  }

  private async settle(queues: () => StreamUploadQueue[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const busy = queues().filter((q) => !q.idle);
      if (busy.length === 0) return true;
      await Promise.race([Promise.all(busy.map((q) => q.whenIdle())), sleep(Math.max(0, deadline - Date.now()))]);
    }
    return queues().every((q) => q.idle);
  }

  async close(): Promise<void> {
    for (const timer of this.deletionTimers) clearTimeout(timer);
    for (const q of this.queues.values()) q.close();
    await this.watcher?.close();
  }

  /**
   * The media volume could not take a stream's final playlist: store it from
   * memory, after every file it names. `streamPath` is "<namespace>/<name>".
   */
  storePlaylistFromMemory(streamPath: string, text: string): void {
    this.queueFor(streamPath).playlistFromMemory(text);
  }

  /** A stream's file as stored ("<namespace>/<name>", "index.m3u8"), under its access's root; undefined when there is none. */
  readStored(streamPath: string, file: string): Promise<string | undefined> {
    return this.readStoredUnder(accessRoot(this.options.accessOf?.(streamPath) ?? 'public'), streamPath, file);
  }

  private async readStoredUnder(root: string, streamPath: string, file: string): Promise<string | undefined> {
    const body = await this.options.store.get(joinKey(this.options.prefix, root, streamPath, file));
    return body === undefined ? undefined : Buffer.from(body).toString('utf8');
  }

  /** The packager finished a file: queue it now rather than when the watcher notices. */
  fileWritten(path: string): void {
    stat(path).then(
      (s) => this.fileAppeared(path, s),
      () => undefined, // already stored and removed, or replaced: the watcher covers it
    );
  }

  private fileAppeared(path: string, stats?: { size: number; mtimeMs: number }): void {
    const rel = relative(this.options.mediaDir, path).split(sep);
    // <namespace>/<name>/index.m3u8 or <namespace>/<name>/<session>/<file>
    if (rel.length < 3 || rel.some(isTemporaryName)) return;
    const streamPath = `${rel[0]}/${rel[1]}`;
    const uri = rel.slice(2).join('/');
    const media = /\.(m4s|mp4)$/.test(uri);
    if (uri !== PLAYLIST_FILE && uri !== RUN_HISTORY_FILE && !media) return;
    if (media) this.add(path, stats?.size ?? 0);
    this.queueFor(streamPath).fileAppeared(uri, stats?.mtimeMs ?? Date.now());
  }

  private async sweep(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await this.sweep(path);
      else if (entry.isFile()) {
        const s = await stat(path).catch(() => undefined);
        if (s) this.fileAppeared(path, s);
      }
    }
  }

  // BacklogTracker
  add(path: string, bytes: number): void {
    if (this.backlog.has(path)) return;
    this.backlog.set(path, bytes);
    this.backlogBytes += bytes;
    this.updateBacklog();
  }

  remove(path: string): void {
    const bytes = this.backlog.get(path);
    if (bytes === undefined) return;
    this.backlog.delete(path);
    this.backlogBytes -= bytes;
    this.updateBacklog();
  }

  private updateBacklog(): void {
    const { metrics, log, backlogWarnSegments } = this.options;
    metrics.backlogSegments.set(this.backlog.size);
    metrics.backlogBytes.set(this.backlogBytes);
    if (this.backlog.size >= backlogWarnSegments && !this.backlogWarned) {
      this.backlogWarned = true;
      log.warn({ segments: this.backlog.size, bytes: this.backlogBytes }, 'upload backlog is above its high-water mark: the object store is slow or unreachable; segments wait on the media volume');
    } else if (this.backlog.size < backlogWarnSegments / 2 && this.backlogWarned) {
      this.backlogWarned = false;
      log.info({ segments: this.backlog.size }, 'upload backlog is back below its high-water mark');
    }
  }

  private queueFor(streamPath: string): StreamUploadQueue {
    let queue = this.queues.get(streamPath);
    if (!queue) {
      queue = new StreamUploadQueue(streamPath, {
        mediaDir: this.options.mediaDir,
        store: this.options.store,
        prefix: this.options.prefix,
        ...(this.options.accessOf ? { keyRoot: (path: string) => accessRoot(this.options.accessOf!(path)) } : {}),
        playlistMaxAgeSeconds: this.options.playlistMaxAgeSeconds,
        metrics: this.options.metrics,
        log: this.options.log,
        semaphore: this.semaphore,
        backlog: this,
      });
      this.queues.set(streamPath, queue);
    }
    return queue;
  }

  /**
   * Deletes an ended run's media. What is deleted is decided from the store,
   * not from this ingest's volume: another run (on any pod) may have written
   * the stored playlist since — a run that took this one over and continues
   * it, or a new one. So a session folder the stored playlist still lists
   * stays (the run that lists it deletes it at its own end), and the stored
   * playlist is deleted only when it is this run's, ended: every session it
   * names is this run's, and it has EXT-X-ENDLIST.
   */
  private async deleteRun(streamPath: string, end: StreamEnd): Promise<void> {
    const { store, prefix, mediaDir, log } = this.options;
    const playlistPath = join(mediaDir, streamPath, PLAYLIST_FILE);
    let deleted: string[] = [];
    let kept: string[] = [];
    let playlistDeleted = false;
    for (let attempt = 0; ; attempt++) {
      try {
        // Under both roots: the stream's access may have changed during the run.
        kept = [];
        playlistDeleted = false;
        for (const root of [accessRoot('public'), accessRoot('private')]) {
          const stored = await this.readStoredUnder(root, streamPath, PLAYLIST_FILE);
          const parsed = stored === undefined ? undefined : parseMediaPlaylist(stored);
          const listed = new Set(parsed === undefined ? [] : parsed.uris.map(sessionFolderOf));
          const ours = parsed !== undefined && parsed.ended && [...listed].every((f) => end.sessionFolders.includes(f));
          for (const folder of end.sessionFolders) {
            if (ours || !listed.has(folder)) await store.deletePrefix(joinKey(prefix, root, streamPath, folder));
            else if (!kept.includes(folder)) kept.push(folder);
          }
          if (ours) {
            await store.delete(joinKey(prefix, root, streamPath, PLAYLIST_FILE));
            playlistDeleted = true;
          }
        }
        deleted = end.sessionFolders.filter((f) => !kept.includes(f));
        break;
      } catch (error) {
        if (attempt >= 10) {
          log.error({ stream: streamId(end.ref), err: (error as Error).message }, 'could not delete an ended stream\'s media; a bucket lifecycle rule should catch it');
          return;
        }
        await sleep(backoffDelay(attempt, 500, 10_000));
      }
    }
    // The volume's own copy of the playlist, when it is this run's final one (a new run here writes its own).
    const local = parseMediaPlaylist(await readFile(playlistPath, 'utf8').catch(() => ''));
    if (local.ended && local.uris.some((uri) => end.sessionFolders.includes(sessionFolderOf(uri)))) await rm(playlistPath, { force: true });
    for (const folder of end.sessionFolders) await removeIfEmpty(join(mediaDir, streamPath, folder));
    log.info(
      { stream: streamId(end.ref), sessions: deleted.length, ...(kept.length > 0 ? { sessionsStillListed: kept.length } : {}), playlistDeleted },
      kept.length > 0
        ? 'deleted an ended stream\'s media (retention.keepAfterEnd is false), except what the stored playlist of a later run still lists'
        : 'deleted an ended stream\'s media (retention.keepAfterEnd is false)',
    );
  }
}

async function removeIfEmpty(dir: string): Promise<void> {
  try {
    if ((await readdir(dir)).length === 0) await rmdir(dir);
  } catch {
    // already gone
  }
}

/** The session folder of a URI a stream's playlist names ("<session>/<file>"). */
function sessionFolderOf(uri: string): string {
  return uri.split('/')[0]!;
}
