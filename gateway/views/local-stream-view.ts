// The StreamView of the one-machine mode (and of a standalone gateway before
// the Kubernetes view exists): the streams of the local key file, reloaded
// when it changes, combined with the live state an ingest in the same process
// reports. Everything is kept in memory; requests never read the file.
//
// Phase: Disabled when the LiveStream has enabled=false, Live while a run is
// live (from the publish being accepted until its playlist ends, reconnects
// within the grace period included), Ready otherwise. Without live events (a
// standalone gateway) nothing is ever Live.
import type { Logger } from '../../common/log.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import type { LiveEvents, StreamState, StreamView } from '../../common/stream-view.ts';
import { FileKeySource } from '../../common/keys/file-key-source.ts';
import type { KeySource } from '../../common/keys/key-source.ts';

export interface LocalStreamViewOptions {
  /** The streams: a KeySource (its streams() only; keys are never looked at). */
  keys: KeySource;
  /** Live state from an ingest in the same process. */
  live?: LiveEvents;
}

export class LocalStreamView implements StreamView {
  private states = new Map<string, StreamState>();
  /** Streams live now, with the time their run began. */
  private readonly liveSince = new Map<string, Date>();
  private readonly listeners: Array<() => void> = [];
  private readonly keys: KeySource;
  private readonly initial: Promise<void>;
  private isSynced = false;
  private closed = false;

  constructor(options: LocalStreamViewOptions) {
    this.keys = options.keys;
    options.live?.onLiveChange((ref, live, since) => {
      if (this.closed) return;
      if (live) this.liveSince.set(streamId(ref), since ?? new Date());
      else this.liveSince.delete(streamId(ref));
      this.rebuild();
    });
    this.keys.onChange(() => {
      if (!this.closed) this.rebuild();
    });
    this.initial = this.keys.ready().then(() => {
      this.rebuild();
      this.isSynced = true;
    });
    // ready() reports a failed first load; avoid an unhandled rejection meanwhile.
    this.initial.catch(() => undefined);
  }

  /** A view of the LiveStreams in a key file, watched for changes. */
  static fromFile(path: string, log: Logger, live?: LiveEvents): LocalStreamView {
    return new LocalStreamView({ keys: new FileKeySource(path, log), ...(live ? { live } : {}) });
  }

  get synced(): boolean {
    return this.isSynced;
  }

  ready(): Promise<void> {
    return this.initial;
  }

  list(): StreamState[] {
    return [...this.states.values()];
  }

  get(ref: StreamRef): StreamState | undefined {
    return this.states.get(streamId(ref));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.keys.close();
  }

  private rebuild(): void {
    const next = new Map<string, StreamState>();
    const grants = [...this.keys.streams()].sort((a, b) => streamId(a.ref).localeCompare(streamId(b.ref)));
    for (const { ref, settings } of grants) {
      const id = streamId(ref);
      const since = this.liveSince.get(id);
      const state: StreamState = {
        namespace: ref.namespace,
        name: ref.name,
        title: settings.title,
        phase: !settings.enabled ? 'Disabled' : since ? 'Live' : 'Ready',
        live: since !== undefined,
        access: settings.access,
      };
      if (since) state.liveSince = since.toISOString();
      next.set(id, state);
    }
    this.states = next;
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's failure is its own business
      }
    }
  }
}
