// What a registry and Artifact Hub read about tteok, kept true: the LICENSE
// is the Apache-2.0 text package.json and the chart declare; Chart.yaml has
// the metadata Artifact Hub lists a chart with; its artifacthub.io
// annotations name the image the chart deploys by default, the CRD that is in
// manifests/crd and the example that is in manifests/examples; the
// Dockerfile's OCI labels carry the same version, license and source.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { CHART, ROOT } from '../../harness/chart-tools.ts';

interface ChartYaml {
  version: string;
  appVersion: string;
  kubeVersion?: string;
  home?: string;
  sources?: string[];
  icon?: string;
  maintainers?: Array<{ name: string; url?: string; email?: string }>;
  keywords?: string[];
  annotations: Record<string, string>;
}
const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as ChartYaml;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string };
const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { image: { registry: string; repository: string; tag: string } };
const annotation = <T>(name: string): T => {
  const text = chart.annotations[`artifacthub.io/${name}`];
  if (text === undefined) throw new Error(`Chart.yaml has no artifacthub.io/${name} annotation`);
  return parseYaml(text) as T;
};

t.test('LICENSE is the Apache License 2.0, as package.json and the chart declare', async (t) => {
  const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  t.match(license, /^\s*Apache License\s+Version 2\.0, January 2004\s+http:\/\/www\.apache\.org\/licenses\//, 'the Apache 2.0 heading');
  t.match(license, /END OF TERMS AND CONDITIONS/, 'the whole text');
  t.equal(pkg.license, 'Apache-2.0');
  t.equal(chart.annotations['artifacthub.io/license'], pkg.license, "the chart's license annotation");
});

t.test('Chart.yaml has what Artifact Hub lists a chart with', async (t) => {
  t.match(chart.version, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/, 'a SemVer 2 version');
  t.equal(chart.appVersion, pkg.version, 'appVersion is the tteok release (package.json version)');
  t.ok(chart.kubeVersion, 'kubeVersion');
  t.match(chart.home, /^https:\/\//, 'home');
  t.ok(chart.sources?.length && chart.sources.every((s) => s.startsWith('https://')), 'sources');
  t.match(chart.icon, /^https:\/\/.*\.svg$/, 'icon');
  t.ok(chart.maintainers?.length && chart.maintainers.every((m) => m.name), 'maintainers');
  t.ok((chart.keywords?.length ?? 0) >= 3, 'keywords');
  t.ok(readFileSync(join(CHART, 'icon.svg'), 'utf8').includes('<svg'), 'the icon is in the chart directory (the icon URL serves it from the repository)');
  const changes = annotation<Array<{ kind: string; description: string }>>('changes');
  t.ok(
    changes.length > 0 && changes.every((c) => ['added', 'changed', 'deprecated', 'removed', 'fixed', 'security'].includes(c.kind) && c.description),
    'changes: kinds Artifact Hub knows, each described',
  );
  t.ok(
    ['ai-machine-learning', 'database', 'integration-delivery', 'monitoring-logging', 'networking', 'security', 'storage', 'streaming-messaging'].includes(
      chart.annotations['artifacthub.io/category']!,
    ),
    'a category Artifact Hub knows',
  );
});

t.test('the images annotation is the image the chart deploys by default', async (t) => {
  const images = annotation<Array<{ name: string; image: string }>>('images');
  const deployed = `${values.image.registry ? `${values.image.registry}/` : ''}${values.image.repository}:${values.image.tag || chart.appVersion}`;
  t.same(
    images.map((i) => i.image),
    [deployed],
  );
  t.equal(deployed, `ghcr.io/tteok/tteok:${chart.appVersion}`, "the project's image name (README.md, Images and charts)");
});

t.test('the crds annotation lists the CRDs in manifests/crd; crdsExamples is manifests/examples/livestream.yaml', async (t) => {
  const crds = readdirSync(join(ROOT, 'manifests/crd')).map(
    (f) =>
      parseYaml(readFileSync(join(ROOT, 'manifests/crd', f), 'utf8')) as {
        metadata: { name: string };
        spec: { names: { kind: string }; versions: Array<{ name: string; storage: boolean }> };
      },
  );
  const listed = annotation<Array<{ kind: string; version: string; name: string; displayName: string; description: string }>>('crds');
  t.same(
    listed.map((c) => ({ kind: c.kind, version: c.version, name: c.name })),
    crds.map((c) => ({ kind: c.spec.names.kind, version: c.spec.versions.find((v) => v.storage)!.name, name: c.metadata.name })),
  );
  t.ok(
    listed.every((c) => c.displayName && c.description),
    'each with a display name and a description',
  );
  const example = parseYaml(readFileSync(join(ROOT, 'manifests/examples/livestream.yaml'), 'utf8')) as unknown;
  t.same(annotation<unknown[]>('crdsExamples'), [example]);
});

t.test('the Dockerfile labels the image with the OCI annotations, the same version, license and source', async (t) => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const labels = new Map([...dockerfile.matchAll(/(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  for (const name of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source', 'url', 'documentation']) {
    t.ok(labels.has(`org.opencontainers.image.${name}`), `org.opencontainers.image.${name}`);
  }
  t.equal(labels.get('org.opencontainers.image.licenses'), pkg.license);
  t.equal(labels.get('org.opencontainers.image.version'), '${VERSION}');
  t.equal(/^ARG VERSION=(\S+)$/m.exec(dockerfile)?.[1], pkg.version, "ARG VERSION defaults to package.json's version");
  t.equal(labels.get('org.opencontainers.image.source'), chart.sources?.[0], 'the same source as the chart');
  t.match(dockerfile, /COPY [^\n]*LICENSE/, 'the image carries the LICENSE');
});
