// Where the ingest learns which stream keys are valid and which LiveStream
// each one publishes to. Lookups are synchronous, served from memory that the
// implementation keeps in sync (a watched file here, an informer on the key
// hashes in LiveStream status in Kubernetes), so accepting a publish never
// waits on a backend.
import { randomBytes } from 'node:crypto';
import { streamId, type StreamRef, type StreamSettings } from '../livestream.ts';

export interface StreamGrant {
  ref: StreamRef;
  settings: StreamSettings;
}

export interface KeySource {
  /** The stream a key publishes to, or undefined for an unknown key. Disabled streams are returned with enabled=false. */
  lookup(key: string): StreamGrant | undefined;
  /** Every stream this source knows, enabled or not. */
  streams(): StreamGrant[];
  /** The stream's grant (its settings), or undefined for a stream this source does not know. */
  grantOf(ref: StreamRef): StreamGrant | undefined;
  /** Called after every change, so live publishes can be re-checked (a rotated key, a disabled stream). */
  onChange(listener: () => void): void;
  /** Resolves once the first full view is loaded. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Keys are URL- and path-safe tokens; anything else is refused before a lookup. */
export const STREAM_KEY_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

export function isWellFormedKey(key: string): boolean {
  return STREAM_KEY_PATTERN.test(key);
}

/** 192 random bits, URL-safe: 32 characters of A-Z a-z 0-9 _ - (STREAM_KEY_PATTERN). */
export function newStreamKey(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The in-memory table both key sources keep: key → grant, replaced whole on
 * every change, and the listeners told about it. Subclasses only fill it.
 */
export abstract class GrantTable implements KeySource {
  protected grants = new Map<string, StreamGrant>();
  /** The same grants by stream ("<namespace>/<name>"): asked on every upload. */
  private byStream = new Map<string, StreamGrant>();
  private readonly listeners: Array<() => void> = [];

  lookup(key: string): StreamGrant | undefined {
    return this.grants.get(key);
  }

  streams(): StreamGrant[] {
    return [...this.grants.values()];
  }

  grantOf(ref: StreamRef): StreamGrant | undefined {
    return this.byStream.get(streamId(ref));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  protected replaceGrants(next: Map<string, StreamGrant>, notify: boolean): void {
    this.grants = next;
    this.byStream = new Map([...next.values()].map((g) => [streamId(g.ref), g]));
    if (notify) for (const l of this.listeners) l();
  }

  abstract ready(): Promise<void>;
  abstract close(): Promise<void>;
}
