// The account of what waits to be stored, across streams: segments and init
// segments (each also on the media volume), their bytes, and how many of
// those bytes are held in memory, bounded by TTEOK_UPLOAD_MEMORY_MIB. Each
// stream's upload queue keeps its own waiting objects; this only counts
// them, for the memory bound, the backlog metrics and the high-water warning.
import type { Logger } from '../../common/log.ts';
import type { IngestMetrics } from '../metrics.ts';

export interface UploadBacklogOptions {
  /** Bytes of waiting segments kept in memory; past it a segment waits on the volume only. */
  memoryBytes: number;
  /** A warning is logged above this many waiting segments. */
  warnSegments: number;
  metrics: IngestMetrics;
  log: Logger;
}

/** What the backlog holds of one waiting object; given back when it leaves. */
export interface BacklogEntry {
  bytes: number;
  inMemory: boolean;
}

export class UploadBacklog {
  private segments = 0;
  private bytes = 0;
  private memoryBytes = 0;
  private warned = false;
  private memoryWarned = false;

  constructor(private readonly options: UploadBacklogOptions) {}

  /** Bytes of segments waiting to be stored. */
  get waitingBytes(): number {
    return this.bytes;
  }

  /**
   * An object of `bytes` waits. With `bytesInHand` (handed over by the
   * packager, not found on the volume) its bytes may stay in memory while
   * the bound allows: the entry says whether they do.
   */
  add(bytes: number, bytesInHand: boolean): BacklogEntry {
    const inMemory = bytesInHand && this.memoryBytes + bytes <= this.options.memoryBytes;
    this.segments++;
    this.bytes += bytes;
    if (inMemory) this.memoryBytes += bytes;
    else if (bytesInHand && !this.memoryWarned) {
      this.memoryWarned = true;
      this.options.log.warn(
        { memoryBytes: this.memoryBytes, limit: this.options.memoryBytes },
        'the upload backlog fills its memory (TTEOK_UPLOAD_MEMORY_MIB): further segments wait on the media volume only and are read back from it',
      );
    }
    this.update();
    return { bytes, inMemory };
  }

  /** The object is stored (or gone). */
  remove(entry: BacklogEntry): void {
    this.segments--;
    this.bytes -= entry.bytes;
    if (entry.inMemory) this.memoryBytes -= entry.bytes;
    if (this.memoryWarned && this.memoryBytes <= this.options.memoryBytes / 2) this.memoryWarned = false;
    this.update();
  }

  private update(): void {
    const { metrics, log, warnSegments } = this.options;
    metrics.backlogSegments.set(this.segments);
    metrics.backlogBytes.set(this.bytes);
    if (this.segments >= warnSegments && !this.warned) {
      this.warned = true;
      log.warn(
        { segments: this.segments, bytes: this.bytes },
        'upload backlog is above its high-water mark: the object store is slow or unreachable; segments wait on the media volume',
      );
    } else if (this.segments < warnSegments / 2 && this.warned) {
      this.warned = false;
      log.info({ segments: this.segments }, 'upload backlog is back below its high-water mark');
    }
  }
}
