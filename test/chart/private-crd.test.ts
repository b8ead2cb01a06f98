// spec.playback.access on the real kube-apiserver: it defaults to public, a
// wrong value is refused with a message naming the field, kubectl shows it
// as a column, and the gateway's Kubernetes view reports it.
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import type { LiveStreamObject } from '../../common/livestream.ts';
import { stateFromLiveStream } from '../../gateway/views/kube-stream-view.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { run, tool } from '../../harness/chart-tools.ts';

const kube = await startKubeApiServer();
t.teardown(() => kube.stop());
const NS = 'private-crd';
const { custom } = await adminWithLiveStreams(kube, [NS]);
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const create = (name: string, spec: Record<string, unknown>) =>
  custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name }, spec },
  }) as Promise<LiveStreamObject>;

t.test('access defaults to public; private is kept', async (t) => {
  const open = await create('open', { title: 'Open' });
  t.same(open.spec?.playback, { access: 'public' });
  t.equal(stateFromLiveStream(open).access, 'public');
  const members = await create('members', { title: 'Members', playback: { access: 'private' } });
  t.equal(members.spec?.playback?.access, 'private');
  t.equal(stateFromLiveStream(members).access, 'private', "the gateway's view says private");
});

t.test('a wrong access value is refused, naming the field', async (t) => {
  const error = await create('bad', { playback: { access: 'secret' } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof ApiException, 'refused');
  t.equal((error as ApiException<unknown>).code, 422);
  const status = JSON.parse(String((error as ApiException<unknown>).body)) as { message: string };
  t.match(status.message, /spec\.playback\.access: Unsupported value: "secret": supported values: "public", "private"/);
});

t.test('kubectl get shows the access column', async (t) => {
  const res = await run(tool('kubectl'), ['--kubeconfig', kube.kubeconfigPath, 'get', 'livestreams', '-n', NS]);
  t.equal(res.code, 0, res.stderr);
  const [header, ...rows] = res.stdout.trim().split('\n');
  t.match(header, /\bACCESS\b/);
  t.match(
    rows.find((r) => r.startsWith('members ')),
    /\bprivate\b/,
  );
  t.match(
    rows.find((r) => r.startsWith('open ')),
    /\bpublic\b/,
  );
});
