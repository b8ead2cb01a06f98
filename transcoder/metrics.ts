// The transcoder's Prometheus metrics (prefix tteok_transcoder_). Its CPU
// counts ffmpeg's: the kernel adds each reaped child's usage to the process's
// (common/transcode/process-cpu.ts), which is what a ladder costs.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ownCpuSeconds, reapedChildrenCpuSeconds } from '../common/transcode/process-cpu.ts';

const JOB_BUCKETS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 20, 30, 60];

export class TranscoderMetrics {
  readonly registry = new Registry();

  readonly cpuSeconds = new Counter({
    name: 'tteok_transcoder_cpu_seconds_total',
    help: 'CPU seconds (user + system) of the transcoder process and of the ffmpeg jobs it has run, since start.',
    registers: [this.registry],
    collect() {
      // The kernel's running totals, read at each scrape (they only grow).
      this.reset();
      this.inc(ownCpuSeconds() + reapedChildrenCpuSeconds());
    },
  });

  readonly jobsInFlight = new Gauge({
    name: 'tteok_transcoder_jobs_in_flight',
    help: 'ffmpeg jobs running now (at most TTEOK_TRANSCODER_MAX_JOBS).',
    registers: [this.registry],
  });

  readonly jobDuration = new Histogram({
    name: 'tteok_transcoder_job_duration_seconds',
    help: 'Wall-clock time of one job (ffmpeg started to outputs ready), by kind and outcome.',
    labelNames: ['kind', 'outcome'] as const,
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  });

  readonly requests = new Counter({
    name: 'tteok_transcoder_requests_total',
    help: 'Encoding requests answered, by kind (renditions, thumbnail) and outcome (ok, busy, refused, timeout, error).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tteok_transcoder_' });
  }
}
