// The ingest's renditions and thumbnails across runs: the hub's runs announce
// their source segments here (RunContext.onSourceSegment), each run gets a
// RenditionDriver of its own on its first segment (encoding the presets its
// LiveStream asked for when the run began, StreamSettings.renditions, into
// the run's packager), closed once the run has settled. One encoder (local
// ffmpeg or the transcoder role) serves every run.
import type { Logger } from '../../common/log.ts';
import type { StreamRef } from '../../common/livestream.ts';
import { RenditionDriver, type RenditionSink, type SourceSegmentEvent } from './rendition-driver.ts';
import type { RenditionEncoder } from './rendition-encoder.ts';
import type { RenditionMetrics } from './rendition-metrics.ts';
import type { ThumbnailSink } from './thumbnail-store.ts';

/** What a driver needs of a run (StreamRun). */
export interface RenditionRun extends RenditionSink {
  readonly ref: StreamRef;
  readonly settings: { renditions: readonly string[] };
  readonly settled: Promise<void>;
}

export interface RunRenditionsOptions {
  encoder: RenditionEncoder;
  /** Thumbnails every `intervalMs`; omitted (TTEOK_THUMBNAIL_SECONDS=0): none. */
  thumbnails?: { intervalMs: number; sink: ThumbnailSink };
  metrics: RenditionMetrics;
  log: Logger;
}

export class RunRenditions {
  private readonly drivers = new Map<RenditionRun, RenditionDriver>();
  private closed = false;

  constructor(private readonly options: RunRenditionsOptions) {}

  /** RunContext.onSourceSegment: returns at once. */
  readonly onSourceSegment = (run: RenditionRun, segment: SourceSegmentEvent): void => {
    if (this.closed) return;
    let driver = this.drivers.get(run);
    if (!driver) {
      if (run.settings.renditions.length === 0 && !this.options.thumbnails) return;
      driver = new RenditionDriver({
        ref: run.ref,
        renditions: run.settings.renditions,
        encoder: this.options.encoder,
        sink: run,
        ...(this.options.thumbnails ? { thumbnails: this.options.thumbnails } : {}),
        metrics: this.options.metrics,
        log: this.options.log,
      });
      this.drivers.set(run, driver);
      const started = driver;
      void run.settled.then(async () => {
        this.drivers.delete(run);
        await started.close();
      });
    }
    driver.onSourceSegment(segment);
  };

  /** Runs with a driver now (for tests and metrics). */
  get activeRuns(): number {
    return this.drivers.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.drivers.values()].map((d) => d.close()));
    this.drivers.clear();
    await this.options.encoder.close();
  }
}
