// One live run's LL-HLS state, in the ingest's memory: the parts of its
// last segments and of the segment in progress, its current init segment,
// and the blocking requests waiting for the playlist to reach them
// (RFC 8216bis §6.2.5.2). The packager feeds it (stream-packager.ts); the
// playlist it renders is the packager's own model (common/media-playlist.ts)
// with the parts added, so the two never disagree on a segment.
//
// Parts of a segment that is complete but not yet listed (being written to
// the media volume, a few milliseconds) stay the segment in progress, and
// parts after it wait: a playlist never names a part of a segment after one
// it does not yet list. Parts never go to the volume or the object store.
import type { BlockingRequest } from '../../common/low-latency.ts';
import type { LowLatencyView, MediaPlaylist, PlaylistPart } from '../../common/media-playlist.ts';
import type { PartOutput } from '../packager/fragmenter.ts';

/** A part held in memory. */
interface HeldPart extends PlaylistPart {
  data: Uint8Array;
}

/** A segment's parts, from its first part until it is listed (and then while it is recent). */
interface PartRun {
  sessionFolder: string;
  initUri: string;
  parts: HeldPart[];
  /** Its bytes, once complete (the parts back to back). */
  data?: Uint8Array;
}

/** What a blocking playlist request waits for. */
interface Waiter {
  msn: number;
  part: number | undefined;
  resolve(outcome: 'ready' | 'ended'): void;
}

/** A part request waiting for the part (the preload hint). */
interface PartWaiter {
  sessionFolder: string;
  msn: number;
  index: number;
  resolve(part: HeldPart | undefined): void;
}

/** The last segments whose parts the playlist lists (about three target durations: the spec's rule). */
const PARTS_LISTED_SEGMENTS = 3;

/** Blocked requests one stream may hold at once; past it a request is answered 503 at once. */
export const MAX_WAITERS_PER_STREAM = 1000;

export class LowLatencyStream {
  /** Parts of listed segments, by sequence number, while recent. */
  private readonly listedParts = new Map<number, PartRun>();
  /** Complete segments not yet listed, oldest first. */
  private readonly pending: PartRun[] = [];
  /** The segment being cut. */
  private open: PartRun | undefined;
  private initUri: string | undefined;
  private initData: Uint8Array | undefined;
  private waiters: Waiter[] = [];
  private partWaiters: PartWaiter[] = [];
  private ended = false;
  /** The publish session parts come from: the next part's folder. */
  private sessionFolder: string | undefined;
  /** The last body of each other playlist the run stored (a ladder's), served as stored. */
  readonly storedPlaylists = new Map<string, Uint8Array>();

  constructor(
    /** The run's source playlist model (the packager's). */
    readonly playlist: MediaPlaylist,
    readonly partSeconds: number,
    /** The file the source playlist is served as (index.m3u8, or source.m3u8 in a ladder). */
    readonly playlistFile: () => string,
  ) {}

  get waiting(): number {
    return this.waiters.length + this.partWaiters.length;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  init(uri: string, data: Uint8Array): void {
    this.initUri = uri;
    this.initData = data;
  }

  part(sessionFolder: string, part: PartOutput): void {
    if (this.ended || !this.initUri) return;
    if (!this.open || part.index === 0) this.open = { sessionFolder, initUri: this.initUri, parts: [] };
    this.sessionFolder = sessionFolder;
    const msn = this.msnOf(this.open);
    const held: HeldPart = {
      uri: `${sessionFolder}/${msn}.${this.open.parts.length}.part.m4s`,
      duration: part.duration,
      independent: part.independent,
      data: part.data,
    };
    this.open.parts.push(held);
    this.changed();
  }

  /** The fragmenter handed over the segment the open parts make up. */
  segmentComplete(data: Uint8Array): void {
    if (!this.open) return;
    this.open.data = data;
    // The segment is its parts back to back. The fragmenter cuts parts as views of the segment's own buffer,
    // except those cut before that buffer grew (a segment larger than the last): they become views of it too,
    // so the outgrown buffer goes.
    let at = 0;
    for (const part of this.open.parts) {
      if (at + part.data.length > data.length) break;
      part.data = data.subarray(at, at + part.data.length);
      at += part.data.length;
    }
    this.pending.push(this.open);
    this.open = undefined;
  }

  /** The segment in progress will never be complete (the muxer failed). */
  abandon(): void {
    this.open = undefined;
    this.changed();
  }

  /** The packager listed its oldest complete segment as `sequence`. */
  listed(sequence: number): void {
    const run = this.pending.shift();
    if (run) this.listedParts.set(sequence, run);
    // Held one segment longer than listed, so a playlist just served never names a part already gone
    // (players ask for parts near the live edge; CloudFront keeps an LL playlist 1 s at most).
    for (const old of this.listedParts.keys()) if (old < sequence - PARTS_LISTED_SEGMENTS) this.listedParts.delete(old);
    this.changed();
  }

  /** The packager skipped its oldest complete segment (the volume could not take it): its parts were never listed. */
  skipped(): void {
    this.pending.shift();
    this.changed();
  }

  /** The run ended or was handed over: waiters are answered now. */
  end(): void {
    this.ended = true;
    this.open = undefined;
    this.pending.length = 0;
    for (const w of this.waiters.splice(0)) w.resolve('ended');
    for (const w of this.partWaiters.splice(0)) w.resolve(undefined);
  }

  /** The sequence number of the next segment the packager lists. */
  private get nextMsn(): number {
    return this.playlist.nextSequence;
  }

  /** The segment in progress as the playlist shows it: the oldest complete unlisted one, else the open one. */
  private get shown(): PartRun | undefined {
    return this.pending[0] ?? this.open;
  }

  private msnOf(run: PartRun): number {
    if (run === this.open) return this.nextMsn + this.pending.length;
    const i = this.pending.indexOf(run);
    return this.nextMsn + Math.max(0, i);
  }

  /** The last listed segment's number, and the segment in progress with its part count. */
  position(): { lastMsn: number; openMsn: number; openParts: number } {
    const shown = this.shown;
    return { lastMsn: this.nextMsn - 1, openMsn: this.nextMsn, openParts: shown?.parts.length ?? 0 };
  }

  /**
   * Whether the playlist holds segment `msn`, or part `part` of it or a later
   * part (RFC 8216bis §6.2.5.2): a segment that ended with fewer parts is
   * followed by the next segment's first part.
   */
  reached(msn: number, part: number | undefined): boolean {
    const { lastMsn, openMsn, openParts } = this.position();
    if (part === undefined || msn < lastMsn) return msn <= lastMsn;
    if (msn === lastMsn) {
      const parts = this.listedParts.get(msn)?.parts.length;
      return parts === undefined || part < parts || openParts > 0;
    }
    return msn === openMsn && part < openParts;
  }

  /** Why a blocking request can never be answered soon (400), or undefined. */
  tooFar(request: BlockingRequest): string | undefined {
    if (request.msn === undefined) return undefined;
    const { lastMsn, openMsn, openParts } = this.position();
    if (request.msn > lastMsn + 2) return `_HLS_msn=${request.msn} is more than two segments past the playlist's last (${lastMsn})`;
    // The advance part limit: three divided by the part target (§6.2.5.2).
    const limit = Math.ceil(3 / Math.min(1, this.partSeconds));
    if (request.part !== undefined) {
      const ahead = request.msn === openMsn ? request.part - (openParts - 1) : request.msn > openMsn ? request.part + 1 + (request.msn - openMsn - 1) : 0;
      if (ahead > limit) return `_HLS_part=${request.part} of segment ${request.msn} is more than ${limit} parts past the playlist's last part`;
    }
    return undefined;
  }

  /** Resolves once the playlist reaches `msn`/`part`, the stream ends, or `signal` aborts. */
  waitFor(msn: number, part: number | undefined, signal: AbortSignal): Promise<'ready' | 'ended' | 'aborted'> {
    if (this.ended) return Promise.resolve('ended');
    if (this.reached(msn, part)) return Promise.resolve('ready');
    return new Promise((resolve) => {
      const waiter: Waiter = {
        msn,
        part,
        resolve: (outcome) => {
          signal.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve('aborted');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** The part `<sessionFolder>/<msn>.<index>.part.m4s` if held; 'future' when it is the one to come next. */
  findPart(sessionFolder: string, msn: number, index: number): HeldPart | 'future' | undefined {
    const run = this.listedParts.get(msn) ?? (msn >= this.nextMsn ? this.unlistedRun(msn) : undefined);
    if (run && run.sessionFolder === sessionFolder && index < run.parts.length) return run.parts[index];
    return this.isNextPart(sessionFolder, msn, index) ? 'future' : undefined;
  }

  /** Resolves with the part once it exists; undefined when it never will (the segment ended shorter, the stream ended) or `signal` aborts. */
  waitForPart(sessionFolder: string, msn: number, index: number, signal: AbortSignal): Promise<HeldPart | undefined> {
    return new Promise((resolve) => {
      const waiter: PartWaiter = {
        sessionFolder,
        msn,
        index,
        resolve: (part) => {
          signal.removeEventListener('abort', onAbort);
          resolve(part);
        },
      };
      const onAbort = () => {
        this.partWaiters = this.partWaiters.filter((w) => w !== waiter);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.partWaiters.push(waiter);
    });
  }

  /** A recent segment's bytes, or the current init segment's, from memory. */
  findFile(uri: string): Uint8Array | undefined {
    if (uri === this.initUri) return this.initData;
    for (const [msn, run] of this.listedParts) if (run.data && uri === `${run.sessionFolder}/${msn}.m4s`) return run.data;
    return undefined;
  }

  /** The LL playlist as it is now. */
  render(): string {
    const shown = this.shown;
    const view: LowLatencyView = {
      partTarget: this.partSeconds,
      partsOf: (sequence) => (sequence > this.nextMsn - 1 - PARTS_LISTED_SEGMENTS ? this.listedParts.get(sequence)?.parts : undefined),
      open: shown && shown.parts.length > 0 ? { parts: shown.parts, initUri: shown.initUri } : undefined,
      preloadHint: this.preloadHint(),
    };
    return this.playlist.renderNamed({ lowLatency: view }).text;
  }

  /** The part to come: the next of the segment in progress, or the first of the next segment once it is complete. */
  private preloadHint(): string | undefined {
    if (this.ended || this.sessionFolder === undefined) return undefined;
    const shown = this.shown;
    if (shown?.data) return `${shown.sessionFolder}/${this.nextMsn + 1}.0.part.m4s`;
    return `${this.sessionFolder}/${this.nextMsn}.${shown?.parts.length ?? 0}.part.m4s`;
  }

  private unlistedRun(msn: number): PartRun | undefined {
    const i = msn - this.nextMsn;
    if (i < this.pending.length) return this.pending[i];
    return i === this.pending.length ? this.open : undefined;
  }

  /** The part the playlist's preload hint names (or the first of the next segment, which may come instead). */
  private isNextPart(sessionFolder: string, msn: number, index: number): boolean {
    if (this.ended) return false;
    if (this.sessionFolder !== sessionFolder) return false;
    const shown = this.shown;
    const count = shown?.data ? -1 : (shown?.parts.length ?? 0);
    return (msn === this.nextMsn && index === count) || (msn === this.nextMsn + 1 && index === 0);
  }

  /** Something changed: waiters whose playlist or part now exists are answered, oldest first. */
  private changed(): void {
    if (this.waiters.length > 0) {
      const still: Waiter[] = [];
      const ready: Waiter[] = [];
      for (const w of this.waiters) (this.reached(w.msn, w.part) ? ready : still).push(w);
      this.waiters = still;
      for (const w of ready) w.resolve('ready');
    }
    if (this.partWaiters.length > 0) {
      const still: PartWaiter[] = [];
      for (const w of this.partWaiters) {
        const found = this.findPart(w.sessionFolder, w.msn, w.index);
        if (found === 'future') still.push(w);
        else if (found) w.resolve(found);
        // Its segment was listed shorter, or another session began: it never comes.
        else if (w.msn < this.nextMsn || this.sessionFolder !== w.sessionFolder) w.resolve(undefined);
        else still.push(w);
      }
      this.partWaiters = still;
    }
  }
}
