// Generates charts/tteok/README.md (the page Artifact Hub shows) from
// charts/tteok/README.md.tmpl, Chart.yaml and the comments in values.yaml, as
// helm-docs does: a comment starting with `# --` right above a key is that
// key's description (continued by the comment lines after it); text above the
// `--` is a note for readers of values.yaml only. Every leaf value gets a row
// (key, type, default, description); a map with a description of its own is
// one row with its whole default. test/chart/readme.test.ts fails when the
// committed README differs from what this renders.
//
//   npx tsx test/tools/chart-readme.ts          rewrite charts/tteok/README.md
//   npx tsx test/tools/chart-readme.ts --check  change nothing; exit 1 if it is out of date
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isSeq, parse as parseYaml, parseDocument, type Pair, type YAMLMap } from 'yaml';

const CHART = join(fileURLToPath(import.meta.url), '..', '..', '..', 'charts', 'tteok');

export interface ValueRow {
  key: string;
  type: string;
  default: unknown;
  description: string;
}

/** The `-- ` part of a comment block (as the yaml library gives it: '#' removed), one line. */
function description(comment: string | null | undefined): string | undefined {
  if (!comment) return undefined;
  const lines = comment.split('\n').map((l) => l.replace(/^ /, ''));
  const start = lines.findIndex((l) => l.startsWith('-- '));
  if (start < 0) return undefined;
  return lines
    .slice(start)
    .map((l, i) => (i === 0 ? l.slice(3) : l).trim())
    .filter(Boolean)
    .join(' ');
}

function typeOf(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  return typeof value === 'boolean' ? 'bool' : 'string';
}

/** Every documented or leaf value of values.yaml, in file order. */
export function valueRows(valuesYaml: string): ValueRow[] {
  const doc = parseDocument(valuesYaml);
  const rows: ValueRow[] = [];
  const walk = (map: YAMLMap, prefix: string, inherited: string | null | undefined): void => {
    map.items.forEach((item, index) => {
      const pair = item as Pair<{ value: unknown; commentBefore?: string | null }, unknown>;
      const key = `${prefix}${String(pair.key.value)}`;
      // The yaml library keeps a map's first key's comment on the map itself.
      const text = description(pair.key.commentBefore ?? (index === 0 ? inherited : undefined));
      const value = pair.value as { toJSON?: () => unknown; commentBefore?: string | null } | null;
      const plain = value && typeof value.toJSON === 'function' ? value.toJSON() : ((value as { value?: unknown } | null)?.value ?? null);
      if (isMap(value) && value.items.length > 0 && text === undefined) {
        walk(value, `${key}.`, value.commentBefore);
        return;
      }
      rows.push({ key, type: typeOf(isSeq(value) ? [] : plain), default: plain, description: text ?? '' });
    });
  };
  walk(doc.contents as YAMLMap, '', (doc.contents as YAMLMap).commentBefore);
  return rows;
}

/** A table cell: pipes escaped, and angle brackets, which Markdown would take for HTML tags. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function valuesTable(rows: ValueRow[]): string {
  const lines = ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| ${cell(r.key)} | ${r.type} | \`${JSON.stringify(r.default).replace(/\|/g, '\\|')}\` | ${cell(r.description)} |`);
  return lines.join('\n');
}

/** The README as it should be, from the chart directory's files. */
export function renderChartReadme(chartDir = CHART): string {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const template = readFileSync(join(chartDir, 'README.md.tmpl'), 'utf8');
  const fields: Record<string, string> = {
    name: String(chart.name),
    version: String(chart.version),
    appVersion: String(chart.appVersion),
    kubeVersion: String(chart.kubeVersion),
    description: String(chart.description),
    home: String(chart.home),
    values: valuesTable(valueRows(readFileSync(join(chartDir, 'values.yaml'), 'utf8'))),
  };
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, name: string) => {
    if (!(name in fields)) throw new Error(`README.md.tmpl: unknown field ${whole}`);
    return fields[name]!;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = join(CHART, 'README.md');
  const want = renderChartReadme();
  if (process.argv.includes('--check')) {
    const have = readFileSync(path, 'utf8');
    if (have !== want) {
      console.error('chart-readme: charts/tteok/README.md is out of date; run: npx tsx test/tools/chart-readme.ts');
      process.exit(1);
    }
    console.log('chart-readme: up to date');
  } else {
    writeFileSync(path, want);
    console.log('chart-readme: wrote charts/tteok/README.md');
  }
}
