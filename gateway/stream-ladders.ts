// The renditions of each live stream's adaptive ladder, as the playlist
// follower last read them from the stream's stored `index.m3u8` (a
// multivariant playlist: common/multivariant-playlist.ts). The lookup lists
// them; a stream without a ladder, or not live, has none. Listeners hear of a
// change only when a stream's list really changed, so the lookup's cached
// bodies and the live-state events are redone once per ladder, not per poll.
import { streamId, type StreamRef } from '../common/livestream.ts';
import type { Variant } from '../common/multivariant-playlist.ts';

/** A rendition as the lookup answers it: the variant without its URI. */
export interface Rendition {
  name: string;
  bandwidth: number;
  codecs: string[];
  averageBandwidth?: number;
  resolution?: { width: number; height: number };
  frameRate?: number;
}

export function renditionOf(v: Variant): Rendition {
  return {
    // The lookup's serializer writes the required fields first: so does this
    // (the live-state events carry JSON.stringify's bytes of the same body).
    name: v.name,
    bandwidth: v.bandwidth,
    codecs: v.codecs,
    ...(v.averageBandwidth !== undefined ? { averageBandwidth: v.averageBandwidth } : {}),
    ...(v.resolution ? { resolution: { width: v.resolution.width, height: v.resolution.height } } : {}),
    ...(v.frameRate !== undefined ? { frameRate: v.frameRate } : {}),
  };
}

const NONE: readonly Rendition[] = Object.freeze([]);

export class StreamLadders {
  private readonly ladders = new Map<string, { renditions: readonly Rendition[]; text: string }>();
  private readonly listeners: Array<() => void> = [];

  /** The stream's renditions in the playlist's order (`source` first); empty without a ladder. */
  get(ref: StreamRef): readonly Rendition[] {
    return this.ladders.get(streamId(ref))?.renditions ?? NONE;
  }

  /** What the stream's `index.m3u8` says now: its variants, or none (a media playlist). */
  set(ref: StreamRef, variants: readonly Variant[]): void {
    const id = streamId(ref);
    if (variants.length === 0) {
      this.clear(ref);
      return;
    }
    const renditions = variants.map(renditionOf);
    const text = JSON.stringify(renditions);
    if (this.ladders.get(id)?.text === text) return;
    this.ladders.set(id, { renditions, text });
    this.changed();
  }

  /** The stream is no longer followed (it ended), or has no ladder. */
  clear(ref: StreamRef): void {
    if (this.ladders.delete(streamId(ref))) this.changed();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's failure is its own
      }
    }
  }
}
