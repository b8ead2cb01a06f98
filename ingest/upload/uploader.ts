// Stores what the packagers finish. Each object comes from its packager in
// memory, already on the media volume: the volume is the durable queue
// between the two (an emptyDir outlives a container restart), so at start
// every file a previous process left there is found and uploaded, and nothing
// the packager wrote is lost to a crash of this process. Past start-up the
// volume is only written (by the packager) and cleaned (here): a slow sweep
// is the safety net for a file that was never handed over.
import { lstat, readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { retry } from '../../common/backoff.ts';
import type { Logger } from '../../common/log.ts';
import { isPlaylistUri, joinKey, PLAYLIST_FILE, sessionFolderOf } from '../../common/object-layout.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../common/multivariant-playlist.ts';
import { isRenditionName, renditionPlaylistFile, SOURCE_RENDITION, THUMBNAIL_FILE } from '../../common/renditions.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { accessRoot, type PlaybackAccess } from '../../common/playback-token.ts';
import type { IngestMetrics } from '../metrics.ts';
import { isTemporaryName } from '../../common/atomic-file.ts';
import type { MediaObject, RunStorage, StreamEnd } from '../run-storage.ts';
import { parseMediaPlaylist, RUN_HISTORY_FILE } from '../../common/media-playlist.ts';
import type { ObjectStore } from '../../common/storage/object-store.ts';
import { Semaphore } from './semaphore.ts';
import { StreamUploadQueue } from './stream-upload-queue.ts';
import { UploadBacklog } from './upload-backlog.ts';

/** How often the media volume is swept for files never handed over (the safety net). */
const SAFETY_SWEEP_MS = 60_000;
/** A file this old (mtime) and not waiting was missed: younger ones may be on their way. */
const SAFETY_SWEEP_MIN_AGE_MS = 30_000;

export interface UploaderOptions {
  mediaDir: string;
  store: ObjectStore;
  prefix: string;
  playlistMaxAgeSeconds: number | undefined;
  concurrency: number;
  backlogWarnSegments: number;
  /**
   * Bytes of waiting segments kept in memory, across streams; past it a
   * segment waits on the media volume only and is read back from there.
   */
  memoryBytes: number;
  /** How long a finished stream's media stays before it is deleted (when not retained). */
  deleteDelayMs: number;
  /** The most a run waits for its objects to be stored before it lets go of its claim. */
  settleTimeoutMs: number;
  /**
   * A stream's playback access, asked at every upload: private streams'
   * objects go under `_private/` (common/playback-token.ts). Absent:
   * everything is public.
   */
  accessOf?: (ref: StreamRef) => PlaybackAccess;
  metrics: IngestMetrics;
  log: Logger;
}

export class Uploader implements RunStorage {
  /** Each stream's queue, by "<namespace>/<name>". */
  private readonly queues = new Map<string, StreamUploadQueue>();
  private readonly backlog: UploadBacklog;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly semaphore: Semaphore;
  private readonly deletionTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: UploaderOptions) {
    this.semaphore = new Semaphore(options.concurrency);
    this.backlog = new UploadBacklog({
      memoryBytes: options.memoryBytes,
      warnSegments: options.backlogWarnSegments,
      metrics: options.metrics,
      log: options.log,
    });
  }

  /** Queues what a previous process left on the media volume; resolves once it is queued. */
  async start(): Promise<void> {
    await this.sweep(0);
    this.sweepTimer = setInterval(() => void this.sweep(SAFETY_SWEEP_MIN_AGE_MS), SAFETY_SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** Bytes of segments waiting to be stored (each also on the media volume). */
  get waitingBytes(): number {
    return this.backlog.waitingBytes;
  }

  /** A run's packager finished an object. */
  objectFinished(ref: StreamRef, object: MediaObject): void {
    this.queueFor(ref).objectFinished(object);
  }

  /** Deletes an ended run's media after the delay, unless its LiveStream keeps it. */
  runEnded(end: StreamEnd): void {
    if (end.keep || end.sessionFolders.length === 0) return;
    const timer = setTimeout(() => {
      this.deletionTimers.delete(timer);
      this.queueFor(end.ref).enqueue(() => this.deleteRun(end));
    }, this.options.deleteDelayMs);
    timer.unref();
    this.deletionTimers.add(timer);
  }

  /**
   * Resolves when everything handed over (and found at start-up) is stored,
   * or after timeoutMs. Returns whether it drained.
   */
  drain(timeoutMs: number): Promise<boolean> {
    return this.settle(() => [...this.queues.values()], timeoutMs);
  }

  /** The same for one stream: everything it wrote is stored (at most settleTimeoutMs). */
  settled(ref: StreamRef): Promise<boolean> {
    const id = streamId(ref);
    return this.settle(() => [this.queues.get(id)].filter((q) => q !== undefined), this.options.settleTimeoutMs);
  }

  private async settle(queues: () => StreamUploadQueue[], timeoutMs: number): Promise<boolean> {
    // The deadline's timer is cancelled when the work finishes first.
    const cancel = new AbortController();
    let timedOut = false;
    const deadline = sleep(timeoutMs, undefined, { signal: cancel.signal }).then(
      () => {
        timedOut = true;
      },
      () => undefined,
    );
    try {
      while (!timedOut) {
        const busy = queues().filter((q) => !q.idle);
        if (busy.length === 0) return true;
        await Promise.race([Promise.all(busy.map((q) => q.whenIdle())), deadline]);
      }
      return queues().every((q) => q.idle);
    } finally {
      cancel.abort();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    for (const timer of this.deletionTimers) clearTimeout(timer);
    for (const q of this.queues.values()) q.close();
  }

  /** A stream's file as stored ("index.m3u8"), under its access's root; undefined when there is none. */
  readStored(ref: StreamRef, file: string): Promise<string | undefined> {
    return this.readStoredUnder(accessRoot(this.options.accessOf?.(ref) ?? 'public'), ref, file);
  }

  private async readStoredUnder(root: string, ref: StreamRef, file: string): Promise<string | undefined> {
    const body = await this.options.store.get(joinKey(this.options.prefix, root, streamId(ref), file));
    return body === undefined ? undefined : Buffer.from(body).toString('utf8');
  }

  /**
   * Reads a run's playlists with `read`: `index.m3u8`, and when it is a
   * ladder's multivariant playlist the source's media playlist it names
   * (the run's timeline). Undefined when there is no playlist.
   */
  private async storedRun(read: (file: string) => Promise<string | undefined>): Promise<StoredPlaylists | undefined> {
    const index = await read(PLAYLIST_FILE);
    if (index === undefined) return undefined;
    if (!isMultivariant(index)) return { source: parseMediaPlaylist(index), playlists: [] };
    let names: string[] = [];
    try {
      names = parseMultivariantPlaylist(index)
        .filter((v) => isRenditionName(v.name) && v.uri === renditionPlaylistFile(v.name))
        .map((v) => v.uri);
    } catch {
      // unreadable: only the source's playlist is known by name
    }
    const sourceFile = renditionPlaylistFile(SOURCE_RENDITION);
    if (!names.includes(sourceFile)) names.push(sourceFile);
    const source = await read(sourceFile);
    return { source: parseMediaPlaylist(source ?? ''), playlists: names };
  }

  /**
   * Queues the files on the media volume that are not waiting already and
   * are at least `minAgeMs` old: media first, then playlists and histories,
   * so that a playlist is stored after what it names. At start-up (age 0)
   * that is what a previous process left; later, a file found is one the
   * packager never handed over, which is a fault worth a warning.
   */
  private async sweep(minAgeMs: number): Promise<void> {
    const { mediaDir, log } = this.options;
    const media: Array<FoundFile & { ref: StreamRef }> = [];
    const lists: Array<FoundFile & { ref: StreamRef }> = [];
    const now = Date.now();
    for (const namespace of await listDirs(mediaDir)) {
      for (const name of await listDirs(join(mediaDir, namespace))) {
        const ref = { namespace, name };
        const queue = this.queues.get(streamId(ref));
        for await (const found of filesOfStream(join(mediaDir, namespace, name))) {
          if (now - found.mtimeMs < minAgeMs || queue?.has(found.uri)) continue;
          const file = { ref, ...found };
          if (isPlaylistUri(found.uri) || found.uri === RUN_HISTORY_FILE) lists.push(file);
          else media.push(file);
        }
      }
    }
    // Later sweeps leave playlists alone: the packager's in memory are newer.
    const found = minAgeMs === 0 ? [...media, ...lists] : media;
    if (minAgeMs > 0 && found.length > 0) {
      log.warn({ files: found.length }, 'found files on the media volume that were never queued for upload; uploading them now');
    }
    for (const f of found) this.queueFor(f.ref).foundOnVolume(f.uri, f.mtimeMs, f.size);
  }

  private queueFor(ref: StreamRef): StreamUploadQueue {
    const id = streamId(ref);
    let queue = this.queues.get(id);
    if (!queue) {
      queue = new StreamUploadQueue(ref, {
        mediaDir: this.options.mediaDir,
        store: this.options.store,
        prefix: this.options.prefix,
        ...(this.options.accessOf ? { keyRoot: (r: StreamRef) => accessRoot(this.options.accessOf!(r)) } : {}),
        playlistMaxAgeSeconds: this.options.playlistMaxAgeSeconds,
        metrics: this.options.metrics,
        log: this.options.log,
        semaphore: this.semaphore,
        backlog: this.backlog,
      });
      this.queues.set(id, queue);
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
  private async deleteRun(end: StreamEnd): Promise<void> {
    const { store, prefix, mediaDir, log } = this.options;
    const streamPath = streamId(end.ref);
    let deleted: string[] = [];
    let kept: string[] = [];
    let playlistDeleted = false;
    try {
      await retry(
        async () => {
          // Under both roots: the stream's access may have changed during the run.
          kept = [];
          playlistDeleted = false;
          for (const root of [accessRoot('public'), accessRoot('private')]) {
            const run = await this.storedRun((file) => this.readStoredUnder(root, end.ref, file));
            const parsed = run?.source;
            const listed = new Set(parsed === undefined ? [] : parsed.uris.map(sessionFolderOf));
            const ours = parsed !== undefined && parsed.ended && [...listed].every((f) => end.sessionFolders.includes(f));
            for (const folder of end.sessionFolders) {
              if (ours || !listed.has(folder)) await store.deletePrefix(joinKey(prefix, root, streamPath, folder));
              else if (!kept.includes(folder)) kept.push(folder);
            }
            if (ours) {
              // A ladder's media playlists first: index.m3u8 names them. The run's thumbnail goes with its media.
              for (const file of [...run!.playlists, THUMBNAIL_FILE, PLAYLIST_FILE]) await store.delete(joinKey(prefix, root, streamPath, file));
              playlistDeleted = true;
            }
          }
          deleted = end.sessionFolders.filter((f) => !kept.includes(f));
        },
        { attempts: 11, baseMs: 500, maxMs: 10_000 },
      );
    } catch (error) {
      log.error(
        { stream: streamId(end.ref), err: (error as Error).message },
        "could not delete an ended stream's media; a bucket lifecycle rule should catch it",
      );
      return;
    }
    // The volume's own copy of the playlist, when it is this run's final one (a new run here writes its own).
    const local = await this.storedRun((file) => readFile(join(mediaDir, streamPath, file), 'utf8').catch(() => undefined));
    if (local?.source.ended && local.source.uris.some((uri) => end.sessionFolders.includes(sessionFolderOf(uri)))) {
      for (const file of [...local.playlists, PLAYLIST_FILE]) await rm(join(mediaDir, streamPath, file), { force: true });
    }
    for (const folder of end.sessionFolders) {
      for (const sub of await readdir(join(mediaDir, streamPath, folder)).catch(() => [])) {
        if (isRenditionName(sub)) await removeIfEmpty(join(mediaDir, streamPath, folder, sub));
      }
      await removeIfEmpty(join(mediaDir, streamPath, folder));
    }
    log.info(
      { stream: streamId(end.ref), sessions: deleted.length, ...(kept.length > 0 ? { sessionsStillListed: kept.length } : {}), playlistDeleted },
      kept.length > 0
        ? "deleted an ended stream's media (retention.keepAfterEnd is false), except what the stored playlist of a later run still lists"
        : "deleted an ended stream's media (retention.keepAfterEnd is false)",
    );
  }
}

/** A stored run as its playlists tell it: the source's media playlist (a ladder's `source.m3u8`) and a ladder's media playlists. */
interface StoredPlaylists {
  source: ReturnType<typeof parseMediaPlaylist>;
  /** A ladder's media playlists (`source.m3u8` and the others named by `index.m3u8`); empty without a ladder. */
  playlists: string[];
}

interface FoundFile {
  /** Relative to the stream's folder. */
  uri: string;
  mtimeMs: number;
  size: number;
}

async function listDirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !isTemporaryName(e.name)).map((e) => e.name);
}

/** A stream folder's playlist, history and session files (temporary names left out). */
async function* filesOfStream(dir: string): AsyncGenerator<FoundFile> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (isTemporaryName(entry.name)) continue;
    if (entry.isDirectory()) {
      for (const file of await readdir(join(dir, entry.name), { withFileTypes: true }).catch(() => [])) {
        if (isTemporaryName(file.name)) continue;
        // A ladder's other renditions: one folder deeper (`<session>/<rendition>/`).
        if (file.isDirectory() && isRenditionName(file.name)) yield* mediaFiles(join(dir, entry.name, file.name), `${entry.name}/${file.name}`);
      }
      yield* mediaFiles(join(dir, entry.name), entry.name);
    } else if (isPlaylistUri(entry.name) || entry.name === RUN_HISTORY_FILE) {
      const s = await lstat(join(dir, entry.name)).catch(() => undefined);
      if (s?.isFile()) yield { uri: entry.name, mtimeMs: s.mtimeMs, size: s.size };
    }
  }
}

/** The init and media segments in a folder. */
async function* mediaFiles(dir: string, uriPrefix: string): AsyncGenerator<FoundFile> {
  for (const file of await readdir(dir).catch(() => [])) {
    if (isTemporaryName(file) || !/\.(m4s|mp4)$/.test(file)) continue;
    const s = await lstat(join(dir, file)).catch(() => undefined);
    if (s?.isFile()) yield { uri: `${uriPrefix}/${file}`, mtimeMs: s.mtimeMs, size: s.size };
  }
}

async function removeIfEmpty(dir: string): Promise<void> {
  try {
    if ((await readdir(dir)).length === 0) await rmdir(dir);
  } catch {
    // already gone
  }
}
