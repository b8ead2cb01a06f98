// The density table as `make bench` prints it: each row's CPU per stream
// beside its ratio to nginx-rtmp's at the same stream count, and whether the
// issue's targets are met — CPU per stream to S3 ≤ 1.0 % of a core (about 2×
// nginx-rtmp; the goal beyond is 1.5×) and memory ≤ 5 MiB per stream.
import { fmt, ratio } from './stats.ts';

/**
 * What a density row measured: the peer, our ingest with either store (to S3
 * also under the profiler, which costs CPU itself: the targets are judged on
 * the run without it; or another build or configuration of it,
 * BENCH_DENSITY_COMPARE), or the
 * reference design.
 */
export type DensityKind = 'nginx-rtmp' | 'tteok-s3' | 'tteok-s3-variant' | 'tteok-s3-profiled' | 'tteok-local' | 'reference';

export interface DensityRow {
  system: string;
  kind: DensityKind;
  streams: number;
  /** % of one core per stream. */
  cpuPerStream: number;
  memPerStreamMiB: number;
  stalledStreams: number;
  /** Our ingest's full (mark-compact) garbage collections per second in the window, from its own metrics. */
  fullGcPerSecond?: number;
}

export const DENSITY_TARGETS = {
  /** % of one core per stream, storing into S3. */
  cpuPerStream: 1.0,
  memPerStreamMiB: 5,
} as const;

export const DENSITY_HEADER = [
  'system',
  'streams',
  'CPU/stream',
  'vs nginx-rtmp',
  'MiB/stream',
  'stalled',
  `CPU ≤ ${DENSITY_TARGETS.cpuPerStream.toFixed(1)} %`,
  `MiB ≤ ${DENSITY_TARGETS.memPerStreamMiB}`,
];

const peerOf = (rows: DensityRow[], n: number) => rows.find((r) => r.kind === 'nginx-rtmp' && r.streams === n);

/** "met" or "NOT met"; a run in which a stream stalled meets nothing, its per-stream figures describe less work. */
function verdict(row: DensityRow, met: boolean): string {
  if (row.stalledStreams > 0) return `NOT met (${row.stalledStreams} stalled)`;
  return met ? 'met' : 'NOT met';
}

/** The table's rows, in the order measured; the target columns only for our ingest storing into S3, which the targets are about. */
export function densityTableRows(rows: DensityRow[]): string[][] {
  return rows.map((r) => {
    const peer = peerOf(rows, r.streams);
    const vsPeer = r.kind === 'nginx-rtmp' ? '1×' : peer ? ratio(r.cpuPerStream, peer.cpuPerStream) : 'n/a';
    const targets =
      r.kind === 'tteok-s3'
        ? [verdict(r, r.cpuPerStream <= DENSITY_TARGETS.cpuPerStream), verdict(r, r.memPerStreamMiB <= DENSITY_TARGETS.memPerStreamMiB)]
        : ['', ''];
    return [r.system, String(r.streams), fmt(r.cpuPerStream, 2, ' %'), vsPeer, fmt(r.memPerStreamMiB, 2), String(r.stalledStreams), ...targets];
  });
}

/** The lines under the table: each target at each count, and what storing into S3 costs beside the local store. */
export function densitySummary(rows: DensityRow[]): string[] {
  const ours = rows.filter((r) => r.kind === 'tteok-s3');
  if (ours.length === 0) return [];
  const at = (pick: (r: DensityRow) => string) => ours.map((r) => `${pick(r)} at ${r.streams}`).join(', ');
  const lines = [
    `Target CPU per stream to S3 ≤ ${DENSITY_TARGETS.cpuPerStream.toFixed(1)} % of a core: ${at((r) => `${verdict(r, r.cpuPerStream <= DENSITY_TARGETS.cpuPerStream)} (${fmt(r.cpuPerStream, 2, ' %')})`)}.`,
    `Target memory ≤ ${DENSITY_TARGETS.memPerStreamMiB} MiB per stream: ${at((r) => `${verdict(r, r.memPerStreamMiB <= DENSITY_TARGETS.memPerStreamMiB)} (${fmt(r.memPerStreamMiB, 2)} MiB)`)}.`,
    `CPU per stream against nginx-rtmp in the same run: ${at((r) => {
      const peer = peerOf(rows, r.streams);
      return peer ? ratio(r.cpuPerStream, peer.cpuPerStream) : 'n/a';
    })} (the 1.0 % target is about 2×; the goal beyond it is 1.5×).`,
  ];
  const clean = ours.filter((r) => r.stalledStreams === 0).map((r) => r.streams);
  lines.push(`Largest stream count with no stalled stream (tteok to S3): ${clean.length ? Math.max(...clean) : 'none'}; target ≥ 50 on 2 cores.`);
  for (const local of rows.filter((r) => r.kind === 'tteok-local')) {
    // Like for like: the local store's run is profiled, so the S3 run compared is the profiled one if there is one.
    const s3 = rows.find((r) => r.kind === 'tteok-s3-profiled' && r.streams === local.streams) ?? ours.find((r) => r.streams === local.streams);
    if (!s3) continue;
    const extra = s3.cpuPerStream - local.cpuPerStream;
    lines.push(
      `Storing into S3 instead of the local store at ${local.streams} streams: ${fmt(extra, 2, ' %')} of a core per stream more (${s3.cpuPerStream > 0 ? fmt((extra / s3.cpuPerStream) * 100, 0, ' %') : 'n/a'} of the S3 run's CPU; measured one after the other, so noise on a shared machine falls on the difference).`,
    );
  }
  const collected = rows.filter((r) => r.fullGcPerSecond !== undefined);
  if (collected.length > 0) {
    lines.push(
      `Full (mark-compact) garbage collections per second in the ingest during the window: ${collected.map((r) => `${fmt(r.fullGcPerSecond!, 2)} (${r.system}, ${r.streams})`).join('; ')}.`,
    );
  }
  return lines;
}
