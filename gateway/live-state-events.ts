// Live-state events: what changed in the stream view, as numbered events.
// On every change of the view the current lookup body of each stream is
// compared with the one seen before: a stream that turned live is a `live`
// event, one that stopped an `offline` event, any other change to its body
// (title, access, phase, …) a `changed` event, and a stream that is gone a
// `deleted` event. The most recent events are kept in a bounded ring for
// `Last-Event-ID` resume. The HTTP side (Server-Sent Events) is
// plugins/events.ts.
//
// Ids are `<epoch>-<seq>`: `seq` increases by one per event; `epoch` names
// this gateway process, so an id handed out by another replica or before a
// restart is recognised as not resumable here (the client then gets the
// current state instead of a wrong replay).
import { randomBytes } from 'node:crypto';
import { streamId } from '../common/livestream.ts';
import type { StreamState, StreamView } from '../common/stream-view.ts';

export type LiveStateEventName = 'live' | 'offline' | 'changed' | 'deleted';

export interface LiveStateEvent {
  seq: number;
  event: LiveStateEventName;
  namespace: string;
  name: string;
  /** The stream's lookup body (JSON); `{ namespace, name }` for `deleted`. */
  data: string;
}

/** Which streams a subscriber wants: all, one namespace, or one stream. */
export interface EventFilter {
  namespace?: string | undefined;
  name?: string | undefined;
}

export function matches(filter: EventFilter, e: { namespace: string; name: string }): boolean {
  return (filter.namespace === undefined || e.namespace === filter.namespace) && (filter.name === undefined || e.name === filter.name);
}

interface Seen {
  namespace: string;
  name: string;
  live: boolean;
  body: string;
}

export class LiveStateEvents {
  /** This process's part of every id. */
  readonly epoch = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  private seq = 0;
  /** The most recent events, oldest first, at most `bufferSize`. */
  private readonly ring: LiveStateEvent[] = [];
  /** Every stream's state as last seen, in namespace/name order: what `current` answers, shared by every connection. */
  private seen = new Map<string, Seen>();
  private readonly listeners = new Set<(event: LiveStateEvent) => void>();

  constructor(
    private readonly view: StreamView,
    /** The stream's lookup body, exactly as an unauthenticated lookup answers it. */
    private readonly body: (state: StreamState) => string,
    private readonly bufferSize: number,
  ) {
    this.rebaseline();
  }

  /** The id of the newest event (`<epoch>-0` before any). */
  get headId(): string {
    return this.idOf(this.seq);
  }

  idOf(seq: number): string {
    return `${this.epoch}-${seq}`;
  }

  /**
   * Takes the view as it is now as the state seen, without events: at start,
   * and when the gateway starts listening (local playback URLs carry its port,
   * so every body changes then without anything a viewer would call a change).
   */
  rebaseline(): void {
    const seen = new Map<string, Seen>();
    for (const s of this.sortedStates()) seen.set(streamId(s), { namespace: s.namespace, name: s.name, live: s.live, body: this.body(s) });
    this.seen = seen;
  }

  private sortedStates(): StreamState[] {
    return this.view.list().sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }

  /** Compares the view with what was seen and emits an event per stream that changed. */
  update(): void {
    const next = new Map<string, Seen>();
    for (const s of this.sortedStates()) {
      const id = streamId(s);
      const now: Seen = { namespace: s.namespace, name: s.name, live: s.live, body: this.body(s) };
      next.set(id, now);
      const before = this.seen.get(id);
      if (before && before.body === now.body) {
        next.set(id, before); // the same string, so one copy of each body is kept
        continue;
      }
      const event: LiveStateEventName = now.live && !before?.live ? 'live' : !now.live && before?.live ? 'offline' : 'changed';
      this.emit(event, s.namespace, s.name, now.body);
    }
    for (const [id, before] of this.seen) {
      if (next.has(id)) continue;
      const { namespace, name } = before;
      this.emit('deleted', namespace, name, JSON.stringify({ namespace, name }));
    }
    this.seen = next;
  }

  /** Calls `listener` for every new event until the returned function is called. */
  subscribe(listener: (event: LiveStateEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The current state of every matching stream as events: `live` for a live
   * stream, `changed` for any other, all with the newest id, so a client that
   * reconnects after them resumes from here. The bodies are the hub's own
   * strings (the state as of the newest event), not copies per connection.
   */
  current(filter: EventFilter): LiveStateEvent[] {
    const events: LiveStateEvent[] = [];
    for (const s of this.seen.values()) {
      if (matches(filter, s)) events.push({ seq: this.seq, event: s.live ? 'live' : 'changed', namespace: s.namespace, name: s.name, data: s.body });
    }
    return events;
  }

  /**
   * The matching events after `lastEventId`, or undefined when they cannot
   * all be given: an id of another gateway process or a malformed one, or one
   * older than the ring (events after it were dropped).
   */
  since(lastEventId: string, filter: EventFilter): LiveStateEvent[] | undefined {
    const match = /^([a-z0-9]+)-(\d{1,15})$/.exec(lastEventId.trim());
    if (!match || match[1] !== this.epoch) return undefined;
    const last = Number(match[2]);
    if (last > this.seq) return undefined;
    if (last === this.seq) return [];
    const oldest = this.ring[0]?.seq;
    if (oldest === undefined || oldest > last + 1) return undefined;
    return this.ring.filter((e) => e.seq > last && matches(filter, e));
  }

  private emit(event: LiveStateEventName, namespace: string, name: string, data: string): void {
    const e: LiveStateEvent = { seq: ++this.seq, event, namespace, name, data };
    this.ring.push(e);
    if (this.ring.length > this.bufferSize) this.ring.shift();
    for (const listener of this.listeners) {
      try {
        listener(e);
      } catch {
        // one subscriber's failure is its own
      }
    }
  }
}
