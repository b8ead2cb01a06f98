// The gateway's lookup answers from a cache (each stream's JSON serialized
// once per change): with the Kubernetes view, a real kube-apiserver and a
// listening gateway, every change to a LiveStream that was looked up before
// (its title, going live through the status subresource, deletion) shows in
// the next lookups, however many times the old answer was served.
import t, { type Test } from 'tap';
import { createLogger } from '../../common/log.ts';
import { rawJson } from '../../common/kube/client.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { KubeStreamView } from '../../gateway/views/kube-stream-view.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'gwcache';
const log = createLogger('gateway-kube-view-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');
const kube = await startKubeApiServer();
t.teardown(() => kube.stop());
const { kc, custom } = await adminWithLiveStreams(kube, [NS]);
const view = new KubeStreamView({ kc, namespace: NS, log });
await view.ready();
const gateway = await startGateway({ view, host: '127.0.0.1', port: 0, playbackBaseUrl: 'https://cdn.example.test', followIntervalMs: 0, log });
t.teardown(async () => {
  await gateway.close();
  await view.close();
});

const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const lookupUrl = `${gateway.url}/v1/streams/${NS}/show`;
async function lookup(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(lookupUrl);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
/** Waits for a lookup matching `accept`, then checks that the next ten lookups (the cached answer) agree. */
async function settlesOn(tt: Test, what: string, accept: (l: { status: number; body: Record<string, unknown> }) => boolean): Promise<Record<string, unknown>> {
  const found = await waitFor(
    what,
    async () => {
      const l = await lookup();
      return accept(l) ? l : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  for (let i = 0; i < 10; i++) tt.ok(accept(await lookup()), `${what}: lookup ${i + 2} agrees`);
  return found.body;
}

t.test("a looked-up stream's changes show in the next lookups", async (tt) => {
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: NS,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'show' }, spec: { title: 'First title' } },
  });
  const first = await settlesOn(tt, 'the new stream', (l) => l.status === 200 && l.body.title === 'First title');
  tt.match(first, {
    namespace: NS,
    name: 'show',
    phase: 'Pending',
    live: false,
    liveSince: null,
    playbackUrl: `https://cdn.example.test/${NS}/show/index.m3u8`,
  });

  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/show`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { title: 'Second title' } },
  });
  await settlesOn(tt, 'the new title', (l) => l.body.title === 'Second title');

  const since = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/show/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        phase: 'Live',
        liveSince: since,
        conditions: [{ type: 'Live', status: 'True', reason: 'Publishing', message: 'x', lastTransitionTime: since }],
      },
    },
  });
  const live = await settlesOn(tt, 'live', (l) => l.body.live === true);
  tt.match(live, { phase: 'Live', liveSince: since, title: 'Second title' });

  await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'show' });
  await settlesOn(tt, 'gone', (l) => l.status === 404);
});
