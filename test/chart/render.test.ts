// The Helm chart, rendered: helm lint, the values schema and the chart's own
// checks refusing wrong values, the CRD kept identical to manifests/crd,
// manifests/install.yaml up to date, and the rendered objects' security
// settings, probes, environment, RBAC and feature toggles. The same renders
// are validated by kubeconform and the real kube-apiserver in
// chart-cluster.test.ts.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { CHART, CI_VALUES, NAMESPACE, ROOT, find, get, helmTemplate, parseDocs, render, run, tool, type K8sObject } from '../../harness/chart-tools.ts';
import { loadGatewayConfig, type GatewayConfig } from '../../gateway/config.ts';
import { loadIngestConfig, type IngestConfig } from '../../ingest/config.ts';

interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown>;
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: { sizeLimit?: string; medium?: string }; secret?: { secretName: string; defaultMode?: number } }>;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const podSpec = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;
const envOf = (c: Container): Map<string, NonNullable<Container['env']>[number]> => new Map((c.env ?? []).map((e) => [e.name, e]));
const workloads = (objs: K8sObject[]) => objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');

const renders: Record<string, K8sObject[]> = {};
for (const [name, file] of Object.entries(CI_VALUES)) renders[name] = parseDocs(await render({ values: [file] }));
const def = renders['default']!;
const all = renders['all-features']!;
const namespaced = renders['namespaced-podmonitor']!;

t.test('helm lint --strict passes for every ci/ values file', async (t) => {
  for (const [name, file] of Object.entries(CI_VALUES)) {
    const r = await run(tool('helm'), ['lint', '--strict', CHART, '--values', file]);
    t.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
    t.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

t.test('wrong values fail at install with a message naming the value', async (t) => {
  const required = ['--set', 's3.bucket=tteok-media', '--set', 'cdn.baseUrl=https://d1.cloudfront.net'];
  const cases: Array<[string, string[], RegExp]> = [
    ['no bucket', [], /s3\.bucket is required/],
    ['no CDN URL', ['--set', 's3.bucket=tteok-media'], /cdn\.baseUrl is required/],
    ['unknown key', [...required, '--set', 'ingest.rtmpPort=1936'], /additional properties 'rtmpPort' not allowed/],
    ['wrong type', [...required, '--set-string', 'controller.replicas=two'], /controller\/replicas|replicas/],
    ['CDN URL not http(s)', ['--set', 's3.bucket=tteok-media', '--set', 'cdn.baseUrl=ftp://x'], /cdn\/baseUrl/],
    ['prefix with a slash at the end', [...required, '--set', 's3.prefix=live/'], /s3\/prefix/],
    ['bad log level', [...required, '--set', 'logLevel=verbose'], /logLevel/],
    [
      'shutdown timeout not below the grace period',
      [...required, '--set', 'ingest.shutdownTimeoutSeconds=60'],
      /shutdownTimeoutSeconds \(60\) must be less than ingest\.terminationGracePeriodSeconds \(60\)/,
    ],
    ['two controllers without leader election', [...required, '--set', 'controller.leaderElection.enabled=false'], /leaderElection/],
    [
      'ServiceMonitor and PodMonitor together',
      [...required, '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.podMonitor.enabled=true'],
      /not both/,
    ],
    ['S3 keys in values', [...required, '--set', 's3.credentials.accessKey=AKIA'], /additional properties 'accessKey' not allowed/],
    ['RTMPS without its certificate Secret', [...required, '--set', 'ingest.rtmps.enabled=true'], /ingest\/rtmps\/secretName/],
    [
      'takeover silence not below the publisher idle timeout',
      [...required, '--set', 'ingest.takeoverSilenceSeconds=5'],
      /ingest\.takeoverSilenceSeconds \(5\) must be less than ingest\.publisherIdleSeconds \(5\)/,
    ],
    ["RTMP message limit above the protocol's", [...required, '--set', 'ingest.rtmp.maxMessageBytes=16777216'], /ingest\/rtmp\/maxMessageBytes/],
    ['a gateway timeout turned off', [...required, '--set', 'gateway.requestTimeoutMs=0'], /gateway\/requestTimeoutMs/],
    [
      'headers timeout above the request timeout',
      [...required, '--set', 'gateway.headersTimeoutMs=40000'],
      /gateway\.headersTimeoutMs \(40000\) must not be above gateway\.requestTimeoutMs \(30000\)/,
    ],
    [
      'event heartbeat not below the connection timeout',
      [...required, '--set', 'gateway.events.heartbeatMs=30000'],
      /gateway\.events\.heartbeatMs \(30000\) must be below gateway\.connectionTimeoutMs \(30000\)/,
    ],
    ['player source origin "*"', [...required, '--set-string', 'gateway.playerSrcOrigins[0]=*'], /gateway\/playerSrcOrigins/],
    ['a default rendition that is not a preset', [...required, '--set', 'defaultRenditions={480p,240p}'], /defaultRenditions\/1/],
    ['a default rendition twice', [...required, '--set', 'defaultRenditions={480p,480p}'], /defaultRenditions/],
  ];
  for (const [what, args, message] of cases) {
    const r = await helmTemplate({ extra: args });
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stderr, message, `${what}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  }
});

t.test('the CRD: identical to manifests/crd, templated so upgrades deliver it, kept on uninstall', async (t) => {
  const source = readFileSync(join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml'), 'utf8');
  t.equal(readFileSync(join(CHART, 'files/crds/livestreams.tteok.dev.yaml'), 'utf8'), source, 'files/crds copy is byte-identical (bash manifests/generate.sh)');
  t.same(
    readdirSync(CHART).filter((f) => f === 'crds'),
    [],
    'no crds/ directory: Helm would never upgrade it',
  );

  const crd = get(def, 'CustomResourceDefinition', 'livestreams.tteok.dev');
  const original = parseYaml(source) as K8sObject;
  t.same(crd.spec, original.spec, 'the rendered spec is the source spec');
  t.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
  t.equal(crd.metadata.labels?.['app.kubernetes.io/instance'], 't');
  t.equal(crd.metadata.labels?.['app.kubernetes.io/component'], 'crd');

  const noKeep = parseDocs(await render({ values: [CI_VALUES['default']!], set: ['crds.keep=false'] }));
  t.notOk(get(noKeep, 'CustomResourceDefinition').metadata.annotations?.['helm.sh/resource-policy'], 'crds.keep=false drops the annotation');
  t.notOk(find(namespaced, 'CustomResourceDefinition'), 'crds.install=false renders no CRD');
});

t.test('manifests/install.yaml is the chart rendered by manifests/generate.sh, up to date', async (t) => {
  const r = await run('bash', [join(ROOT, 'manifests/generate.sh'), '--check']);
  t.equal(r.code, 0, r.stderr || r.stdout);
  const objs = parseDocs(readFileSync(join(ROOT, 'manifests/install.yaml'), 'utf8'));
  t.equal(objs[0]?.kind, 'Namespace', 'starts with its Namespace');
  t.ok(
    objs
      .filter(
        (o) =>
          o.kind !== 'Namespace' && o.kind !== 'CustomResourceDefinition' && !o.kind.startsWith('Cluster') && !o.kind.startsWith('ValidatingAdmissionPolicy'),
      )
      .every((o) => o.metadata.namespace === 'tteok'),
    'every namespaced object names namespace tteok',
  );
  t.ok(find(objs, 'CustomResourceDefinition', 'livestreams.tteok.dev'));
  t.ok(find(objs, 'ConfigMap', 'tteok-config'), 'the settings users edit are one ConfigMap');
});

t.test('every namespaced object carries the release namespace and the standard labels', async (t) => {
  for (const o of def) {
    const cluster = o.kind === 'CustomResourceDefinition' || o.kind.startsWith('Cluster') || o.kind.startsWith('ValidatingAdmissionPolicy');
    if (!cluster) t.equal(o.metadata.namespace, NAMESPACE, `${o.kind}/${o.metadata.name}`);
    for (const label of [
      'app.kubernetes.io/name',
      'app.kubernetes.io/instance',
      'app.kubernetes.io/version',
      'app.kubernetes.io/managed-by',
      'helm.sh/chart',
    ]) {
      t.ok(o.metadata.labels?.[label], `${o.kind}/${o.metadata.name} has ${label}`);
    }
  }
  t.equal(get(all, 'ConfigMap', 't-tteok-config').metadata.labels?.team, 'video', 'commonLabels reach every object');
  t.equal(get(all, 'StatefulSet').metadata.annotations?.['example.com/owner'], 'video-platform', 'commonAnnotations too');
});

t.test('pods run as non-root with a read-only root filesystem, no privileges, writable emptyDirs only (Secrets read-only)', async (t) => {
  for (const [name, objs] of Object.entries(renders)) {
    for (const w of workloads(objs)) {
      const spec = podSpec(w);
      const where = `${name}: ${w.kind}/${w.metadata.name}`;
      t.equal(spec.securityContext?.runAsNonRoot, true, `${where} pod runAsNonRoot`);
      t.same(spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' }, `${where} seccomp RuntimeDefault`);
      t.ok((spec.securityContext?.runAsUser as number) > 0, `${where} a non-zero uid`);
      for (const c of spec.containers) {
        const sc = c.securityContext ?? {};
        t.equal(sc.readOnlyRootFilesystem, true, `${where}/${c.name} read-only root filesystem`);
        t.equal(sc.allowPrivilegeEscalation, false, `${where}/${c.name} no privilege escalation`);
        t.equal(sc.privileged, false, `${where}/${c.name} not privileged`);
        t.same(sc.capabilities, { drop: ['ALL'] }, `${where}/${c.name} drops all capabilities`);
        t.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, `${where}/${c.name} has requests and a memory limit`);
        // Every writable path is an emptyDir with a size limit; a Secret (the RTMPS certificate) is mounted read-only.
        for (const m of c.volumeMounts ?? []) {
          const v = spec.volumes?.find((x) => x.name === m.name);
          if (v?.secret) t.equal(m.readOnly, true, `${where}/${c.name}: Secret ${v.secret.secretName} at ${m.mountPath} is read-only`);
          else t.ok(v?.emptyDir?.sizeLimit, `${where}/${c.name}: ${m.mountPath} is an emptyDir with a sizeLimit`);
        }
        t.ok(
          c.volumeMounts?.some((m) => m.mountPath === '/tmp'),
          `${where}/${c.name} has a writable /tmp`,
        );
      }
    }
  }
});

t.test("helm test pods: the gateway's /readyz and a lookup, the ingest's /readyz, with least privilege; tests.enabled=false leaves them out", async (t) => {
  interface TestPod {
    automountServiceAccountToken?: boolean;
    serviceAccountName?: string;
    restartPolicy?: string;
    enableServiceLinks?: boolean;
    imagePullSecrets?: unknown[];
    securityContext?: Record<string, unknown>;
    volumes?: unknown[];
    containers: Array<Container & { image: string; command?: string[] }>;
  }
  const checksOf = (p: K8sObject) =>
    JSON.parse((p.spec as TestPod).containers[0]!.env!.find((e) => e.name === 'CHECKS')!.value!) as Array<{ url: string; status: number; contains: string }>;
  // ci/ values render with helm template, which includes test hooks (as kubeconform and the dry-run in chart-cluster.test.ts see them).
  for (const [name, objs] of Object.entries(renders)) {
    const pods = objs.filter((o) => o.kind === 'Pod');
    t.same(pods.map((p) => p.metadata.name).sort(), ['t-tteok-test-gateway', 't-tteok-test-ingest'], `${name}: two test pods`);
    const gatewayImage = podSpec(get(objs, 'Deployment', 't-tteok-gateway')).containers[0] as Container & { image: string };
    for (const p of pods) {
      const where = `${name}: Pod/${p.metadata.name}`;
      const spec = p.spec as TestPod;
      t.equal(p.metadata.annotations?.['helm.sh/hook'], 'test', `${where} is a helm test hook`);
      t.equal(spec.restartPolicy, 'Never', `${where} runs once`);
      t.equal(spec.automountServiceAccountToken, false, `${where} gets no service account token`);
      t.notOk(spec.serviceAccountName, `${where} uses no service account of the release`);
      t.notOk(spec.volumes, `${where} mounts nothing`);
      t.equal(spec.securityContext?.runAsNonRoot, true, `${where} runAsNonRoot`);
      t.same(spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' }, `${where} seccomp RuntimeDefault`);
      const c = spec.containers[0]!;
      t.equal(spec.containers.length, 1);
      t.equal(c.image, gatewayImage.image, `${where} runs the tteok image itself`);
      t.same(c.command?.slice(0, 2), ['node', '--input-type=module'], `${where} checks with the image's node`);
      t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where} read-only root filesystem`);
      t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where} no privilege escalation`);
      t.same(c.securityContext?.capabilities, { drop: ['ALL'] }, `${where} drops all capabilities`);
      t.ok(c.resources?.requests?.cpu && c.resources.limits?.memory, `${where} has requests and a memory limit`);
    }
    if (objs === all) t.same((pods[0]!.spec as TestPod).imagePullSecrets, [{ name: 'regcred' }], 'the image pull secrets too');
    const gatewayService = get(objs, 'Service', 't-tteok-gateway').spec as { ports: Array<{ name: string; port: number }> };
    const base = `http://t-tteok-gateway.${NAMESPACE}.svc:${gatewayService.ports.find((x) => x.name === 'http')!.port}`;
    const streams = (parseYaml(readFileSync(CI_VALUES[name]!, 'utf8')) as { watchNamespace?: string }).watchNamespace || NAMESPACE;
    t.same(
      checksOf(get(objs, 'Pod', 't-tteok-test-gateway')).map((c) => [c.url, c.status]),
      [
        [`${base}/readyz`, 200],
        [`${base}/v1/streams?namespace=${streams}`, 200],
        [`${base}/v1/streams/${streams}/helm-test-no-such-stream`, 404],
      ],
      `${name}: through the gateway's Service: /readyz, the list and a lookup (a JSON 404)`,
    );
    const ingestPort = (podSpec(get(objs, 'StatefulSet')).containers[0]!.ports ?? []).find((x) => x.name === 'http')!.containerPort;
    t.same(
      checksOf(get(objs, 'Pod', 't-tteok-test-ingest')).map((c) => [c.url, c.status]),
      [[`http://t-tteok-ingest-0.t-tteok-ingest-headless.tteok.svc:${ingestPort}/readyz`, 200]],
      `${name}: the first ingest pod's /readyz`,
    );
  }
  const off = parseDocs(await render({ values: [CI_VALUES['default']!], set: ['tests.enabled=false'] }));
  t.notOk(find(off, 'Pod'), 'tests.enabled=false: no test pods');
});

t.test('ingest: StatefulSet with the media emptyDir, probes on 9935, a grace period longer than its shutdown timeout', async (t) => {
  const sts = get(def, 'StatefulSet', 't-tteok-ingest');
  const spec = podSpec(sts);
  const c = spec.containers[0]!;
  const env = envOf(c);
  t.same(c.args, ['ingest'], 'the role is the container args');
  t.equal((sts.spec as { serviceName: string }).serviceName, 't-tteok-ingest-headless');
  t.same(spec.volumes?.find((v) => v.name === 'media')?.emptyDir, { sizeLimit: '2Gi' });
  t.ok(
    c.volumeMounts?.some((m) => m.name === 'media' && m.mountPath === env.get('TTEOK_MEDIA_DIR')?.value),
    'mounted at TTEOK_MEDIA_DIR',
  );
  t.same(
    c.ports?.map((p) => [p.name, p.containerPort]),
    [
      ['rtmp', 1935],
      ['http', 9935],
    ],
  );
  t.same(c.livenessProbe?.httpGet, { path: '/healthz', port: 'http' });
  t.same(c.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
  t.equal(env.get('TTEOK_HTTP_PORT')?.value, '9935');
  t.equal(env.get('TTEOK_KEY_SOURCE')?.value, 'kubernetes');
  for (const [name, objs] of Object.entries(renders)) {
    const s = podSpec(get(objs, 'StatefulSet'));
    const timeout = Number(envOf(s.containers[0]!).get('TTEOK_SHUTDOWN_TIMEOUT_SECONDS')?.value);
    t.ok(
      timeout > 0 && timeout < s.terminationGracePeriodSeconds!,
      `${name}: TTEOK_SHUTDOWN_TIMEOUT_SECONDS ${timeout} < terminationGracePeriodSeconds ${s.terminationGracePeriodSeconds}`,
    );
  }
});

t.test('every pod learns its name and namespace from the downward API, and reads the settings ConfigMap', async (t) => {
  for (const w of workloads(def)) {
    const c = podSpec(w).containers[0]!;
    const env = envOf(c);
    t.same(env.get('TTEOK_POD_NAME')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } }, `${w.metadata.name} TTEOK_POD_NAME`);
    t.same(env.get('TTEOK_POD_NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } }, `${w.metadata.name} TTEOK_POD_NAMESPACE`);
    t.same(c.envFrom, [{ configMapRef: { name: 't-tteok-config' } }]);
    t.match(
      (w.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['checksum/config'],
      /^[0-9a-f]{64}$/,
      'a settings change rolls the pods',
    );
  }
  const config = get(def, 'ConfigMap', 't-tteok-config').data as Record<string, string>;
  t.equal(config.TTEOK_S3_BUCKET, 'tteok-media');
  t.equal(config.TTEOK_PLAYBACK_BASE_URL, 'https://d111111abcdef8.cloudfront.net', 'cdn.baseUrl becomes TTEOK_PLAYBACK_BASE_URL');
  t.equal(config.TTEOK_STORAGE, 's3');
  t.equal(config.TTEOK_DEFAULT_RENDITIONS, '', 'no default renditions unless asked');
  const allConfig = get(all, 'ConfigMap', 't-tteok-config').data as Record<string, string>;
  t.equal(allConfig.TTEOK_DEFAULT_RENDITIONS, '480p,360p', 'defaultRenditions becomes TTEOK_DEFAULT_RENDITIONS');
  t.same(loadIngestConfig({ ...allConfig }).defaultRenditions, ['480p', '360p'], 'which the ingest reads');
});

t.test('every TTEOK_ variable the chart sets is one the code reads', async (t) => {
  const read = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/\b(TTEOK_[A-Z0-9_]+)\b/g)) read.add(m[1]!);
    }
  };
  // transcoder/: the role's own directory, once it exists on this branch.
  for (const d of ['common', 'ingest', 'gateway', 'controller', 'transcoder', 'bin']) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  for (const [name, objs] of Object.entries(renders)) {
    const set = new Set<string>();
    for (const w of workloads(objs)) for (const c of podSpec(w).containers) for (const e of c.env ?? []) set.add(e.name);
    for (const k of Object.keys((get(objs, 'ConfigMap', 't-tteok-config').data ?? {}) as object)) set.add(k);
    for (const v of set) if (v.startsWith('TTEOK_')) t.ok(read.has(v), `${name}: ${v} is read by the code`);
  }
});

t.test('controller: two replicas with leader election, probes on its HTTP port, manages the ingest StatefulSet', async (t) => {
  const d = get(def, 'Deployment', 't-tteok-controller');
  const c = podSpec(d).containers[0]!;
  const env = envOf(c);
  t.equal((d.spec as { replicas: number }).replicas, 2);
  t.same(c.args, ['controller']);
  t.equal(env.get('TTEOK_LEADER_ELECTION')?.value, 'true');
  t.equal(env.get('TTEOK_LEADER_ELECTION_LEASE')?.value, 't-tteok-controller', 'a lease name per release');
  t.equal(env.get('TTEOK_CONTROLLER_HTTP_PORT')?.value, '9937');
  t.same(
    c.ports?.map((p) => [p.name, p.containerPort]),
    [['http', 9937]],
  );
  t.same(c.livenessProbe?.httpGet, { path: '/healthz', port: 'http' });
  t.same(c.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
  t.equal(env.get('TTEOK_INGEST_STATEFULSET')?.value, 't-tteok-ingest');
  t.equal(env.get('TTEOK_INGEST_NAMESPACE')?.value, NAMESPACE);
  t.notOk('replicas' in (get(def, 'StatefulSet').spec as object), 'with autoscaling the chart leaves the ingest replicas to the controller');

  const fixed = podSpec(get(namespaced, 'Deployment', 't-tteok-controller')).containers[0]!;
  t.notOk(envOf(fixed).has('TTEOK_INGEST_STATEFULSET'), 'autoscaling off: the controller does not scale the ingest');
  t.equal((get(namespaced, 'StatefulSet').spec as { replicas: number }).replicas, 3);
  t.equal(
    envOf(podSpec(get(all, 'Deployment', 't-tteok-controller')).containers[0]!).get('TTEOK_INGEST_PUBLIC_URL')?.value,
    'rtmp://stream.example.com:1935/live',
  );
});

t.test('gateway: Deployment, Service, probes, Kubernetes view, optional Ingress', async (t) => {
  const d = get(def, 'Deployment', 't-tteok-gateway');
  const c = podSpec(d).containers[0]!;
  const env = envOf(c);
  t.same(c.args, ['gateway']);
  t.equal(env.get('TTEOK_VIEW')?.value, 'kubernetes');
  t.same(c.livenessProbe?.httpGet, { path: '/healthz', port: 'http' });
  t.same(c.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
  const svc = get(def, 'Service', 't-tteok-gateway').spec as { type: string; ports: Array<{ name: string; port: number }> };
  t.equal(svc.type, 'ClusterIP');
  t.ok(svc.ports.some((p) => p.name === 'http' && p.port === 80));
  t.notOk(find(def, 'Ingress'), 'no Ingress by default');
  const ing = get(all, 'Ingress', 't-tteok-gateway').spec as { ingressClassName: string; tls: unknown[]; rules: Array<{ host: string }> };
  t.equal(ing.ingressClassName, 'nginx');
  t.equal(ing.rules[0]?.host, 'tteok.example.com');
  t.equal(ing.tls.length, 1);
  t.equal(
    envOf(podSpec(get(all, 'Deployment', 't-tteok-gateway')).containers[0]!).get('TTEOK_CORS_ORIGINS')?.value,
    'https://www.example.com,https://example.com',
  );
});

/** What a component's container would run with: the settings ConfigMap, then its own env (plain values only). */
function podEnvironment(objs: K8sObject[], kind: string, name: string): Record<string, string> {
  const env: Record<string, string> = { ...((get(objs, 'ConfigMap', 't-tteok-config').data ?? {}) as Record<string, string>) };
  for (const e of podSpec(get(objs, kind, name)).containers[0]!.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}
const without = (env: Record<string, string>, names: string[]) => Object.fromEntries(Object.entries(env).filter(([k]) => !names.includes(k)));

const GATEWAY_CLIENT_SETTINGS = [
  'TTEOK_GATEWAY_REQUEST_TIMEOUT_MS',
  'TTEOK_GATEWAY_HEADERS_TIMEOUT_MS',
  'TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS',
  'TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS',
  'TTEOK_PLAYER_SRC_ORIGINS',
  'TTEOK_EVENTS_HEARTBEAT_MS',
  'TTEOK_EVENTS_MAX_CONNECTIONS',
  'TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS',
  'TTEOK_EVENTS_BUFFER_SIZE',
  'TTEOK_GATEWAY_TRUSTED_PROXIES',
];
const gatewayClientSettings = (c: GatewayConfig) => ({
  timeouts: [c.requestTimeoutMs, c.headersTimeoutMs, c.keepAliveTimeoutMs, c.connectionTimeoutMs],
  playerSrcOrigins: c.playerSrcOrigins,
  events: c.events,
  trustedProxies: c.trustedProxies,
});
const INGEST_PUBLISHER_SETTINGS = [
  'TTEOK_PUBLISHER_IDLE_SECONDS',
  'TTEOK_TAKEOVER_SILENCE_SECONDS',
  'TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS',
  'TTEOK_RTMP_MAX_MESSAGE_BYTES',
  'TTEOK_RTMP_MAX_CONNECTIONS',
  'TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS',
  'TTEOK_RTMP_KEEPALIVE_SECONDS',
];
const ingestPublisherSettings = (c: IngestConfig) => ({ publisherIdleMs: c.publisherIdleMs, takeoverSilenceMs: c.takeoverSilenceMs, rtmp: c.rtmp });

t.test(
  'gateway timeouts, player sources and event streams, ingest idle, takeover and RTMP limits: chart values the code reads, with its defaults',
  async (t) => {
    const gatewayEnv = podEnvironment(def, 'Deployment', 't-tteok-gateway');
    for (const name of [
      'TTEOK_GATEWAY_REQUEST_TIMEOUT_MS',
      'TTEOK_GATEWAY_HEADERS_TIMEOUT_MS',
      'TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS',
      'TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS',
      'TTEOK_EVENTS_MAX_CONNECTIONS',
      'TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS',
      'TTEOK_EVENTS_BUFFER_SIZE',
    ]) {
      t.ok(name in gatewayEnv, `the gateway gets ${name}`);
    }
    t.notOk('TTEOK_EVENTS_HEARTBEAT_MS' in gatewayEnv, 'no heartbeat set by default: the code derives it from the connection timeout');
    t.notOk('TTEOK_PLAYER_SRC_ORIGINS' in gatewayEnv, "no player sources set by default: the code allows the CDN's origin");
    t.notOk('TTEOK_GATEWAY_TRUSTED_PROXIES' in gatewayEnv, "no trusted proxy by default: the client is the connection's peer");
    t.same(
      gatewayClientSettings(loadGatewayConfig(gatewayEnv)),
      gatewayClientSettings(loadGatewayConfig(without(gatewayEnv, GATEWAY_CLIENT_SETTINGS))),
      "the gateway runs with the code's defaults",
    );

    const ingestEnv = podEnvironment(def, 'StatefulSet', 't-tteok-ingest');
    for (const name of INGEST_PUBLISHER_SETTINGS) t.ok(name in ingestEnv, `the ingest gets ${name}`);
    t.same(
      ingestPublisherSettings(loadIngestConfig(ingestEnv)),
      ingestPublisherSettings(loadIngestConfig(without(ingestEnv, INGEST_PUBLISHER_SETTINGS))),
      "the ingest runs with the code's defaults",
    );

    // ci/all-features-values.yaml sets them: what the code then runs with.
    t.same(
      gatewayClientSettings(loadGatewayConfig(podEnvironment(all, 'Deployment', 't-tteok-gateway'))),
      {
        timeouts: [30_000, 10_000, 65_000, 120_000],
        playerSrcOrigins: ['https://d111111abcdef8.cloudfront.net', 'https://media.example.com'],
        events: { heartbeatMs: 20_000, maxConnections: 5000, maxConnectionsPerAddress: 40, bufferSize: 1_000_000 },
        trustedProxies: ['10.0.0.0/8', 'fd00::/8'],
      },
      'gateway values reach the gateway (a million written as a whole number)',
    );
    t.same(
      ingestPublisherSettings(loadIngestConfig(podEnvironment(all, 'StatefulSet', 't-tteok-ingest'))),
      {
        publisherIdleMs: 8000,
        takeoverSilenceMs: 2500,
        rtmp: { publishDeadlineMs: 10_000, maxMessageBytes: 16_777_215, maxConnections: 2000, maxConnectionsPerAddress: 50, keepaliveMs: 15_000 },
      },
      'ingest values reach the ingest',
    );
  },
);

t.test('the RTMP LoadBalancer on 1935 with externalTrafficPolicy Local, and the headless Service', async (t) => {
  const lb = get(def, 'Service', 't-tteok-ingest').spec as Record<string, unknown> & { ports: Array<Record<string, unknown>> };
  t.equal(lb.type, 'LoadBalancer');
  t.equal(lb.externalTrafficPolicy, 'Local');
  t.same(lb.ports, [{ name: 'rtmp', port: 1935, targetPort: 'rtmp', protocol: 'TCP' }]);
  const headless = get(def, 'Service', 't-tteok-ingest-headless').spec as Record<string, unknown>;
  t.equal(headless.clusterIP, 'None');
  const allLb = get(all, 'Service', 't-tteok-ingest');
  t.equal(allLb.metadata.annotations?.['service.beta.kubernetes.io/aws-load-balancer-type'], 'external');
  t.same((allLb.spec as { loadBalancerSourceRanges: string[] }).loadBalancerSourceRanges, ['203.0.113.0/24']);
  const nodePort = get(namespaced, 'Service', 't-tteok-ingest').spec as { type: string; ports: Array<{ nodePort: number }> };
  t.equal(nodePort.type, 'NodePort');
  t.equal(nodePort.ports[0]?.nodePort, 31935);
});

t.test('RTMPS: off by default; on, a second port on the same LoadBalancer and the TLS Secret mounted read-only', async (t) => {
  const defSpec = podSpec(get(def, 'StatefulSet', 't-tteok-ingest'));
  t.notOk(envOf(defSpec.containers[0]!).has('TTEOK_RTMPS_PORT'), 'default: no RTMPS listener');
  const lb = get(all, 'Service', 't-tteok-ingest').spec as { ports: Array<Record<string, unknown>> };
  t.same(
    lb.ports.map((p) => [p.name, p.port, p.targetPort]),
    [
      ['rtmp', 1935, 'rtmp'],
      ['rtmps', 443, 'rtmps'],
    ],
    'RTMP and RTMPS on the same Service',
  );
  const spec = podSpec(get(all, 'StatefulSet', 't-tteok-ingest'));
  const c = spec.containers[0]!;
  const env = envOf(c);
  t.same(
    c.ports?.map((p) => [p.name, p.containerPort]),
    [
      ['rtmp', 1935],
      ['http', 9935],
      ['rtmps', 1936],
    ],
  );
  t.equal(env.get('TTEOK_RTMPS_PORT')?.value, '1936');
  const mount = c.volumeMounts?.find((m) => m.name === 'rtmps-certificate');
  t.same(mount, { name: 'rtmps-certificate', mountPath: '/etc/tteok/rtmps', readOnly: true });
  t.equal(env.get('TTEOK_RTMPS_CERT_FILE')?.value, '/etc/tteok/rtmps/tls.crt');
  t.equal(env.get('TTEOK_RTMPS_KEY_FILE')?.value, '/etc/tteok/rtmps/tls.key');
  t.equal(spec.volumes?.find((v) => v.name === 'rtmps-certificate')?.secret?.secretName, 'tteok-rtmps-tls');
  t.equal(
    loadIngestConfig(podEnvironment(all, 'StatefulSet', 't-tteok-ingest')).rtmps?.handshakeTimeoutMs,
    8000,
    'ingest.rtmps.handshakeTimeoutSeconds reaches the ingest',
  );
});

t.test('transcoder: its own Deployment, no token, CPU from its sizing, reachable only from the ingest, which is pointed at it', async (t) => {
  const deployment = get(def, 'Deployment', 't-tteok-transcoder');
  const spec = podSpec(deployment) as PodSpec & { automountServiceAccountToken?: boolean };
  const c = spec.containers[0]!;
  t.same(c.args, ['transcoder']);
  t.equal(spec.automountServiceAccountToken, false, 'the pod mounts no service account token');
  t.equal(spec.serviceAccountName, 't-tteok-transcoder', 'its own service account');
  t.equal(get(def, 'ServiceAccount', 't-tteok-transcoder').automountServiceAccountToken, false, 'whose token is not mounted by default either');
  t.notOk(
    def.some((o) => o.kind.endsWith('RoleBinding') && JSON.stringify(o.subjects ?? []).includes('t-tteok-transcoder')),
    'and which is bound to no Role',
  );
  const env = envOf(c);
  t.equal(env.get('TTEOK_TRANSCODER_MAX_JOBS')?.value, '2');
  t.equal(env.get('TTEOK_TRANSCODER_HTTP_PORT')?.value, '9938');
  t.same(c.ports, [{ name: 'http', containerPort: 9938, protocol: 'TCP' }]);
  t.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  t.equal(c.readinessProbe?.httpGet?.path, '/readyz');
  // 2 jobs × 2 renditions × 0.5 core; 2 × 256Mi + 128Mi; no CPU limit (a throttled encoder falls behind the live edge).
  t.same(c.resources, { requests: { cpu: '2000m', memory: '640Mi' }, limits: { memory: '640Mi' } }, 'requests from the sizing values');
  const sized = parseDocs(
    await render({
      values: [CI_VALUES['default']!],
      extra: ['--set', 'transcoder.maxJobs=4', '--set', 'transcoder.renditionsPerJob=3', '--set-json', 'transcoder.cpuPerRendition=0.25'],
    }),
  );
  t.same(podSpec(get(sized, 'Deployment', 't-tteok-transcoder')).containers[0]!.resources?.requests, { cpu: '3000m', memory: '1152Mi' }, '4 × 3 × 0.25 cores');

  const ingest = envOf(podSpec(get(def, 'StatefulSet', 't-tteok-ingest')).containers[0]!);
  t.equal(ingest.get('TTEOK_TRANSCODER')?.value, 'remote');
  t.equal(ingest.get('TTEOK_TRANSCODER_URL')?.value, `http://t-tteok-transcoder.${NAMESPACE}.svc`);
  const service = get(def, 'Service', 't-tteok-transcoder') as K8sObject & {
    spec: { type: string; ports: Array<{ name: string; port: number; targetPort: string }> };
  };
  t.equal(service.spec.type, 'ClusterIP');
  t.same(
    service.spec.ports.map((p) => [p.name, p.port, p.targetPort]),
    [
      ['http', 80, 'http'],
      ['http-metrics', 9938, 'http'],
    ],
  );

  type Peer = { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: object };
  const policy = get(def, 'NetworkPolicy', 't-tteok-transcoder') as K8sObject & {
    spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Array<{ from: Peer[] }>; egress: unknown[] };
  };
  t.same(policy.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'transcoder');
  t.same(policy.spec.policyTypes, ['Ingress', 'Egress']);
  t.same(policy.spec.egress, [], 'no egress at all');
  t.same(
    policy.spec.ingress.map((r) => r.from),
    [[{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tteok', 'app.kubernetes.io/instance': 't', 'app.kubernetes.io/component': 'ingest' } } }]],
    'only the ingest pods, without metrics scraping',
  );
  const allPolicy = get(all, 'NetworkPolicy', 't-tteok-transcoder') as typeof policy;
  t.equal(allPolicy.spec.ingress.length, 2, 'with a ServiceMonitor, Prometheus may scrape too');
  t.same(allPolicy.spec.ingress[1]!.from, [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);

  const fixed = parseDocs(
    await render({ values: [CI_VALUES['default']!], set: ['transcoder.service.clusterIP=10.0.0.12', 'transcoder.url=http://10.0.0.12'] }),
  );
  t.equal((get(fixed, 'Service', 't-tteok-transcoder').spec as { clusterIP?: string }).clusterIP, '10.0.0.12', 'a fixed ClusterIP');
  t.equal(
    envOf(podSpec(get(fixed, 'StatefulSet', 't-tteok-ingest')).containers[0]!).get('TTEOK_TRANSCODER_URL')?.value,
    'http://10.0.0.12',
    'transcoder.url: the ingest needs no cluster DNS',
  );

  t.notOk(find(def, 'HorizontalPodAutoscaler'), 'no autoscaler by default');
  const hpa = get(all, 'HorizontalPodAutoscaler', 't-tteok-transcoder') as K8sObject & {
    spec: { scaleTargetRef: { name: string }; minReplicas: number; maxReplicas: number; metrics: Array<{ resource: { name: string } }> };
  };
  t.equal(hpa.spec.scaleTargetRef.name, 't-tteok-transcoder');
  t.equal(hpa.spec.metrics[0]!.resource.name, 'cpu');
  t.notOk((get(all, 'Deployment', 't-tteok-transcoder').spec as { replicas?: number }).replicas, 'with the autoscaler, the chart leaves replicas alone');

  const off = parseDocs(await render({ values: [CI_VALUES['default']!], extra: ['--set', 'transcoder.enabled=false'] }));
  t.notOk(
    off.some((o) => o.metadata.name === 't-tteok-transcoder'),
    'transcoder.enabled=false: no transcoder objects',
  );
  t.notOk(envOf(podSpec(get(off, 'StatefulSet', 't-tteok-ingest')).containers[0]!).has('TTEOK_TRANSCODER_URL'), 'and the ingest is not pointed at one');
  const refused = await helmTemplate({ extra: ['--values', CI_VALUES['default']!, '--set', 'transcoder.enabled=false', '--set', 'defaultRenditions={360p}'] });
  t.not(refused.code, 0);
  t.match(refused.stderr, /defaultRenditions needs transcoder\.enabled/);
});

t.test('LL-HLS: the ingest names its pod IP, the gateway reaches only its HTTP port, the origin secret from a Secret', async (t) => {
  const ingest = envOf(podSpec(get(def, 'StatefulSet', 't-tteok-ingest')).containers[0]!);
  t.same(ingest.get('TTEOK_POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } }, 'TTEOK_POD_IP from the downward API');
  const gateway = envOf(podSpec(get(def, 'Deployment', 't-tteok-gateway')).containers[0]!);
  t.equal(gateway.get('TTEOK_LL_ORIGIN')?.value, 'true');
  t.equal(gateway.get('TTEOK_LL_UPSTREAM_TIMEOUT_MS')?.value, '20000');
  t.notOk(gateway.has('TTEOK_ORIGIN_SECRET'), 'no origin secret unless named');
  const withSecret = parseDocs(await render({ values: [CI_VALUES['default']!], set: ['gateway.lowLatency.originSecretName=cdn-origin'] }));
  t.same(envOf(podSpec(get(withSecret, 'Deployment', 't-tteok-gateway')).containers[0]!).get('TTEOK_ORIGIN_SECRET')?.valueFrom, {
    secretKeyRef: { name: 'cdn-origin', key: 'TTEOK_ORIGIN_SECRET', optional: true },
  });

  type Peer = { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: object };
  type Policy = K8sObject & {
    spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Array<{ from?: Peer[]; ports: Array<{ port: string }> }> };
  };
  const policy = get(def, 'NetworkPolicy', 't-tteok-ingest') as Policy;
  t.equal(policy.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'ingest');
  t.same(policy.spec.policyTypes, ['Ingress'], 'egress is not limited (API server, object store, transcoder)');
  t.same(
    policy.spec.ingress.map((r) => [r.from, r.ports.map((p) => p.port)]),
    [
      [undefined, ['rtmp']],
      [
        [
          { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tteok', 'app.kubernetes.io/instance': 't', 'app.kubernetes.io/component': 'gateway' } } },
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/name': 'tteok', 'app.kubernetes.io/instance': 't', 'app.kubernetes.io/component': 'test-ingest' },
            },
          },
        ],
        ['http'],
      ],
    ],
    "RTMP from anywhere, the HTTP port from the gateway pods and the ingest's helm test pod only",
  );
  const allPolicy = get(all, 'NetworkPolicy', 't-tteok-ingest') as Policy;
  t.same(
    allPolicy.spec.ingress[0]!.ports.map((p) => p.port),
    ['rtmp', 'rtmps'],
    'RTMPS too when on',
  );
  t.same(
    allPolicy.spec.ingress[2]?.from,
    [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
    'Prometheus when scraping',
  );
  const off = parseDocs(await render({ values: [CI_VALUES['default']!], set: ['ingest.networkPolicy.create=false'] }));
  t.notOk(find(off, 'NetworkPolicy', 't-tteok-ingest'), 'ingest.networkPolicy.create=false');
});

t.test('PodDisruptionBudgets for all three, toggled per component', async (t) => {
  t.same(
    def
      .filter((o) => o.kind === 'PodDisruptionBudget')
      .map((o) => [o.metadata.name, (o.spec as { maxUnavailable: number }).maxUnavailable])
      .sort(),
    [
      ['t-tteok-controller', 1],
      ['t-tteok-gateway', 1],
      ['t-tteok-ingest', 1],
      ['t-tteok-transcoder', 1],
    ],
  );
  t.notOk(find(namespaced, 'PodDisruptionBudget', 't-tteok-ingest'), 'ingest.pdb.create=false');
});

t.test('S3 credentials come from an existing Secret or the service account, never from values', async (t) => {
  for (const w of workloads(def)) t.notOk(envOf(podSpec(w).containers[0]!).has('AWS_ACCESS_KEY_ID'), `${w.metadata.name}: no static keys by default`);
  for (const name of ['t-tteok-ingest', 't-tteok-controller']) {
    const w = find(all, 'StatefulSet', name) ?? get(all, 'Deployment', name);
    const env = envOf(podSpec(w).containers[0]!);
    t.same(env.get('AWS_ACCESS_KEY_ID')?.valueFrom, { secretKeyRef: { name: 'tteok-s3', key: 'AWS_ACCESS_KEY_ID' } }, `${name} key id from the Secret`);
    t.same(
      env.get('AWS_SECRET_ACCESS_KEY')?.valueFrom,
      { secretKeyRef: { name: 'tteok-s3', key: 'AWS_SECRET_ACCESS_KEY' } },
      `${name} secret key from the Secret`,
    );
  }
  t.notOk(envOf(podSpec(get(all, 'Deployment', 't-tteok-gateway')).containers[0]!).has('AWS_ACCESS_KEY_ID'), 'the gateway reads no bucket: no credentials');
  t.notOk(
    all.some((o) => o.kind === 'Secret'),
    'the chart creates no Secret',
  );
  t.equal(
    get(all, 'ServiceAccount', 't-tteok-ingest').metadata.annotations?.['eks.amazonaws.com/role-arn'],
    'arn:aws:iam::123456789012:role/tteok-ingest',
    'IRSA annotation on the ingest',
  );
  t.equal(
    get(all, 'ServiceAccount', 't-tteok-controller').metadata.annotations?.['eks.amazonaws.com/role-arn'],
    'arn:aws:iam::123456789012:role/tteok-controller',
  );
  for (const w of workloads(all)) t.equal(podSpec(w).serviceAccountName, w.metadata.name, `${w.metadata.name} runs as its own service account`);
});

t.test('RBAC is exactly the least privilege each component needs', async (t) => {
  const rules = (objs: K8sObject[], kind: string, name: string): Rule[] => get(objs, kind, name).rules as Rule[];
  // README.md's RBAC table: what each component's code calls, and nothing more.
  const streams: Record<string, Rule[]> = {
    controller: [
      { apiGroups: ['tteok.dev'], resources: ['livestreams'], verbs: ['get', 'list', 'watch', 'patch'] },
      { apiGroups: ['tteok.dev'], resources: ['livestreams/status'], verbs: ['patch'] },
      { apiGroups: ['tteok.dev'], resources: ['livestreams/finalizers'], verbs: ['update'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    ],
    // The internet-facing ingest reads no Secret: it checks keys against the hash in LiveStream status.
    ingest: [{ apiGroups: ['tteok.dev'], resources: ['livestreams'], verbs: ['list', 'watch'] }],
    gateway: [{ apiGroups: ['tteok.dev'], resources: ['livestreams'], verbs: ['list', 'watch'] }],
  };
  const local: Record<string, Rule[]> = {
    controller: [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
      { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['statefulsets/scale'], verbs: ['patch'] },
    ],
    ingest: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update', 'delete'] }],
    // The LL origin: which ingest pod holds a stream (claim Leases), read only.
    gateway: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch'] }],
  };
  for (const [component, expected] of Object.entries(streams)) {
    t.same(rules(def, 'ClusterRole', `${NAMESPACE}-t-tteok-${component}`), expected, `${component} ClusterRole`);
    const binding = get(def, 'ClusterRoleBinding', `${NAMESPACE}-t-tteok-${component}`) as K8sObject & { subjects: unknown[] };
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: `t-tteok-${component}`, namespace: NAMESPACE }]);
    // With watchNamespace the same rules are a Role in that namespace, and no ClusterRole exists.
    const role = get(namespaced, 'Role', `t-tteok-${component}`);
    t.equal(role.metadata.namespace, 'streams');
    t.same(role.rules, expected, `${component} Role in the watched namespace`);
  }
  t.notOk(
    namespaced.some((o) => o.kind.startsWith('Cluster')),
    'watchNamespace: nothing cluster-scoped',
  );
  for (const [component, expected] of Object.entries(local)) {
    const role = get(def, 'Role', `t-tteok-${component}-local`);
    t.equal(role.metadata.namespace, NAMESPACE);
    t.same(role.rules, expected, `${component} Role in the release namespace`);
  }
  for (const render of [def, namespaced]) {
    for (const o of render.filter((x) => x.kind.endsWith('Role') && x.metadata.name.includes('ingest'))) {
      t.notOk(
        (o.rules as Rule[]).some((r) => r.resources.includes('secrets')),
        `${o.kind}/${o.metadata.name}: the ingest gets no access to Secrets`,
      );
    }
  }
  for (const o of [...def, ...namespaced].filter((x) => x.kind.endsWith('Role'))) {
    for (const r of o.rules as Rule[]) t.notOk([...r.apiGroups, ...r.resources, ...r.verbs].includes('*'), `${o.kind}/${o.metadata.name}: no wildcards`);
  }
});

t.test('monitoring toggles: ServiceMonitor, PodMonitor, PrometheusRule, Grafana dashboard', async (t) => {
  for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']) t.notOk(find(def, kind), `no ${kind} by default`);
  t.notOk(find(def, 'ConfigMap', 't-tteok-dashboard'), 'no dashboard by default');

  const sm = get(all, 'ServiceMonitor') as K8sObject & {
    spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> };
  };
  t.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
  t.same(
    sm.spec.endpoints.map((e) => [e.port, e.path]),
    [['http-metrics', '/metrics']],
  );
  const scraped = all.filter((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v));
  t.same(
    scraped.map((s) => s.metadata.name).sort(),
    ['t-tteok-controller', 't-tteok-gateway', 't-tteok-ingest-headless', 't-tteok-transcoder'],
    'selects the four metrics Services',
  );
  for (const s of scraped) {
    const port = (s.spec as { ports: Array<{ name: string; targetPort: string }> }).ports.find((p) => p.name === 'http-metrics');
    t.equal(port?.targetPort, 'http', `${s.metadata.name} exposes http-metrics`);
  }
  const pm = get(namespaced, 'PodMonitor') as K8sObject & { spec: { podMetricsEndpoints: Array<{ port: string }> } };
  t.same(
    pm.spec.podMetricsEndpoints.map((e) => e.port),
    ['http'],
    'every container serves /metrics on its port named http',
  );
  for (const w of workloads(namespaced))
    t.ok(
      podSpec(w).containers[0]!.ports?.some((p) => p.name === 'http'),
      `${w.metadata.name} has a port named http`,
    );

  const dash = get(all, 'ConfigMap', 't-tteok-dashboard');
  t.equal(dash.metadata.labels?.grafana_dashboard, '1', 'the Grafana sidecar label');
  t.equal(dash.metadata.annotations?.grafana_folder, 'Streaming');
  t.same(
    JSON.parse((dash.data as Record<string, string>)['tteok.json']!),
    JSON.parse(readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8')),
    'carries files/grafana-dashboard.json unchanged',
  );
  t.ok(find(all, 'PrometheusRule'), 'PrometheusRule when enabled');
});

t.test('NOTES.txt tells how to create a LiveStream, read its key and set up OBS', async (t) => {
  const r = await run(tool('helm'), ['install', 't', CHART, '--namespace', NAMESPACE, '--dry-run=client', '--values', CI_VALUES['default']!]);
  t.equal(r.code, 0, r.stderr);
  const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
  t.match(notes, /kind: LiveStream/);
  t.match(notes, /kubectl get secret demo-stream-key -n default -o jsonpath='\{\.data\.streamKey\}' \| base64 -d/);
  t.match(notes, /kubectl get service t-tteok-ingest -n tteok/);
  t.match(notes, /rtmp:\/\/<address>:1935\/live/);
  t.match(notes, /Keyframe Interval/);
  t.match(notes, /kubectl port-forward -n tteok service\/t-tteok-gateway 8080:80/);
  t.match(notes, /https:\/\/d111111abcdef8\.cloudfront\.net\/default\/demo\/index\.m3u8/);
});
