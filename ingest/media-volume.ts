// How full the media volume is, and what the ingest does about it. The volume
// is the queue between packager and uploader; while the object store is down
// it only grows, and whatever else shares it (logs, another container) can
// fill it too. Two thresholds, both percentages of the volume (statfs):
//
// - above the high-water mark, new publishes are refused and /readyz says
//   not ready, so the LoadBalancer sends new streamers to other pods while
//   the streams already live here go on;
// - above the full mark (the backlog bound), live streams' new segments are
//   skipped (counted, and the playlist marks the gap with a discontinuity):
//   what is left of the volume is the reserve for the small files that must
//   never be lost — playlists, init segments, journals.
//
// An emptyDir on the node's disk has a sizeLimit the filesystem knows nothing
// about (the kubelet evicts the pod, and deletes the volume, past it): with
// `volumeBytes` set, use is also measured as the bytes under the media
// directory against that size, and the fuller of the two counts. Walking the
// directory costs a listing of every stream's folders, so it is done once a
// minute (and after any failed write); in between, the bytes under it are the
// last walk's plus the upload backlog's growth since, which is what fills it.
import { lstat, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/log.ts';
import type { IngestMetrics } from './metrics.ts';

/** What a stream's packager needs from the volume. */
export interface MediaVolumeGuard {
  /** False above the full mark: a new segment is skipped rather than written. */
  acceptsSegments(): boolean;
  /** A write failed: look at the volume again now rather than at the next poll. */
  writeFailed(): void;
}

export interface MediaVolumeOptions {
  dir: string;
  highWaterPercent: number;
  fullPercent: number;
  metrics: IngestMetrics;
  log: Logger;
  /** The volume's size when the filesystem cannot tell (an emptyDir's sizeLimit). */
  volumeBytes?: number | undefined;
  /** How often the volume is measured. */
  intervalMs?: number;
  /** Bytes of segments waiting to be stored (the uploader's backlog), for the estimate between walks. */
  backlogBytes?: () => number;
}

/** How often the media directory is walked to count its bytes, when `volumeBytes` is set. */
const WALK_INTERVAL_MS = 60_000;

export class MediaVolume implements MediaVolumeGuard {
  private usedPercent = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private aboveHighWater = false;
  private aboveFull = false;
  /** The last walk of the media directory: when, its bytes, and the backlog's bytes then. */
  private walk: { at: number; bytes: number; backlog: number } | undefined;

  constructor(private readonly options: MediaVolumeOptions) {}

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** False while the volume is above the high-water mark: refuse new publishes, report not ready. */
  admitsPublishes(): boolean {
    return !this.aboveHighWater;
  }

  acceptsSegments(): boolean {
    return !this.aboveFull;
  }

  writeFailed(): void {
    this.walk = undefined;
    void this.check();
  }

  /** Why the ingest is not ready, when the volume is the reason. */
  notReadyReason(): string | undefined {
    return this.aboveHighWater ? `media volume is ${this.usedPercent.toFixed(1)}% full (high-water mark ${this.options.highWaterPercent}%)` : undefined;
  }

  /** Measures the volume (one measurement at a time). */
  check(): Promise<void> {
    this.checking ??= this.measure().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** Bytes under the media directory: walked at most once a WALK_INTERVAL_MS (or after a failed write), estimated in between. */
  private async bytesOfOurs(): Promise<number> {
    const backlog = this.options.backlogBytes?.() ?? 0;
    const now = Date.now();
    if (!this.walk || !this.options.backlogBytes || now - this.walk.at >= WALK_INTERVAL_MS) {
      this.walk = { at: now, bytes: await bytesUnder(this.options.dir), backlog };
      return this.walk.bytes;
    }
    return Math.max(0, this.walk.bytes + backlog - this.walk.backlog);
  }

  private async measure(): Promise<void> {
    const { dir, metrics, log, highWaterPercent, fullPercent } = this.options;
    let used: number;
    let size: number;
    try {
      const s = await statfs(dir);
      used = (s.blocks - s.bfree) * s.bsize;
      // As df computes it: the blocks reserved for root are not ours to use.
      size = used + s.bavail * s.bsize;
      this.usedPercent = size > 0 ? (100 * used) / size : 100;
      const budget = this.options.volumeBytes;
      if (budget !== undefined) {
        const ours = await this.bytesOfOurs();
        const percent = (100 * ours) / budget;
        if (percent >= this.usedPercent) {
          this.usedPercent = percent;
          used = ours;
          size = budget;
        }
      }
    } catch (error) {
      log.error({ dir, err: error }, 'cannot measure the media volume');
      return;
    }
    metrics.mediaVolumeUsedBytes.set(used);
    metrics.mediaVolumeSizeBytes.set(size);
    // Each state clears only once use is HYSTERESIS_POINTS below its mark, so
    // readiness and segment gaps do not flap with every file written or stored.
    const aboveHighWater = this.usedPercent >= (this.aboveHighWater ? highWaterPercent - HYSTERESIS_POINTS : highWaterPercent);
    const aboveFull = this.usedPercent >= (this.aboveFull ? fullPercent - HYSTERESIS_POINTS : fullPercent);
    if (aboveHighWater !== this.aboveHighWater) {
      if (aboveHighWater)
        log.warn(
          { usedPercent: round(this.usedPercent), highWaterPercent },
          'media volume above its high-water mark: refusing new publishes and reporting not ready until it drains',
        );
      else log.info({ usedPercent: round(this.usedPercent), highWaterPercent }, 'media volume drained below its high-water mark: accepting publishes again');
    }
    if (aboveFull !== this.aboveFull) {
      if (aboveFull)
        log.error(
          { usedPercent: round(this.usedPercent), fullPercent },
          'media volume full: live streams skip new segments (each gap is marked with a discontinuity) until it drains',
        );
      else log.info({ usedPercent: round(this.usedPercent), fullPercent }, 'media volume has room again: live streams write segments again');
    }
    this.aboveHighWater = aboveHighWater;
    this.aboveFull = aboveFull;
    metrics.mediaVolumeAboveHighWater.set(aboveHighWater ? 1 : 0);
  }
}

/** How far below a mark the volume must drain before the mark's state clears. */
const HYSTERESIS_POINTS = 5;

function round(percent: number): number {
  return Math.round(percent * 10) / 10;
}

/** Bytes allocated to files under a directory, as du (and the kubelet's emptyDir accounting) counts them. */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesUnder(path);
    else
      total += await lstat(path).then(
        (s) => s.blocks * 512,
        () => 0,
      );
  }
  return total;
}
