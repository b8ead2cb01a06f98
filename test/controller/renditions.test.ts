// spec.renditions on the real kube-apiserver: the CRD refuses what the
// transcoder cannot do with a message that says what to fix, keeps an
// explicit [] (none) apart from an absent list (the operator's default); the
// controller reports the renditions in force and the thumbnail's URL in the
// status (under _private/ for a private stream); and the ingest's Kubernetes
// key source hands the renditions, or TTEOK_DEFAULT_RENDITIONS, to the
// stream's settings.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { LiveStreamObject, StreamRef } from '../../common/livestream.ts';
import { MERGE_PATCH } from '../../common/kube/client.ts';
import { createLogger } from '../../common/log.ts';
import { MAX_TRANSCODED_RENDITIONS, RENDITION_PRESET_NAMES } from '../../common/renditions.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { startController } from '../../controller/controller.ts';
import { kubernetesIngestDeps } from '../../ingest/keys/kube-key-source.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams, CRD_PATH } from '../../harness/kube-fixtures.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'ladder';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const log = createLogger('renditions-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'warn');

const kube = await startKubeApiServer();
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);
const controller = await startController(
  loadControllerConfig({
    TTEOK_POD_NAME: 'controller-test',
    TTEOK_POD_NAMESPACE: SYSTEM,
    TTEOK_CONTROLLER_HTTP_HOST: '127.0.0.1',
    TTEOK_CONTROLLER_HTTP_PORT: '0',
    TTEOK_PLAYBACK_BASE_URL: 'https://d123.cloudfront.net/',
    TTEOK_S3_PREFIX: 'media',
    TTEOK_LEADER_ELECTION: 'false',
    TTEOK_DEFAULT_RENDITIONS: '480p,160p',
  }),
  { kc, log },
);
await controller.ready();
t.teardown(async () => {
  await controller.shutdown();
  await kube.stop();
});

interface Status {
  phase?: string;
  observedGeneration?: number;
  playbackUrl?: string;
  thumbnailUrl?: string;
  renditions?: string[];
}
const statusOf = async (name: string): Promise<Status & { generation?: number }> => {
  const ls = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: NS, name })) as LiveStreamObject;
  return { ...((ls.status ?? {}) as Status), generation: ls.metadata.generation };
};
/** The status once the controller has reconciled the current spec. */
const reconciled = (name: string) =>
  waitFor(
    `${name} reconciled`,
    async () => {
      const s = await statusOf(name);
      return s.phase === 'Ready' && s.observedGeneration === s.generation ? s : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );

const create = (name: string, spec: Record<string, unknown>) =>
  custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec },
  }) as Promise<LiveStreamObject>;
const refusal = async (name: string, spec: Record<string, unknown>): Promise<{ code: number | undefined; message: string }> => {
  const error = await create(name, spec).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ApiException)) return { code: undefined, message: '(accepted)' };
  return { code: error.code, message: (JSON.parse(String(error.body)) as { message: string }).message };
};

t.test("the CRD's presets are common/renditions.ts's, at most as many as the transcoder takes", async (t) => {
  const crd = parse(readFileSync(CRD_PATH, 'utf8')) as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: { properties: { renditions: Record<string, unknown> } } } } } }> };
  };
  const field = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties.renditions as {
    maxItems: number;
    'x-kubernetes-list-type': string;
    items: { enum: string[] };
    default?: unknown;
  };
  t.same(field.items.enum, RENDITION_PRESET_NAMES);
  t.equal(field.maxItems, MAX_TRANSCODED_RENDITIONS);
  t.equal(field['x-kubernetes-list-type'], 'set', 'each preset once');
  t.equal(field.default, undefined, 'no default in the CRD: absent means the operator default, which the ingest applies');
});

t.test('bad renditions are refused by the API server, the message naming the field and what is allowed', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'not a preset',
      { renditions: ['480p', '240p'] },
      /spec\.renditions\[1\]: Unsupported value: "240p": supported values: "1080p", "720p", "480p", "360p", "160p", "audio"/,
    ],
    ['a preset twice', { renditions: ['360p', '360p'] }, /spec\.renditions\[1\]: Duplicate value: "360p"/],
    ['six of them', { renditions: ['1080p', '720p', '480p', '360p', '160p', 'audio'] }, /spec\.renditions: Too many: 6: must have at most 5 items/],
    ['not a list', { renditions: '480p' }, /spec\.renditions: Invalid value: "string": spec\.renditions in body must be of type array/],
  ];
  for (const [what, spec, message] of cases) {
    const got = await refusal(`bad-${cases.findIndex((c) => c[0] === what)}`, spec);
    t.equal(got.code, 422, `${what}: refused with 422`);
    t.match(got.message, message, `${what}: ${got.message}`);
  }
  t.equal((await custom.listNamespacedCustomObject({ ...GROUP, namespace: NS })).items.length, 0, 'nothing was stored');
});

t.test('good lists are kept as written; [] stays [] and an absent list stays absent', async (t) => {
  const ladder = await create('ladder', { renditions: ['720p', '360p', 'audio'] });
  t.same(ladder.spec?.renditions, ['720p', '360p', 'audio']);
  const none = await create('none', { renditions: [] });
  t.same(none.spec?.renditions, [], 'an explicit empty list (no renditions) is kept');
  const plain = await create('plain', { title: 'Plain' });
  t.notOk(plain.spec && 'renditions' in plain.spec, 'no renditions field when none was written (the default applies)');
});

t.test('the status: the renditions in force and the thumbnail beside the playlist, private under _private/', async (t) => {
  const ladder = await reconciled('ladder');
  t.same(ladder.renditions, ['720p', '360p', 'audio'], "the spec's list");
  t.equal(ladder.playbackUrl, `https://d123.cloudfront.net/media/${NS}/ladder/index.m3u8`);
  t.equal(ladder.thumbnailUrl, `https://d123.cloudfront.net/media/${NS}/ladder/thumbnail.jpg`, 'the thumbnail beside the playlist');
  t.same((await reconciled('none')).renditions, [], '[]: none, whatever the default');
  t.same((await reconciled('plain')).renditions, ['480p', '160p'], 'no spec.renditions: the default, as the ingest applies it');

  await create('members', { playback: { access: 'private' }, renditions: ['360p'] });
  const members = await reconciled('members');
  t.equal(members.playbackUrl, `https://d123.cloudfront.net/media/_private/${NS}/members/index.m3u8`);
  t.equal(members.thumbnailUrl, `https://d123.cloudfront.net/media/_private/${NS}/members/thumbnail.jpg`, "a private stream's thumbnail is private too");

  await custom.patchNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'members', body: { spec: { renditions: ['720p', '480p'] } } }, MERGE_PATCH);
  await waitFor('the new list in the status', async () => (await statusOf('members')).renditions?.length === 2, { timeoutMs: 10_000, intervalMs: 100 });
  t.same((await statusOf('members')).renditions, ['720p', '480p'], 'a changed spec is reported');
});

t.test("the ingest's key source: the spec's renditions, TTEOK_DEFAULT_RENDITIONS for the rest, [] for none", async (t) => {
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = kube.kubeconfigPath;
  const { keys, claims } = await kubernetesIngestDeps({ TTEOK_DEFAULT_RENDITIONS: '480p,160p', TTEOK_POD_NAME: 'ingest-0', TTEOK_POD_NAMESPACE: SYSTEM }, log);
  if (previous === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = previous;
  t.teardown(async () => {
    await keys.close();
    await claims.stop?.();
  });
  await keys.ready();
  const renditionsOf = (name: string) => keys.grantOf({ namespace: NS, name } satisfies StreamRef)?.settings.renditions;
  await waitFor('the three grants', () => ['ladder', 'none', 'plain'].every((n) => renditionsOf(n) !== undefined), { timeoutMs: 10_000, intervalMs: 50 });
  t.same(renditionsOf('ladder'), ['720p', '360p', 'audio'], "the spec's list");
  t.same(renditionsOf('none'), [], '[]: none, whatever the default');
  t.same(renditionsOf('plain'), ['480p', '160p'], 'no spec.renditions: the default');
  // The key the controller made for the stream, read from its Secret as a streamer would.
  const secret = await core.readNamespacedSecret({ name: 'plain-stream-key', namespace: NS });
  const key = Buffer.from(secret.data?.streamKey ?? '', 'base64').toString('utf8');
  t.same(keys.lookup(key)?.settings.renditions, ['480p', '160p'], 'the grant a publish with its key gets carries them');

  await custom.patchNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'plain', body: { spec: { renditions: ['1080p'] } } }, MERGE_PATCH);
  await waitFor('the change followed', () => renditionsOf('plain')?.[0] === '1080p', { timeoutMs: 5000, intervalMs: 50 });
  t.same(renditionsOf('plain'), ['1080p'], 'a changed spec reaches the ingest');
});
