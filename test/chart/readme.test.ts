// The chart's README (what Artifact Hub shows) is generated from values.yaml's
// `# --` comments and Chart.yaml by test/tools/chart-readme.ts: the committed
// copy must be what the generator renders now, and the generator must read
// comments the way helm-docs does.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { CHART } from '../../harness/chart-tools.ts';
import { renderChartReadme, valueRows } from '../tools/chart-readme.ts';

t.test('charts/tteok/README.md is what test/tools/chart-readme.ts renders from values.yaml', async (t) => {
  const committed = readFileSync(join(CHART, 'README.md'), 'utf8');
  const generated = renderChartReadme();
  if (committed !== generated) {
    const a = committed.split('\n');
    const b = generated.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    t.fail(
      `charts/tteok/README.md is out of date (first difference at line ${at + 1}: committed ${JSON.stringify(a[at])}, generated ${JSON.stringify(b[at])}); run: npx tsx test/tools/chart-readme.ts`,
    );
  } else t.pass('up to date');
});

t.test('every value in values.yaml has a row, with its default', async (t) => {
  const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const rows = valueRows(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
  const keys = new Set(rows.map((r) => r.key));
  // Every leaf is covered: by its own row or by a documented map's row above it.
  const leaves = (o: unknown, prefix: string): string[] =>
    o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length > 0
      ? Object.entries(o).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k))
      : [prefix];
  for (const leaf of leaves(values, '')) {
    const parts = leaf.split('.');
    t.ok(
      parts.some((_, i) => keys.has(parts.slice(0, i + 1).join('.'))),
      `${leaf} is in the table`,
    );
  }
  t.same(
    rows.find((r) => r.key === 'image.registry'),
    { key: 'image.registry', type: 'string', default: 'ghcr.io', description: 'Image registry (empty: the repository is used as is, e.g. a local image).' },
  );
  t.ok(rows.find((r) => r.key === 's3.bucket')?.description, 's3.bucket is described');
  t.ok(rows.find((r) => r.key === 'tests.enabled')?.description, 'tests.enabled is described');
});

t.test('comments are read as helm-docs reads them', async (t) => {
  const rows = valueRows(
    [
      '# A note for readers of the file only.',
      '',
      '# -- Described, over',
      '# two lines.',
      'first: 1',
      'group:',
      '  # -- The first key of a map (the yaml library keeps its comment on the map).',
      '  inner: "x"',
      '  undocumented: true',
      '# Not a description: no "--".',
      '# -- A documented map is one row.',
      'whole:',
      '  a: 1',
      '  b: [2]',
      'list: [1, 2]',
      'nothing: null',
      '',
    ].join('\n'),
  );
  t.same(rows, [
    { key: 'first', type: 'int', default: 1, description: 'Described, over two lines.' },
    { key: 'group.inner', type: 'string', default: 'x', description: 'The first key of a map (the yaml library keeps its comment on the map).' },
    { key: 'group.undocumented', type: 'bool', default: true, description: '' },
    { key: 'whole', type: 'object', default: { a: 1, b: [2] }, description: 'A documented map is one row.' },
    { key: 'list', type: 'list', default: [1, 2], description: '' },
    { key: 'nothing', type: 'null', default: null, description: '' },
  ]);
});
