// Everything one stream writes to the media volume while it is live: its
// playlist, and for each publish session an init segment and media segments
// in a folder of that session's own. A publisher that drops and comes back
// within the reconnect grace period continues the same playlist after a
// discontinuity; a clean unpublish, or the end of the grace period, ends the
// playlist with EXT-X-ENDLIST.
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { PLAYLIST_FILE } from '../../common/object-layout.ts';
import { streamId, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import type { IngestMetrics } from '../metrics.ts';
import { MEDIA_TMP_DIR, writeFileAtomic } from './atomic-file.ts';
import { Fragmenter, type SegmentOutput } from './fragmenter.ts';
import { MediaPlaylist, type PlaylistSegment } from './playlist.ts';
import { PublishSession } from './publish-session.ts';

export interface StreamEnd {
  ref: StreamRef;
  /** The session folders of the run that ended (relative to the stream's folder). */
  sessionFolders: string[];
  keep: boolean;
}

export interface StreamPackagerOptions {
  ref: StreamRef;
  settings: StreamSettings;
  mediaDir: string;
  reconnectGraceMs: number;
  /**
   * Called once a file is complete on the media volume. The uploader's
   * watcher finds every file anyway; this only saves the time the watcher
   * takes to notice (chokidar re-reads a changed directory at most once a
   * second, which would cost up to a second of live latency per segment).
   */
  onFileWritten?: (path: string) => void;
  metrics: IngestMetrics;
  log: Logger;
  onEnded: (end: StreamEnd) => void;
}

type State = 'idle' | 'live' | 'grace' | 'ended';

/**
 * A retained run's full segment list, one JSON line per segment, appended as
 * segments are written: the live playlist holds only the window, and a
 * process that restarts mid-run still has to end it with the whole VOD list.
 * A dot-file, so the uploader leaves it alone.
 */
const JOURNAL_FILE = '.segments.jsonl';

export class StreamPackager {
  readonly ref: StreamRef;
  private settings: StreamSettings;
  private playlist: MediaPlaylist;
  private state: State = 'idle';
  private session: PublishSession | undefined;
  private sessionFolders: string[] = [];
  private graceTimer: NodeJS.Timeout | undefined;
  /** File writes happen one after another, so a playlist is never written before its segment. */
  private writes: Promise<void> = Promise.resolve();
  private nextSegmentIsDiscontinuity = false;
  private currentInitUri: string | undefined;
  private warnedLongSegments = false;
  private readonly dir: string;
  private readonly tmpDir: string;

  constructor(private readonly options: StreamPackagerOptions) {
    this.ref = options.ref;
    this.settings = options.settings;
    this.dir = join(options.mediaDir, options.ref.namespace, options.ref.name);
    this.tmpDir = join(options.mediaDir, MEDIA_TMP_DIR);
    this.playlist = this.newPlaylist();
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
   * its reconnect grace period, as if its publisher had just dropped.
   */
  async resumeFromDisk(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(join(this.dir, PLAYLIST_FILE), 'utf8');
    } catch {
      return false;
    }
    const playlist = MediaPlaylist.parse(text, this.settings.playlistLength);
    if (playlist.ended || playlist.segments.length === 0) return false;
    if (this.settings.keepAfterEnd) {
      const journal = await readFile(join(this.dir, JOURNAL_FILE), 'utf8').catch(() => '');
      const all = journal.split('\n').filter(Boolean).map((line) => JSON.parse(line) as PlaylistSegment);
      if (all.length > 0 && all.at(-1)?.uri === playlist.segments.at(-1)?.uri) {
        playlist.segments = all;
        playlist.firstSequence = 0;
        playlist.discontinuitiesBefore = 0;
      }
    }
    this.playlist = playlist;
    this.sessionFolders = [...new Set(playlist.segments.map((s) => s.uri.split('/')[0]!))];
    this.currentInitUri = playlist.segments.at(-1)?.initUri;
    this.nextSegmentIsDiscontinuity = true;
    this.enterGrace();
    this.options.log.info({ stream: streamId(this.ref), segments: playlist.segments.length }, 'resumed an unfinished stream from the media volume');
    return true;
  }

  /** Starts packaging a new publish session. */
  beginSession(settings: StreamSettings): PublishSession {
    if (this.state === 'live') throw new Error(`${streamId(this.ref)} already has a publisher`);
    if (this.state === 'ended' || this.state === 'idle') {
      this.settings = settings;
      this.playlist = this.newPlaylist();
      this.sessionFolders = [];
      this.queueRemove(JOURNAL_FILE);
      this.nextSegmentIsDiscontinuity = false;
      this.warnedLongSegments = false;
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

  /** Ends the stream now, whatever its state, and waits until its files are written. */
  async finish(): Promise<void> {
    if (this.state === 'ended') return this.writes;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    const session = this.session;
    this.session = undefined;
    if (session) await session.close();
    this.state = 'ended';
    this.playlist.ended = true;
    if (this.playlist.segments.length > 0) {
      this.writePlaylist({ vod: this.settings.keepAfterEnd });
      this.queueRemove(JOURNAL_FILE);
    }
    await this.writes;
    this.options.onEnded({ ref: this.ref, sessionFolders: [...this.sessionFolders], keep: this.settings.keepAfterEnd });
  }

  /** Resolves once every file queued so far is on the media volume. */
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

  private onInit(sessionFolder: string, init: Uint8Array, generation: number): void {
    const uri = `${sessionFolder}/init-${generation}.mp4`;
    // A new init segment inside a session means the muxer restarted or the
    // publisher changed its encoder settings: timestamps start over.
    if (generation > 1) this.nextSegmentIsDiscontinuity = true;
    this.currentInitUri = uri;
    this.queueWrite(uri, init);
  }

  private onSegment(sessionFolder: string, segment: SegmentOutput): void {
    const { metrics, log } = this.options;
    const sequence = this.playlist.nextSequence;
    const uri = `${sessionFolder}/${sequence}.m4s`;
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
    this.queueWrite(uri, segment.data);
    const entry: PlaylistSegment = {
      uri,
      duration: segment.duration,
      programDateTime: segment.arrivedAt,
      initUri: this.currentInitUri ?? `${sessionFolder}/init-${segment.initGeneration}.mp4`,
      discontinuity: this.nextSegmentIsDiscontinuity,
    };
    this.playlist.append(entry);
    if (this.settings.keepAfterEnd) this.queueAppend(JOURNAL_FILE, JSON.stringify(entry) + '\n');
    this.nextSegmentIsDiscontinuity = false;
    // Without retention only the live window is ever rendered again.
    if (!this.settings.keepAfterEnd) {
      const excess = this.playlist.segments.length - this.settings.playlistLength;
      if (excess > 0) this.playlist.forgetBefore(excess);
    }
    this.writePlaylist();
  }

  private writePlaylist(options: { vod?: boolean } = {}): void {
    this.queueWrite(PLAYLIST_FILE, this.playlist.render(options));
  }

  private queueWrite(relativePath: string, data: Uint8Array | string): void {
    this.queueFileOp(relativePath, async (path) => {
      await writeFileAtomic(path, data, this.tmpDir);
      this.options.onFileWritten?.(path);
    });
  }

  private queueAppend(relativePath: string, line: string): void {
    this.queueFileOp(relativePath, (path) => appendFile(path, line));
  }

  private queueRemove(relativePath: string): void {
    this.queueFileOp(relativePath, (path) => rm(path, { force: true }));
  }

  private queueFileOp(relativePath: string, op: (path: string) => Promise<void>): void {
    const path = join(this.dir, relativePath);
    this.writes = this.writes.then(() =>
      op(path).catch((error: unknown) => {
        // A full or broken media volume loses this file; say so loudly.
        this.options.log.error({ stream: streamId(this.ref), file: relativePath, err: error }, 'could not write to the media volume');
      }),
    );
  }
}

/** Unique for all time: a session's segment names are never reused, so CDNs may cache them forever. */
export function newSessionId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
