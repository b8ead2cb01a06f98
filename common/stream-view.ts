// What the gateway knows about streams: a watch-backed, in-memory view of
// every LiveStream with its live state. The local implementation combines
// the key file with the ingest's live events; the Kubernetes one is an
// informer on LiveStreams. Requests are served from memory, never from a
// backend call.
import type { StreamRef } from './livestream.ts';
import type { PlaybackAccess } from './playback-token.ts';

export type StreamPhase = 'Pending' | 'Ready' | 'Live' | 'Disabled' | 'Error';

export interface StreamState {
  namespace: string;
  name: string;
  title: string;
  phase: StreamPhase;
  live: boolean;
  /** `private`: playable only with a playback token. Both views always set it (absent reads as public). */
  access?: PlaybackAccess;
  /** ISO time the current live run began, when live. */
  liveSince?: string;
}

export interface StreamView {
  list(): StreamState[];
  get(ref: StreamRef): StreamState | undefined;
  /** True once the first full view is loaded (the gateway's /readyz). */
  readonly synced: boolean;
  ready(): Promise<void>;
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

/** Live-state changes as an ingest in the same process sees them (the local mode). */
export interface LiveEvents {
  onLiveChange(listener: (ref: StreamRef, live: boolean, since: Date | undefined) => void): void;
}
