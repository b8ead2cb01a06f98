// The chart's ingest.publishLimits reach the ingest: rendered with helm, the
// StatefulSet's environment loaded by the ingest's own config loader gives
// the code's defaults, and values set at install are what the code runs with;
// the values schema refuses a limit outside the range the code accepts.
import t from 'tap';
import { loadIngestConfig } from '../../ingest/config.ts';
import { DEFAULT_PUBLISH_LIMITS } from '../../ingest/packager/publish-limits.ts';
import { CI_VALUES, get, helmTemplate, parseDocs, render, type K8sObject } from '../../harness/chart-tools.ts';

const REQUIRED = CI_VALUES['default']!;

function ingestEnvironment(objs: K8sObject[]): Record<string, string> {
  const env: Record<string, string> = { ...((get(objs, 'ConfigMap', 't-tteok-config').data ?? {}) as Record<string, string>) };
  const spec = (get(objs, 'StatefulSet').spec as { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } }).template
    .spec;
  for (const e of spec.containers[0]!.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

t.test("the defaults the chart sets are the code's own", async (t) => {
  const env = ingestEnvironment(parseDocs(await render({ values: [REQUIRED] })));
  for (const name of ['TTEOK_MAX_GOP_SECONDS', 'TTEOK_MAX_FRAGMENT_MIB', 'TTEOK_MAX_AHEAD_SEGMENTS']) t.ok(name in env, `the ingest gets ${name}`);
  t.same(loadIngestConfig(env).publishLimits, DEFAULT_PUBLISH_LIMITS);
});

t.test('values set at install are what the ingest runs with', async (t) => {
  const objs = parseDocs(
    await render({
      values: [REQUIRED],
      set: ['ingest.publishLimits.maxGopSeconds=20', 'ingest.publishLimits.maxFragmentMiB=256', 'ingest.publishLimits.maxAheadSegments=5'],
    }),
  );
  t.same(loadIngestConfig(ingestEnvironment(objs)).publishLimits, { maxGopSeconds: 20, maxFragmentBytes: 256 * 1024 * 1024, maxAheadSegments: 5 });
});

t.test('the schema refuses a limit the code would refuse', async (t) => {
  for (const set of ['ingest.publishLimits.maxGopSeconds=5', 'ingest.publishLimits.maxFragmentMiB=1', 'ingest.publishLimits.maxAheadSegments=0']) {
    const r = await helmTemplate({ values: [REQUIRED], set: [set] });
    t.not(r.code, 0, `${set} is refused`);
    t.match(r.stderr, /publishLimits/, 'naming the value');
  }
  const r = await helmTemplate({ values: [REQUIRED], set: ['ingest.publishLimits.maxFragmentMiB=16', 'ingest.rtmp.maxMessageBytes=16777215'] });
  t.not(r.code, 0, 'a fragment bound that two of the largest messages do not fit in is refused');
  t.match(r.stderr, /ingest\.publishLimits\.maxFragmentMiB \(16\) must hold at least two of the largest RTMP messages/);
});
