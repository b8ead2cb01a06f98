// A retained run's full segment list on the media volume, one JSON line per
// segment, appended as segments are written: the live playlist holds only the
// window, and a process that restarts mid-run still has to end it with the
// whole VOD list. The packager keeps the list in memory while it runs; the
// journal is only read back after a crash.
//
// Appends can be cut at any byte (a kill, a full volume), so:
// - a failed append is truncated back to the last whole line and the entry is
//   kept in memory, to be written with the next append;
// - reading ignores lines that do not parse (a cut last line), and says so;
// - after a crash the journal and the playlist may disagree (a kill between
//   the append and the playlist's rename leaves the journal one ahead):
//   `reconcileSegments` keeps every segment either of them names.
import { appendFile, readFile, rm, stat, truncate } from 'node:fs/promises';
import { writeFileAtomic } from '../../common/atomic-file.ts';
import type { PlaylistSegment } from '../../common/media-playlist.ts';

/** A dot-file, so the uploader leaves it alone. */
export const JOURNAL_FILE = '.segments.jsonl';

export interface JournalContents {
  entries: PlaylistSegment[];
  /** Lines that did not parse as an entry (a cut append), ignored. */
  badLines: number;
}

export async function readJournal(path: string): Promise<JournalContents | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const entries: PlaylistSegment[] = [];
  let badLines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = parseEntry(line);
    if (entry) entries.push(entry);
    else badLines++;
  }
  return { entries, badLines };
}

function parseEntry(line: string): PlaylistSegment | undefined {
  try {
    const v = JSON.parse(line) as Partial<PlaylistSegment> | null;
    if (!v || typeof v.uri !== 'string' || typeof v.duration !== 'number' || typeof v.programDateTime !== 'number' || typeof v.initUri !== 'string')
      return undefined;
    return { uri: v.uri, duration: v.duration, programDateTime: v.programDateTime, initUri: v.initUri, discontinuity: v.discontinuity === true };
  } catch {
    return undefined;
  }
}

/** The media sequence number a segment URI carries ("<session>/<sequence>.m4s"). */
export function sequenceOf(uri: string): number | undefined {
  const match = /(?:^|\/)(\d+)\.m4s$/.exec(uri);
  return match ? Number(match[1]) : undefined;
}

/**
 * Every segment the journal or the playlist's window names, once, in media
 * sequence order. Both only ever name segments that were completely written
 * (a segment is renamed into place before its journal line and its playlist),
 * so each one is on the volume or already in the store.
 */
export function reconcileSegments(journal: PlaylistSegment[], window: PlaylistSegment[]): PlaylistSegment[] {
  const byUri = new Map<string, PlaylistSegment>();
  for (const s of journal) byUri.set(s.uri, s);
  // The playlist's copy wins: it was rendered from the packager's own list.
  for (const s of window) byUri.set(s.uri, s);
  return [...byUri.values()].sort((a, b) => (sequenceOf(a.uri) ?? Infinity) - (sequenceOf(b.uri) ?? Infinity));
}

export class SegmentJournal {
  /** Bytes of whole lines on disk; undefined until first needed. */
  private size: number | undefined;
  /** Lines not yet on disk (their write failed). */
  private pending = '';
  /** The file on disk cannot be appended to (a replace failed): the next write replaces it whole. */
  private rewrite = false;

  constructor(
    private readonly path: string,
    private readonly tmpDir: string,
  ) {}

  /** Appends an entry, with any that failed before; on failure they stay pending and the file keeps only whole lines. */
  async append(entry: PlaylistSegment): Promise<void> {
    this.pending += JSON.stringify(entry) + '\n';
    if (this.rewrite) return this.writeWhole(this.pending);
    this.size ??= await stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    try {
      await appendFile(this.path, this.pending);
    } catch (error) {
      // Part of the text may have been written: cut it off, so the next
      // append does not glue a whole line to a partial one.
      await truncate(this.path, this.size).catch(() => undefined);
      throw error;
    }
    this.size += Buffer.byteLength(this.pending);
    this.pending = '';
  }

  /** Replaces the journal with these entries (after a restart: repaired and reconciled). */
  replace(entries: PlaylistSegment[]): Promise<void> {
    return this.writeWhole(entries.map((e) => JSON.stringify(e) + '\n').join(''));
  }

  async remove(): Promise<void> {
    this.pending = '';
    this.rewrite = false;
    this.size = 0;
    await rm(this.path, { force: true });
  }

  private async writeWhole(text: string): Promise<void> {
    try {
      await writeFileAtomic(this.path, text, this.tmpDir);
    } catch (error) {
      this.pending = text;
      this.rewrite = true;
      throw error;
    }
    this.pending = '';
    this.rewrite = false;
    this.size = Buffer.byteLength(text);
  }
}
