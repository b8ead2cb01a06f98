// `kubectl explain livestream.<any field>` prints the field's description from
// the CRD's schema: every property of the LiveStream CRD, spec and status, at
// any depth (through arrays' items too), must have one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../../harness/chart-tools.ts';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}
interface Crd {
  spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> };
}

/** Every property path under `schema` with its schema; array items are written path[]. */
function properties(schema: Schema, path: string): Array<{ path: string; schema: Schema }> {
  const out: Array<{ path: string; schema: Schema }> = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const at = path ? `${path}.${name}` : name;
    out.push({ path: at, schema: child }, ...properties(child, at));
  }
  if (schema.items) out.push(...properties(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object') out.push(...properties(schema.additionalProperties, `${path}{}`));
  return out;
}

const file = 'manifests/crd/livestreams.tteok.dev.yaml';
const crd = parseYaml(readFileSync(join(ROOT, file), 'utf8')) as Crd;

for (const version of crd.spec.versions) {
  t.test(`${version.name}: every field has a description for kubectl explain`, async (t) => {
    const root = version.schema.openAPIV3Schema;
    t.ok(root.description?.trim(), 'the LiveStream itself');
    const all = properties(root, '');
    t.ok(all.length > 40, `${all.length} fields walked`);
    for (const { path } of [{ path: 'spec.hls.segmentSeconds' }, { path: 'status.conditions[].reason' }, { path: 'status.webhookEvents[].data.keyRotation' }]) {
      t.ok(
        all.some((p) => p.path === path),
        `the walk reaches ${path}`,
      );
    }
    // metadata is the exception: the API server refuses a CRD that says anything but its type
    // (kubectl explain prints ObjectMeta's own description). chart-cluster.test.ts installs the CRD.
    t.same(all.find((p) => p.path === 'metadata')?.schema, { type: 'object' }, 'metadata: only its type');
    const missing = all.filter((p) => p.path !== 'metadata' && !p.schema.description?.trim()).map((p) => p.path);
    t.same(missing, [], `fields without a description in ${file} (kubectl explain would print none)`);
  });
}
