// The one port between a stream's run (the packager and the run's life) and
// the uploader: what the packager finished, in memory; that the run ended;
// whether everything it wrote is stored; and what the object store holds for
// the stream (to continue a run another ingest handed over). Keyed by the
// stream's ref; the uploader is its only implementation, tests may use their own.
//
// A MediaObject is what the packager hands over for each file it finishes:
// the bytes it has just written to the media volume, and what the uploader
// needs to know to store them in order. The volume's copy is the durable one
// (a killed process's files are found there at the next start); this one
// spares the uploader reading it back, and the playlist's parsing.
import type { StreamRef } from '../common/livestream.ts';

export interface RunStorage {
  /** Each finished object, in the order the run finished them. */
  objectFinished(ref: StreamRef, object: MediaObject): void;
  /** The run ended (or was handed over): its media is deleted later unless kept. */
  runEnded(end: StreamEnd): void;
  /** Resolves once everything the stream handed over is stored (bounded by the implementation). */
  settled(ref: StreamRef): Promise<unknown>;
  /** A file of the stream as stored ("index.m3u8", "history.m3u8"); undefined when there is none. */
  readStored(ref: StreamRef, file: string): Promise<string | undefined>;
}

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

export type MediaObjectKind = 'segment' | 'init' | 'playlist' | 'history';

export interface MediaObject {
  /** Relative to the stream's folder: "<session>/3.m4s", "<session>/init-1.mp4", "index.m3u8", "history.m3u8". */
  uri: string;
  kind: MediaObjectKind;
  body: Uint8Array;
  /** Wall-clock ms at which the object was complete. */
  completedAt: number;
  /** Playlists and run histories: every URI they name, in order, each to be stored before them. */
  names?: readonly string[];
  /** Playlists: their target duration in seconds (the default playlist max-age is half of it). */
  targetDuration?: number;
}
