// The origin latency benchmark's verdict: our p95 (storing into SeaweedFS)
// against nginx-rtmp's (writing to local disk) in the same run, with the
// issue's target of at most 100 ms more.
import { fmt } from './stats.ts';

export const ORIGIN_P95_MARGIN_MS = 100;

export interface LatencySummary {
  system: string;
  samples: number[];
  median: number;
  p95: number;
}

/** The table rows: each system, then ours − peer. */
export function originTableRows(peer: LatencySummary, ours: LatencySummary): string[][] {
  const signed = (ms: number) => (Number.isFinite(ms) && ms >= 0 ? `+${fmt(ms)}` : fmt(ms));
  return [
    [peer.system, String(peer.samples.length), fmt(peer.median), fmt(peer.p95)],
    [ours.system, String(ours.samples.length), fmt(ours.median), fmt(ours.p95)],
    ['ours − nginx-rtmp', '', signed(ours.median - peer.median), signed(ours.p95 - peer.p95)],
  ];
}

/** One line: the target, the figures it was judged on, met or NOT met (n/a without samples on either side). */
export function originVerdict(peer: LatencySummary, ours: LatencySummary): string {
  const target = `Target: p95 ≤ nginx-rtmp's p95 + ${ORIGIN_P95_MARGIN_MS} ms, storing into S3 (SeaweedFS)`;
  if (!Number.isFinite(peer.p95) || !Number.isFinite(ours.p95)) return `${target} → n/a (a system listed no segment)`;
  const over = ours.p95 - peer.p95;
  const met = over <= ORIGIN_P95_MARGIN_MS;
  return `${target} → ${met ? 'met' : 'NOT met'} (ours ${fmt(ours.p95)} ms, at most ${fmt(peer.p95 + ORIGIN_P95_MARGIN_MS)} ms allowed: ${over >= 0 ? '+' : ''}${fmt(over)} ms over nginx-rtmp)`;
}

/**
 * The media time at which each newly listed segment ends: the sum of the
 * durations of every segment up to it. Segments that left the playlist's
 * window before a poll saw them (a slow first store) are still media the
 * publisher sent: counted by their media sequence numbers, each as long as
 * the next one seen. Without that, every later segment would seem to end
 * that much earlier, and so to be listed that much later.
 */
export class MediaClock {
  private endSeconds = 0;
  private lastSequence = -1;

  /** The segment's end, in seconds of media from the publisher's start. */
  segmentEnds(sequence: number, duration: number): number {
    const missed = Math.max(0, sequence - this.lastSequence - 1);
    this.lastSequence = Math.max(this.lastSequence, sequence);
    this.endSeconds += (missed + 1) * duration;
    return this.endSeconds;
  }
}
