// The chart against a real Kubernetes API server (harness/kube.ts):
//
// - kubeconform -strict validates every render, and manifests/install.yaml,
//   against JSON schemas generated here from that server's own OpenAPI
//   (/openapi/v2), with the LiveStream CRD and the monitoring.coreos.com CRDs
//   (ServiceMonitor, PodMonitor, PrometheusRule; generated from
//   prometheus-operator's Go types by build-binaries.sh) installed first, so
//   every kind the chart renders has a schema: nothing is skipped;
// - `kubectl apply --server-side --dry-run=server` of every render, so
//   admission and the server's validation pass too;
// - a real `helm install`, then `kubectl auth can-i` as each component's
//   service account (least privilege, enforced by RBAC), `helm upgrade` with a
//   changed CRD (the CRD on the server changes), and `helm uninstall` (the CRD
//   stays);
// - `kubectl explain` printing the CRD's field descriptions;
// - the example LiveStreams against the CRD.
import { mkdtemp, readFile, readdir, rm, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { httpsGet, startKubeApiServer } from '../../harness/kube.ts';
import { CACHE, CHART, CI_VALUES, NAMESPACE, ROOT, get, parseDocs, render, run, runOk, tool, type K8sObject } from '../../harness/chart-tools.ts';
import { waitFor } from '../../harness/wait.ts';

const kube = await startKubeApiServer();
t.teardown(() => kube.stop());
const dir = await mkdtemp(join(tmpdir(), 'tteok-chart-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const kubectl = (...args: string[]) => run(tool('kubectl'), ['--kubeconfig', kube.kubeconfigPath, ...args]);
const kubectlOk = (...args: string[]) => runOk(tool('kubectl'), ['--kubeconfig', kube.kubeconfigPath, ...args]);
const helm = (...args: string[]) =>
  run(tool('helm'), ['--kubeconfig', kube.kubeconfigPath, ...args], {
    env: { HELM_CACHE_HOME: join(dir, 'helm-cache'), HELM_CONFIG_HOME: join(dir, 'helm-config'), HELM_DATA_HOME: join(dir, 'helm-data') },
  });

// Renders to files, for kubeconform and kubectl.
const renders: Record<string, string> = {};
for (const [name, file] of Object.entries(CI_VALUES)) {
  renders[name] = join(dir, `${name}.yaml`);
  await writeFile(renders[name], await render({ values: [file] }));
}
renders['install.yaml'] = join(ROOT, 'manifests/install.yaml');

// The CRDs the renders need: the chart's own, and prometheus-operator's.
const monitoringCrds = join(CACHE, 'crds', 'monitoring.coreos.com');
const monitoringFiles = (
  await readdir(monitoringCrds).catch(() => {
    throw new Error(`${monitoringCrds} is missing; run: bash test/tools/build-binaries.sh monitoring-crds`);
  })
).filter((f) => /_(servicemonitors|podmonitors|prometheusrules)\.yaml$/.test(f));
await kubectlOk('apply', '--server-side', ...monitoringFiles.flatMap((f) => ['-f', join(monitoringCrds, f)]));
await kubectlOk(
  'wait',
  '--for=condition=Established',
  '--timeout=60s',
  'crd/servicemonitors.monitoring.coreos.com',
  'crd/podmonitors.monitoring.coreos.com',
  'crd/prometheusrules.monitoring.coreos.com',
);
for (const ns of [NAMESPACE, 'streams']) await kubectlOk('create', 'namespace', ns);

// ---------------------------------------------------------------------------
// JSON schemas for kubeconform, from the server's OpenAPI v2, in the layout
// kubeconform reads: <kind>-<group prefix>-<version>.json ({{ .ResourceKind }}{{ .KindSuffix }}).

type Json = Record<string, unknown>;
interface OpenApiV2 {
  definitions: Record<string, Json & { 'x-kubernetes-group-version-kind'?: Array<{ group: string; version: string; kind: string }> }>;
}

/** kubeconform's strict mode: objects with declared properties accept no others (as its openapi2jsonschema does); int-or-string as either. */
function strictify(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictify);
  if (!node || typeof node !== 'object') return node;
  const n = node as Json;
  if (n.format === 'int-or-string') return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  const out: Json = {};
  for (const [k, v] of Object.entries(n)) {
    if (k === '$ref' && typeof v === 'string') out[k] = v.replace('#/definitions/', '#/definitions/');
    else if (k === 'properties' && v && typeof v === 'object') out[k] = Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, strictify(s)]));
    else out[k] = strictify(v);
  }
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

function refsOf(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) node.forEach((x) => refsOf(x, into));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node as Json)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/definitions/')) into.add(v.slice('#/definitions/'.length));
      else refsOf(v, into);
    }
  }
}

const kindSuffix = (group: string, version: string) => (group === '' ? `-${version}` : `-${group.split('.')[0]!.toLowerCase()}-${version}`);

const schemaDir = join(dir, 'schemas');
const ambiguous = new Set<string>();
/** Writes the schemas; called once the LiveStream CRD is on the server (the helm install test puts it there). */
async function generateSchemas(): Promise<number> {
  const openapiRes = await httpsGet(`${kube.url}/openapi/v2`, { token: kube.token, ...(kube.caCert ? { ca: kube.caCert } : {}) });
  if (openapiRes.status !== 200) throw new Error(`/openapi/v2 answered ${openapiRes.status}`);
  const openapi = JSON.parse(openapiRes.body) as OpenApiV2;
  await runOk('mkdir', ['-p', schemaDir]);
  const schemaFiles = new Map<string, string>(); // file name -> definition name
  for (const [defName, def] of Object.entries(openapi.definitions)) {
    for (const gvk of def['x-kubernetes-group-version-kind'] ?? []) {
      if (!(def.properties as Json | undefined)?.metadata && gvk.kind.endsWith('List')) continue;
      const file = `${gvk.kind.toLowerCase()}${kindSuffix(gvk.group, gvk.version)}.json`;
      const seen = schemaFiles.get(file);
      if (seen && seen !== defName) ambiguous.add(file);
      schemaFiles.set(file, defName);
    }
  }
  for (const [file, defName] of schemaFiles) {
    if (ambiguous.has(file)) continue;
    // The definition and every definition it reaches, in one self-contained file.
    const reach = new Set<string>([defName]);
    const queue = [defName];
    while (queue.length > 0) {
      const refs = new Set<string>();
      refsOf(openapi.definitions[queue.pop()!], refs);
      for (const r of refs)
        if (!reach.has(r)) {
          reach.add(r);
          queue.push(r);
        }
    }
    const definitions = Object.fromEntries([...reach].map((n) => [n, strictify(openapi.definitions[n])]));
    await writeFile(
      join(schemaDir, file),
      JSON.stringify({ $schema: 'http://json-schema.org/draft-04/schema#', ...(strictify(openapi.definitions[defName]) as Json), definitions }),
    );
  }
  return schemaFiles.size - ambiguous.size;
}

const kubeconform = (files: string[]) =>
  run(tool('kubeconform'), [
    '-strict',
    '-summary',
    '-output',
    'json',
    '-schema-location',
    join(schemaDir, '{{ .ResourceKind }}{{ .KindSuffix }}.json'),
    ...files,
  ]);

interface KubeconformReport {
  resources?: Array<{ filename: string; kind: string; name: string; status: string; msg: string }>;
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

t.test('helm install, least privilege as each service account, CRD upgrade, uninstall keeps the CRD', async (t) => {
  t.not((await kubectl('get', 'crd', 'livestreams.tteok.dev')).code, 0, 'no LiveStream CRD before the install');
  const install = await helm('install', 't', CHART, '--namespace', NAMESPACE, '--values', CI_VALUES['default']!);
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, /STATUS: deployed/);
  await kubectlOk('wait', '--for=condition=Established', '--timeout=60s', 'crd/livestreams.tteok.dev');
  t.equal(
    (await kubectlOk('get', 'statefulset', 't-tteok-ingest', '-n', NAMESPACE, '-o', 'jsonpath={.spec.replicas}')).trim(),
    '1',
    'the StatefulSet starts at 1; the controller scales it',
  );
  t.equal(
    (
      await kubectlOk('get', 'service', 't-tteok-ingest', '-n', NAMESPACE, '-o', 'jsonpath={.spec.type} {.spec.externalTrafficPolicy} {.spec.ports[0].port}')
    ).trim(),
    'LoadBalancer Local 1935',
  );

  // RBAC as the API server enforces it, for each component's service account.
  const can = async (sa: string, verb: string, resource: string, ns?: string): Promise<boolean> => {
    const [res, sub] = resource.split('/') as [string, string | undefined];
    const r = await kubectl(
      'auth',
      'can-i',
      verb,
      res,
      ...(sub ? [`--subresource=${sub}`] : []),
      `--as=system:serviceaccount:${NAMESPACE}:t-tteok-${sa}`,
      ...(ns ? ['-n', ns] : ['--all-namespaces']),
    );
    if (!['yes', 'no'].includes(r.stdout.trim())) throw new Error(`kubectl auth can-i: ${r.stdout}${r.stderr}`);
    return r.stdout.trim() === 'yes';
  };
  const allowed: Array<[string, string, string, string?]> = [
    ['controller', 'watch', 'livestreams.tteok.dev'],
    ['controller', 'patch', 'livestreams.tteok.dev'],
    ['controller', 'patch', 'livestreams.tteok.dev/status'],
    ['controller', 'update', 'livestreams.tteok.dev/finalizers'],
    ['controller', 'create', 'secrets'],
    ['controller', 'delete', 'secrets'],
    ['controller', 'create', 'events'],
    ['controller', 'update', 'leases', NAMESPACE],
    ['controller', 'watch', 'leases', NAMESPACE],
    ['controller', 'watch', 'statefulsets', NAMESPACE],
    ['controller', 'patch', 'statefulsets/scale', NAMESPACE],
    ['controller', 'get', 'secrets'],
    ['controller', 'list', 'secrets'],
    ['controller', 'watch', 'secrets'],
    ['controller', 'update', 'secrets'],
    ['ingest', 'list', 'livestreams.tteok.dev'],
    ['ingest', 'watch', 'livestreams.tteok.dev'],
    ['ingest', 'get', 'leases', NAMESPACE],
    ['ingest', 'create', 'leases', NAMESPACE],
    ['ingest', 'delete', 'leases', NAMESPACE],
    ['gateway', 'watch', 'livestreams.tteok.dev'],
    // The LL origin follows the claim Leases to find the ingest holding a stream (issue 20): read only, its release's namespace only.
    ['gateway', 'get', 'leases', NAMESPACE],
    ['gateway', 'list', 'leases', NAMESPACE],
    ['gateway', 'watch', 'leases', NAMESPACE],
  ];
  const denied: Array<[string, string, string, string?]> = [
    ['controller', 'create', 'livestreams.tteok.dev'],
    ['controller', 'delete', 'livestreams.tteok.dev'],
    ['controller', 'update', 'livestreams.tteok.dev'],
    ['controller', 'get', 'configmaps'],
    ['controller', 'create', 'pods'],
    ['controller', 'update', 'statefulsets', NAMESPACE],
    ['controller', 'update', 'leases', 'default'],
    ['controller', 'delete', 'leases', NAMESPACE],
    ['controller', 'patch', 'statefulsets/scale', 'default'],
    ['controller', 'update', 'statefulsets/status', NAMESPACE],
    ['controller', 'escalate', 'clusterroles.rbac.authorization.k8s.io'],
    ['controller', 'patch', 'secrets'],
    ['controller', 'deletecollection', 'secrets'],
    // The internet-facing ingest reads no Secret anywhere: not the key Secrets, not its own namespace's.
    ...(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const).flatMap(
      (verb): Array<[string, string, string, string?]> => [
        ['ingest', verb, 'secrets'],
        ['ingest', verb, 'secrets', 'streams'],
        ['ingest', verb, 'secrets', NAMESPACE],
        ['ingest', verb, 'secrets', 'default'],
      ],
    ),
    // The transcoder decodes untrusted media: its service account may do nothing at all.
    ['transcoder', 'list', 'livestreams.tteok.dev'],
    ['transcoder', 'get', 'secrets', NAMESPACE],
    ['transcoder', 'get', 'leases', NAMESPACE],
    ['transcoder', 'list', 'pods', NAMESPACE],
    ['transcoder', 'get', 'configmaps', NAMESPACE],
    ['ingest', 'get', 'livestreams.tteok.dev'],
    ['ingest', 'patch', 'livestreams.tteok.dev'],
    ['ingest', 'create', 'leases', 'default'],
    ['ingest', 'create', 'events'],
    ['ingest', 'patch', 'livestreams.tteok.dev/status'],
    ['gateway', 'get', 'secrets'],
    ['gateway', 'patch', 'livestreams.tteok.dev'],
    ['gateway', 'create', 'leases', NAMESPACE],
    ['gateway', 'update', 'leases', NAMESPACE],
    ['gateway', 'patch', 'leases', NAMESPACE],
    ['gateway', 'delete', 'leases', NAMESPACE],
    ['gateway', 'get', 'leases', 'default'],
  ];
  const results = await Promise.all([...allowed, ...denied].map(([sa, verb, res, ns]) => can(sa, verb, res, ns)));
  allowed.forEach(([sa, verb, res, ns], i) => t.ok(results[i], `${sa} may ${verb} ${res}${ns ? ` in ${ns}` : ''}`));
  denied.forEach(([sa, verb, res, ns], i) => t.notOk(results[allowed.length + i], `${sa} may not ${verb} ${res}${ns ? ` in ${ns}` : ' anywhere'}`));

  // A new chart version whose CRD gained a printer column: `helm upgrade` delivers it.
  const chart2 = join(dir, 'chart-v2');
  await cp(CHART, chart2, { recursive: true });
  const crdPath = join(chart2, 'files/crds/livestreams.tteok.dev.yaml');
  const crd = parseYaml(await readFile(crdPath, 'utf8')) as { spec: { versions: Array<{ additionalPrinterColumns: Json[] }> } };
  crd.spec.versions[0]!.additionalPrinterColumns.push({ name: 'Upgraded', type: 'string', jsonPath: '.spec.title', priority: 1 });
  await writeFile(crdPath, stringifyYaml(crd));
  const printerColumns = async () => kubectlOk('get', 'crd', 'livestreams.tteok.dev', '-o', 'jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}');
  // Meanwhile the controller scaled the ingest (through the scale subresource, as it does).
  await kubectlOk('scale', 'statefulset', 't-tteok-ingest', '-n', NAMESPACE, '--replicas=3');
  const upgrade = await helm('upgrade', 't', chart2, '--namespace', NAMESPACE, '--values', CI_VALUES['default']!);
  t.equal(upgrade.code, 0, upgrade.stderr);
  t.match(await printerColumns(), /Upgraded/, 'the upgraded CRD is on the server');
  t.equal(
    (await kubectlOk('get', 'statefulset', 't-tteok-ingest', '-n', NAMESPACE, '-o', 'jsonpath={.spec.replicas}')).trim(),
    '3',
    "helm upgrade leaves the controller's ingest replicas alone",
  );

  const uninstall = await helm('uninstall', 't', '--namespace', NAMESPACE);
  t.equal(uninstall.code, 0, uninstall.stderr);
  t.equal(
    (await kubectl('get', 'crd', 'livestreams.tteok.dev', '-o', 'name')).stdout.trim(),
    'customresourcedefinition.apiextensions.k8s.io/livestreams.tteok.dev',
    'the CRD (and every LiveStream) survives helm uninstall',
  );
  t.not((await kubectl('get', 'deployment', 't-tteok-controller', '-n', NAMESPACE)).code, 0, 'the workloads are gone');

  // A CRD someone applied with kubectl (manifests/crd, server-side) over the kept one:
  // kubectl now owns its fields, so the chart takes them back with --force-conflicts
  // (once; README says so).
  await kubectlOk('apply', '--server-side', '--force-conflicts', '-f', join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml'));
  t.notMatch(await printerColumns(), /Upgraded/, 'kubectl put the original CRD back');
  const plain = await helm('install', 't', chart2, '--namespace', NAMESPACE, '--values', CI_VALUES['default']!);
  t.not(plain.code, 0, 'a plain install stops at the conflict');
  t.match(plain.stderr, /conflict with "kubectl"/, 'and names the manager that owns the fields');
  const forced = await helm('upgrade', '--install', 't', chart2, '--namespace', NAMESPACE, '--values', CI_VALUES['default']!, '--force-conflicts');
  t.equal(forced.code, 0, forced.stderr);
  t.match(await printerColumns(), /Upgraded/, "the chart's CRD is on the server again");
  t.equal((await helm('uninstall', 't', '--namespace', NAMESPACE)).code, 0);
});

t.test('kubectl explain describes LiveStream fields, spec and status (the CRD the install left)', async (t) => {
  // The server publishes a CRD's OpenAPI a moment after it is Established.
  const explain = (field: string) =>
    waitFor(
      `kubectl explain ${field}`,
      async () => {
        const r = await kubectl('explain', field);
        return r.code === 0 && /DESCRIPTION:/.test(r.stdout) ? r.stdout : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
  t.match(await explain('livestream.spec.hls'), /How the stream is cut into HLS segments/);
  t.match(await explain('livestream.spec.retention.keepAfterEnd'), /Keep the stored segments/);
  t.match(await explain('livestream.status.phase'), /Pending: the stream key is being made/);
  t.match(await explain('livestream.status.conditions.reason'), /CamelCase/);
  t.match(await explain('livestream.status.webhookEvents.data.keyRotation'), /spec\.keyRotation/);
});

t.test("kubeconform -strict: every render and install.yaml is valid against the server's schemas, nothing skipped", async (t) => {
  const count = await generateSchemas();
  t.ok(count > 100, `${count} schemas from the server's /openapi/v2`);
  for (const [name, file] of Object.entries(renders)) {
    const r = await kubeconform([file]);
    const report = JSON.parse(r.stdout) as KubeconformReport;
    const kinds = parseDocs(await readFile(file, 'utf8')).map((o) => `${o.apiVersion} ${o.kind}`);
    for (const k of new Set(kinds)) {
      const [apiVersion, kind] = k.split(' ') as [string, string];
      const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
      const file = `${kind.toLowerCase()}${kindSuffix(group, version)}`;
      t.notOk(ambiguous.has(`${file}.json`), `${name}: ${k} has an unambiguous schema`);
    }
    t.equal(
      r.code,
      0,
      `${name}: ${(report.resources ?? [])
        .filter((x) => x.status !== 'statusValid')
        .map((x) => `${x.kind}/${x.name}: ${x.msg}`)
        .join('\n')}`,
    );
    t.same(
      report.summary,
      { valid: kinds.length, invalid: 0, errors: 0, skipped: 0 },
      `${name}: all ${kinds.length} resources validated (${[...new Set(kinds.map((k) => k.split(' ')[1]))].join(', ')})`,
    );
    // helm template renders the `helm test` pods too (install.yaml leaves them out: --skip-tests).
    if (name !== 'install.yaml') t.equal(kinds.filter((k) => k === 'v1 Pod').length, 2, `${name}: the two helm test pods are validated too`);
  }
});

t.test("kubeconform -strict: the example LiveStreams match the CRD's schema", async (t) => {
  const examples = (await readdir(join(ROOT, 'manifests/examples'))).filter((f) => f.endsWith('.yaml')).map((f) => join(ROOT, 'manifests/examples', f));
  const r = await kubeconform(examples);
  const report = JSON.parse(r.stdout) as KubeconformReport;
  t.equal(r.code, 0, JSON.stringify(report.resources));
  t.same(report.summary, { valid: examples.length, invalid: 0, errors: 0, skipped: 0 });
});

t.test('kubeconform really checks: an unknown field, a wrong type and a bad CR are each refused', async (t) => {
  const objs = parseDocs(await readFile(renders['default']!, 'utf8'));
  const sts = structuredClone(get(objs, 'StatefulSet')) as K8sObject & { spec: Json & { template: { spec: Json } } };
  sts.spec.template.spec.terminationGracePeriodSecond = 60; // typo
  const svc = structuredClone(get(objs, 'Service', 't-tteok-ingest')) as K8sObject & { spec: { ports: Array<Json> } };
  svc.spec.ports[0]!.port = 'rtmp'; // a string where an integer belongs
  const ls = {
    apiVersion: 'tteok.dev/v1alpha1',
    kind: 'LiveStream',
    metadata: { name: 'bad', namespace: 'default' },
    spec: { hls: { segmentSeconds: 'one' } },
  };
  for (const [what, doc, message] of [
    ['unknown field', sts, /terminationGracePeriodSecond/],
    ['wrong type', svc, /port/],
    ['LiveStream', ls, /segmentSeconds/],
  ] as const) {
    const file = join(dir, `bad-${what.replace(/\W/g, '')}.yaml`);
    await writeFile(file, stringifyYaml(doc));
    const r = await kubeconform([file]);
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stdout, message, what);
  }
});

t.test('kubectl apply --server-side --dry-run=server accepts every render', async (t) => {
  for (const [name, file] of Object.entries(renders)) {
    // --force-conflicts: the helm test above left the kept CRD owned by helm; a dry run changes nothing.
    const r = await kubectl('apply', '--server-side', '--dry-run=server', '--force-conflicts', '-f', file);
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    const count = parseDocs(await readFile(file, 'utf8')).length;
    t.equal(
      r.stdout
        .trim()
        .split('\n')
        .filter((l) => /serverside-applied \(server dry run\)$/.test(l)).length,
      count,
      `${name}: all ${count} objects applied (dry run)`,
    );
  }
});

t.test('the example LiveStreams are valid; the CRD refuses a wrong one', async (t) => {
  const examples = (await readdir(join(ROOT, 'manifests/examples'))).filter((f) => f.endsWith('.yaml'));
  t.ok(examples.length >= 2, `examples: ${examples.join(', ')}`);
  for (const f of examples) {
    const r = await kubectl('apply', '--server-side', '--dry-run=server', '-f', join(ROOT, 'manifests/examples', f));
    t.equal(r.code, 0, `${f}: ${r.stderr}`);
  }
  const bad = join(dir, 'bad-livestream.yaml');
  await writeFile(
    bad,
    stringifyYaml({
      apiVersion: 'tteok.dev/v1alpha1',
      kind: 'LiveStream',
      metadata: { name: 'bad', namespace: 'default' },
      spec: { hls: { segmentSeconds: 30 } },
    }),
  );
  const r = await kubectl('apply', '--server-side', '--dry-run=server', '-f', bad);
  t.not(r.code, 0);
  t.match(r.stderr, /segmentSeconds/);
});
