// What the packager hands the uploader, in memory, for each file it finishes:
// the bytes it has just written to the media volume, and what the uploader
// needs to know to store them in order. The volume's copy is the durable one
// (a killed process's files are found there at the next start); this one
// spares the uploader reading it back, and the playlist's parsing.

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
