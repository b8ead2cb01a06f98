// tteok_gateway_http_request_duration_seconds: how long each request took,
// by method, route pattern and status code. It is observed on every request,
// lookups included, so it is kept in plain numbers (a few additions per
// request) and turned into Prometheus samples only when /metrics is scraped.
// prom-client's Histogram builds, validates and hashes the label set on every
// observation, which on the lookup cost more than the lookup itself (issue 11).
// It is declared like a prom-client Histogram, registered in the gateway's
// prom-client registry like any metric, and exported exactly as a prom-client
// Histogram would be (a test compares the two).
import type { Metric, Registry } from 'prom-client';

type Labels = { method: string; route: string; status_code: string };

interface Series {
  labels: Labels;
  /** Observations per bucket (not cumulative); the last one is above every bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

interface Sample {
  metricName: string;
  value: number;
  labels: Record<string, string | number>;
}

/** The same configuration a prom-client Histogram takes, for this one label set. */
export interface RequestDurationHistogramConfig {
  name: string;
  help: string;
  labelNames: readonly ['method', 'route', 'status_code'];
  buckets: readonly number[];
  registers: Registry[];
}

export class RequestDurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: readonly number[];
  /** route pattern → method → status code → series: made once per combination, which the routes bound. */
  private series = new Map<string, Map<string, Map<number, Series>>>();

  constructor(config: RequestDurationHistogramConfig) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = config.buckets;
    // The registry only reads name, help, type and get() (and reset()).
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** One request; `route` is the route pattern, undefined for unknown URLs (`unmatched`), never the URL. */
  observe(method: string, route: string | undefined, statusCode: number, seconds: number): void {
    const pattern = route ?? 'unmatched';
    let byMethod = this.series.get(pattern);
    if (!byMethod) this.series.set(pattern, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let s = byStatus.get(statusCode);
    if (!s) {
      s = { labels: { method, route: pattern, status_code: String(statusCode) }, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      byStatus.set(statusCode, s);
    }
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += seconds;
    s.count++;
  }

  /** The samples, as prom-client's Histogram reports them: cumulative buckets, then +Inf, sum and count. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const byMethod of this.series.values()) {
      for (const byStatus of byMethod.values()) {
        for (const s of byStatus.values()) {
          let cumulative = 0;
          this.bounds.forEach((le, i) => {
            cumulative += s.counts[i]!;
            values.push({ metricName: `${this.name}_bucket`, labels: { le, ...s.labels }, value: cumulative });
          });
          values.push(
            { metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...s.labels }, value: s.count },
            { metricName: `${this.name}_sum`, labels: s.labels, value: s.sum },
            { metricName: `${this.name}_count`, labels: s.labels, value: s.count },
          );
        }
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series = new Map();
  }
}
