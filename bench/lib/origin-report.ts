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
