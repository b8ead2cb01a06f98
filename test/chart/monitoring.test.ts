// The chart's monitoring: the PrometheusRule passes `promtool check rules`,
// each alert fires on a bad scenario and stays quiet on a healthy one
// (`promtool test rules` over synthetic series), and the Grafana dashboard
// and the alerts read only metrics (and labels) the code really exports,
// found by reading ingest/, gateway/ and controller/.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify as stringifyYaml } from 'yaml';
import { CHART, CI_VALUES, exportedMetrics, get, metricsIn, parseDocs, render, run, tool, ROOT } from '../../harness/chart-tools.ts';

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; refId: string }>;
  datasource?: { uid: string };
}

const dir = await mkdtemp(join(tmpdir(), 'tteok-monitoring-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const exported = exportedMetrics();
const rule = get(parseDocs(await render({ values: [CI_VALUES['all-features']!] })), 'PrometheusRule') as {
  spec: { groups: Array<{ name: string; rules: AlertRule[] }> };
} & ReturnType<typeof get>;
const alerts = rule.spec.groups.flatMap((g) => g.rules);
const rulesFile = join(dir, 'tteok-rules.yaml');
await writeFile(rulesFile, stringifyYaml(rule.spec));
const dashboard = JSON.parse(readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8')) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string }> };
};
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((q) => ({ panel: p.title, expr: q.expr })));

/** Label names of each exported metric, read from the same object literal as its name. */
function labelNamesOf(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, meta] of exported) {
    const text = readFileSync(join(ROOT, meta.file), 'utf8');
    const at = text.indexOf(`name: '${name}'`);
    const literal = text.slice(at, text.indexOf('registers:', at));
    const m = /labelNames:\s*\[([^\]]*)\]/.exec(literal);
    out.set(name, m ? [...m[1]!.matchAll(/'([a-z_]+)'/g)].map((x) => x[1]!) : []);
  }
  return out;
}
// Labels Prometheus adds to every scraped series (prometheus-operator target labels), and the
// histogram bucket label. A metric's own `namespace` label (the gateway's stream namespace)
// becomes exported_namespace, since the target's namespace label wins.
const TARGET_LABELS = ['namespace', 'pod', 'job', 'instance', 'service', 'container', 'endpoint', 'le'];

t.test('the code exports the metrics this test reads', async (t) => {
  for (const name of ['tteok_ingest_segment_latency_seconds', 'tteok_gateway_segment_latency_seconds', 'tteok_controller_leader'])
    t.ok(exported.has(name), name);
  t.ok(exported.size >= 20, `${exported.size} metrics found in the code`);
});

t.test('promtool check rules accepts the alerts', async (t) => {
  const r = await run(tool('promtool'), ['check', 'rules', rulesFile]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  t.same(alerts.map((a) => a.alert).sort(), [
    'TteokControllerNoLeader',
    'TteokControllerReconcileErrors',
    'TteokLongSegments',
    'TteokRenditionLagging',
    'TteokRtmpsCertificateExpiring',
    'TteokSegmentLatencyHigh',
    'TteokTranscoderSaturated',
    'TteokUploadBacklogGrowing',
    'TteokUploadsFailing',
    'TteokViewerSegmentLatencyHigh',
  ]);
  for (const a of alerts) {
    t.ok(a.labels?.severity, `${a.alert} has a severity`);
    t.equal(a.labels?.team, 'video', `${a.alert} carries additionalLabels`);
    t.ok(a.annotations?.summary && a.annotations.description, `${a.alert} says what is wrong and what to do`);
    t.match(a.expr, /namespace="tteok"/, `${a.alert} is scoped to the release namespace`);
  }
});

t.test('every metric the alerts and the dashboard read is exported by the code', async (t) => {
  for (const { expr, where } of [
    ...alerts.map((a) => ({ expr: a.expr, where: `alert ${a.alert}` })),
    ...queries.map((q) => ({ expr: q.expr, where: `panel "${q.panel}"` })),
  ]) {
    const { used, missing } = metricsIn(expr, exported);
    t.same(missing, [], `${where}: ${[...used].join(', ')}`);
    t.ok(used.size > 0, `${where} reads a tteok metric`);
  }
});

t.test('aggregations group only by labels the metrics carry', async (t) => {
  const labels = labelNamesOf();
  for (const { expr, where } of [
    ...alerts.map((a) => ({ expr: a.expr, where: `alert ${a.alert}` })),
    ...queries.map((q) => ({ expr: q.expr, where: `panel "${q.panel}"` })),
  ]) {
    const { used } = metricsIn(expr, exported);
    const allowed = new Set([...TARGET_LABELS, ...[...used].flatMap((m) => labels.get(m) ?? []).map((l) => (l === 'namespace' ? 'exported_namespace' : l))]);
    for (const m of expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
      for (const l of m[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean))
        t.ok(allowed.has(l), `${where}: "${l}" is a label of ${[...used].join(', ')} or of the scrape`);
    }
  }
});

t.test('the dashboard covers latency (ingest and viewers), uploads, backlog, streams, keyframe warnings, gateway and controller', async (t) => {
  const read = new Set(queries.flatMap((q) => [...metricsIn(q.expr, exported).used]));
  for (const m of [
    'tteok_ingest_segment_latency_seconds',
    'tteok_gateway_segment_latency_seconds',
    'tteok_ingest_upload_failures_total',
    'tteok_ingest_upload_backlog_segments',
    'tteok_ingest_live_streams',
    'tteok_ingest_long_segments_total',
    'tteok_gateway_http_request_duration_seconds',
    'tteok_controller_reconcile_duration_seconds',
    'tteok_controller_reconcile_errors_total',
    'tteok_controller_leader',
    'tteok_ingest_rendition_segment_latency_seconds',
    'tteok_ingest_rendition_segments_missing_total',
    'tteok_transcoder_cpu_seconds_total',
  ])
    t.ok(read.has(m), `a panel shows ${m}`);
  t.equal(dashboard.uid, 'tteok-overview');
  t.same(
    dashboard.templating.list.map((v) => v.name),
    ['datasource', 'namespace'],
  );
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dashboard.panels) {
    t.ok(p.gridPos.x + p.gridPos.w <= 24, `"${p.title}" fits the 24-column grid`);
    if (p.type !== 'row') t.equal(p.datasource?.uid, '${datasource}', `"${p.title}" uses the data source variable`);
  }
});

t.test('every dashboard query is valid PromQL (promtool)', async (t) => {
  // Grafana's variables, as Grafana would substitute them.
  const groups = [
    {
      name: 'dashboard',
      rules: queries.map((q, i) => ({
        record: `tteok:dashboard_query_${i}`,
        expr: q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', '.*'),
      })),
    },
  ];
  const file = join(dir, 'dashboard-queries.yaml');
  await writeFile(file, stringifyYaml({ groups }));
  const r = await run(tool('promtool'), ['check', 'rules', file]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
});

t.test('each alert fires when things go wrong and stays quiet when they do not (promtool test rules)', async (t) => {
  const ns = 'namespace="tteok"';
  const hist = (metric: string, pod: string, fast: boolean, slowBucket: string, buckets: string[]) =>
    buckets.map((le) => ({
      series: `${metric}_bucket{${ns},pod="${pod}",le="${le}"}`,
      // 60 observations a minute: all under the first bucket when fast, all in slowBucket otherwise.
      values: fast || le === '+Inf' || Number(le) >= Number(slowBucket) ? '0+60x30' : '0x30',
    }));
  const scenario = (bad: boolean) => [
    { series: `tteok_controller_leader{${ns},pod="controller-a"}`, values: bad ? '0x30' : '1x30' },
    { series: `tteok_controller_leader{${ns},pod="controller-b"}`, values: '0x30' },
    { series: `tteok_controller_reconcile_errors_total{${ns},pod="controller-a",kind="livestream"}`, values: bad ? '0+5x30' : '0x30' },
    { series: `tteok_ingest_upload_failures_total{${ns},pod="ingest-0",kind="segment",reason="timeout"}`, values: bad ? '0+30x30' : '0x30' },
    { series: `tteok_ingest_upload_backlog_segments{${ns},pod="ingest-0"}`, values: bad ? '20+2x30' : '1x30' },
    { series: `tteok_ingest_long_segments_total{${ns},pod="ingest-0"}`, values: bad ? '0+1x30' : '0x30' },
    // Unix seconds; promtool's clock starts at 0, so at 25m: 3 days left (bad) or 100 days (good).
    {
      series: `tteok_ingest_rtmps_certificate_expiry_timestamp_seconds{${ns},pod="ingest-0"}`,
      values: bad ? `${1500 + 3 * 86400}x30` : `${1500 + 100 * 86400}x30`,
    },
    ...hist('tteok_ingest_segment_latency_seconds', 'ingest-0', !bad, '5', ['0.5', '1', '2', '3', '5', '10', '+Inf']),
    ...hist('tteok_gateway_segment_latency_seconds', 'gateway-a', !bad, '7.5', ['0.5', '1', '2', '4', '5', '7.5', '10', '+Inf']),
    ...hist('tteok_ingest_rendition_segment_latency_seconds', 'ingest-0', !bad, '5', ['0.5', '1', '2', '3', '5', '10', '+Inf']).map((s) => ({
      ...s,
      series: s.series.replace('{', '{rendition="360p",'),
    })),
    { series: `tteok_ingest_rendition_segments_missing_total{${ns},pod="ingest-0",rendition="480p",reason="busy"}`, values: '0x30' },
    { series: `tteok_transcoder_jobs_in_flight{${ns},pod="transcoder-a"}`, values: bad ? '4x30' : '1x30' },
    { series: `tteok_transcoder_requests_total{${ns},pod="transcoder-a",kind="renditions",outcome="ok"}`, values: '0+60x30' },
    { series: `tteok_transcoder_requests_total{${ns},pod="transcoder-a",kind="renditions",outcome="busy"}`, values: '0x30' },
  ];
  const firing = (a: AlertRule) => `count(${a.expr.trim()}) or vector(0)`;
  const tests = [false, true].map((bad) => ({
    interval: '1m',
    input_series: scenario(bad),
    promql_expr_test: alerts.map((a) => ({ expr: firing(a), eval_time: '25m', exp_samples: [{ labels: '{}', value: bad ? 1 : 0 }] })),
  }));
  const file = join(dir, 'alerts-test.yaml');
  await writeFile(file, stringifyYaml({ rule_files: [rulesFile], evaluation_interval: '1m', tests }));
  const r = await run(tool('promtool'), ['test', 'rules', file]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /SUCCESS/);
});

t.test('each of the two conditions of the rendition and transcoder alerts fires alone', async (t) => {
  const ns = 'namespace="tteok"';
  const only = (name: string) => alerts.find((a) => a.alert === name)!;
  const healthyLatency = ['0.5', '1', '2', '3', '5', '10', '+Inf'].map((le) => ({
    series: `tteok_ingest_rendition_segment_latency_seconds_bucket{${ns},pod="ingest-0",rendition="360p",le="${le}"}`,
    values: '0+60x30',
  }));
  const cases: Array<{ what: string; alert: string; series: Array<{ series: string; values: string }>; fires: boolean }> = [
    {
      what: 'segments missing while the latency is fine',
      alert: 'TteokRenditionLagging',
      series: [
        ...healthyLatency,
        { series: `tteok_ingest_rendition_segments_missing_total{${ns},pod="ingest-0",rendition="480p",reason="busy"}`, values: '0+3x30' },
      ],
      fires: true,
    },
    {
      what: 'nothing missing, latency fine',
      alert: 'TteokRenditionLagging',
      series: [
        ...healthyLatency,
        { series: `tteok_ingest_rendition_segments_missing_total{${ns},pod="ingest-0",rendition="480p",reason="busy"}`, values: '0x30' },
      ],
      fires: false,
    },
    {
      what: '503s while the jobs are below the maximum',
      alert: 'TteokTranscoderSaturated',
      series: [
        { series: `tteok_transcoder_jobs_in_flight{${ns},pod="transcoder-a"}`, values: '1x30' },
        { series: `tteok_transcoder_requests_total{${ns},pod="transcoder-a",kind="renditions",outcome="busy"}`, values: '0+2x30' },
      ],
      fires: true,
    },
    {
      what: 'jobs at the maximum only now and then',
      alert: 'TteokTranscoderSaturated',
      series: [
        { series: `tteok_transcoder_jobs_in_flight{${ns},pod="transcoder-a"}`, values: '2 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1 4 4 1' },
        { series: `tteok_transcoder_requests_total{${ns},pod="transcoder-a",kind="renditions",outcome="busy"}`, values: '0x30' },
      ],
      fires: false,
    },
  ];
  const tests = cases.map((c) => ({
    interval: '1m',
    input_series: c.series,
    promql_expr_test: [{ expr: `count(${only(c.alert).expr.trim()}) or vector(0)`, eval_time: '25m', exp_samples: [{ labels: '{}', value: c.fires ? 1 : 0 }] }],
  }));
  const file = join(dir, 'rendition-alerts-test.yaml');
  await writeFile(file, stringifyYaml({ rule_files: [rulesFile], evaluation_interval: '1m', tests }));
  const r = await run(tool('promtool'), ['test', 'rules', file]);
  t.equal(r.code, 0, `${cases.map((c) => `${c.alert}: ${c.what}`).join('; ')}\n${r.stdout}${r.stderr}`);
});
