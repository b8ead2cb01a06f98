// One client's live-state event stream as a Readable (the response body of
// plugins/events.ts): a queue of what the client is still to get, turned into
// bytes only as the connection takes them. The backlog a new connection
// starts with (the current state, or the events after its Last-Event-ID) can
// be thousands of events; they are the hub's own objects, so queuing them
// costs a reference each, and a client that reads slowly or not at all holds
// at most the stream's high-water mark of rendered bytes, never its whole
// backlog. What a client has not taken yet, queued or buffered, is
// `pendingBytes`; events.ts closes a client once that passes its bound.
import { Readable } from 'node:stream';
import type { LiveStateEvent } from './live-state-events.ts';

/** A literal text (the retry field, a reset, a heartbeat) or an event the hub made. */
export type QueuedItem = string | LiveStateEvent;

/** Rendered bytes buffered per stream before it waits for the connection to take them. */
const HIGH_WATER_MARK = 64 * 1024;
/** An event's `id:`, `event:` and `data:` field names and its id, beside the data: an upper estimate. */
const EVENT_FRAME_OVERHEAD = 64;

/** About how many bytes an item becomes (exact for ASCII; bodies are JSON, mostly ASCII). */
export function itemSize(item: QueuedItem): number {
  return typeof item === 'string' ? item.length : item.data.length + EVENT_FRAME_OVERHEAD;
}

export class EventStreamBody extends Readable {
  private readonly queue: QueuedItem[];
  /** Index of the next item to hand out; the items before it are taken (cleared in batches). */
  private head = 0;
  private queuedBytes = 0;
  /** The consumer asked for data (`_read`) and has not been given any since. */
  private wanted = false;
  private finishing = false;
  private pushedEnd = false;

  /** `initial` is adopted, not copied: the caller gives up the array. */
  constructor(
    private readonly render: (e: LiveStateEvent) => string,
    initial: QueuedItem[] = [],
  ) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.queue = initial;
    for (const item of initial) this.queuedBytes += itemSize(item);
  }

  /** Bytes accepted for the client that it has not taken from this stream: queued, plus rendered and buffered here. */
  get pendingBytes(): number {
    return this.queuedBytes + this.readableLength;
  }

  enqueue(item: QueuedItem): void {
    if (this.finishing || this.destroyed) return;
    this.queue.push(item);
    this.queuedBytes += itemSize(item);
    this.flush();
  }

  /** Ends the stream once what is queued has been taken. */
  finish(): void {
    this.finishing = true;
    this.flush();
  }

  override _read(): void {
    this.wanted = true;
    this.flush();
  }

  private flush(): void {
    while (this.wanted && this.head < this.queue.length && !this.destroyed) {
      const item = this.queue[this.head]!;
      this.head += 1;
      this.queuedBytes -= itemSize(item);
      this.wanted = this.push(typeof item === 'string' ? item : this.render(item));
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      if (this.finishing && !this.pushedEnd && !this.destroyed) {
        this.pushedEnd = true;
        this.push(null);
      }
    } else if (this.head >= 1024) {
      // Drop the references to what was taken, so a long backlog is freed as it goes.
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
