// Follows the playlist of every live stream the way a viewer does: over HTTP,
// through its playback URL (the CDN in production, the gateway's own /origin/
// in the one-machine mode), every `intervalMs`. For each segment seen for the
// first time it records how late it became visible to viewers:
//
//   now - (EXT-X-PROGRAM-DATE-TIME + segment duration)
//
// i.e. from the last frame of the segment arriving at the ingest to the
// segment being listed by a playlist a viewer can fetch. The polling interval
// adds up to one interval of delay, as it does for a viewer.
//
// The segments already listed the first time a stream's playlist is fetched
// are taken as a baseline, not observed: how long they have been visible is
// unknown. (When following starts before the run's first playlist exists,
// which is the usual case since a stream is live from the publish, the
// baseline is empty and every segment is observed.)
//
// A stream with an adaptive ladder has a multivariant playlist at its
// playback URL: the follower then reads the variant named `source` (the run's
// timeline; its segments are the ones every rendition follows) for the
// metrics, and hands the variants to `ladders`, which the lookup lists. The
// multivariant playlist changes rarely, so once a stream has one it is read
// again only every LADDER_REFRESH_MS (or when the source's playlist is gone).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common/log.ts';
import { streamId, type StreamRef } from '../common/livestream.ts';
import { parseMediaPlaylist } from '../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../common/multivariant-playlist.ts';
import { SOURCE_RENDITION } from '../common/renditions.ts';
import type { StreamView } from '../common/stream-view.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { StreamLadders } from './stream-ladders.ts';

/** How often a stream's multivariant playlist is read again once known. */
const LADDER_REFRESH_MS = 5_000;

export interface FollowerOptions {
  view: StreamView;
  playbackUrl: (ref: StreamRef) => string;
  metrics: GatewayMetrics;
  /** Where the renditions of each followed stream's ladder are kept for the lookup. */
  ladders: StreamLadders;
  intervalMs: number;
  log: Logger;
  fetchTimeoutMs?: number;
}

interface Followed {
  ref: StreamRef;
  stop: AbortController;
  done: Promise<void>;
}

export class PlaylistFollower {
  private readonly followed = new Map<string, Followed>();
  private running = false;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: FollowerOptions) {}

  start(): void {
    if (this.running || this.options.intervalMs <= 0) return;
    this.running = true;
    this.options.view.onChange(() => this.reconcile());
    this.reconcile();
    // Also reconcile periodically: cheap, and robust to a view that changes without telling.
    this.sweepTimer = setInterval(() => {
      this.reconcile();
      this.options.metrics.releaseEnded();
    }, 5_000);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.sweepTimer);
    const all = [...this.followed.values()];
    this.followed.clear();
    for (const f of all) f.stop.abort();
    await Promise.all(all.map((f) => f.done));
  }

  private reconcile(): void {
    if (!this.running) return;
    const live = new Map<string, StreamRef>();
    for (const s of this.options.view.list()) if (s.live) live.set(streamId(s), { namespace: s.namespace, name: s.name });
    for (const [id, f] of this.followed) {
      if (!live.has(id)) {
        this.followed.delete(id);
        f.stop.abort();
        this.options.metrics.streamEnded(f.ref);
        this.options.ladders.clear(f.ref);
      }
    }
    for (const [id, ref] of live) {
      if (this.followed.has(id)) continue;
      const stop = new AbortController();
      this.options.metrics.streamFollowed(ref);
      const f: Followed = { ref, stop, done: this.follow(ref, stop.signal) };
      this.followed.set(id, f);
    }
  }

  private async follow(ref: StreamRef, signal: AbortSignal): Promise<void> {
    const { intervalMs, metrics, ladders, log } = this.options;
    const url = this.options.playbackUrl(ref);
    const timeoutMs = this.options.fetchTimeoutMs ?? Math.max(2000, intervalMs * 4);
    let seen: Set<string> | undefined;
    /** The source's media playlist when `url` is multivariant, and when that was last read. */
    let source: { url: string; readAt: number } | undefined;
    while (!signal.aborted) {
      const started = Date.now();
      const fetchSignal = () => AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
      let result: FetchResult;
      if (source && started - source.readAt < LADDER_REFRESH_MS) {
        result = await fetchPlaylist(source.url, fetchSignal());
        if (!result.ok) source = undefined; // read the multivariant playlist again next time
      } else {
        result = await fetchPlaylist(url, fetchSignal());
        if (result.ok && isMultivariant(result.text)) {
          const ladder = readLadder(result.text, url);
          if (ladder.ok) {
            ladders.set(ref, ladder.variants);
            source = { url: ladder.sourceUrl, readAt: started };
            result = signal.aborted ? result : await fetchPlaylist(source.url, fetchSignal());
          } else result = { ok: false, reason: ladder.reason };
        } else if (result.ok) {
          ladders.clear(ref);
          source = undefined;
        }
      }
      if (signal.aborted) break;
      if (result.ok) {
        const now = Date.now();
        const { segments } = parseMediaPlaylist(result.text);
        if (seen !== undefined) {
          for (const s of segments) {
            if (!seen.has(s.uri) && s.programDateTime !== undefined) {
              metrics.observeSegment(ref, (now - (s.programDateTime + s.duration * 1000)) / 1000);
            }
          }
        }
        seen = new Set(segments.map((s) => s.uri));
        const newest = segments.at(-1);
        if (newest?.programDateTime !== undefined) metrics.setNewestSegmentEnd(ref, newest.programDateTime + newest.duration * 1000);
      } else {
        metrics.followFailures.inc({ reason: result.reason });
        // No playlist yet: every segment that appears from now on is new.
        if (result.reason === 'not_found' && seen === undefined) seen = new Set();
        log.debug({ stream: streamId(ref), reason: result.reason }, 'could not fetch a live playlist');
      }
      // Until the next poll, or until following stops (the abort is the way out, not a failure).
      await sleep(Math.max(0, intervalMs - (Date.now() - started)), undefined, { signal }).catch(() => undefined);
    }
  }
}

type Ladder = { ok: true; variants: ReturnType<typeof parseMultivariantPlaylist>; sourceUrl: string } | { ok: false; reason: string };

/** The variants of a multivariant playlist fetched from `url`, and the absolute URL of its `source` variant. */
function readLadder(text: string, url: string): Ladder {
  let variants: ReturnType<typeof parseMultivariantPlaylist>;
  try {
    variants = parseMultivariantPlaylist(text);
  } catch {
    return { ok: false, reason: 'not_a_playlist' };
  }
  const source = variants.find((v) => v.name === SOURCE_RENDITION);
  if (!source) return { ok: false, reason: 'no_source_variant' };
  // Relative to the playlist's URL, so a private stream's token path carries over.
  return { ok: true, variants, sourceUrl: new URL(source.uri, url).href };
}

type FetchResult = { ok: true; text: string } | { ok: false; reason: string };

async function fetchPlaylist(url: string, signal: AbortSignal): Promise<FetchResult> {
  try {
    const res = await fetch(url, { signal });
    if (res.status === 404 || res.status === 403) {
      await res.body?.cancel();
      return { ok: false, reason: 'not_found' };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { ok: false, reason: res.status >= 500 ? 'http_5xx' : 'http_4xx' };
    }
    const text = await res.text();
    if (!text.startsWith('#EXTM3U')) return { ok: false, reason: 'not_a_playlist' };
    return { ok: true, text };
  } catch (error) {
    const name = (error as Error).name;
    return { ok: false, reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network' };
  }
}
