// Live-state events with the Kubernetes view, on a real kube-apiserver and a
// listening gateway, read by a plain HTTP client (node:http): a new
// LiveStream, a status write that makes it Live (as the controller does), a
// title change, a switch to private, the end of its run and its deletion each
// arrive as one event (`changed`, `live`, `changed`, `changed`, `offline`,
// `deleted`) carrying the same bytes the lookup answers, within 1 s of the API
// server accepting the write. The namespace filter and the one-stream route
// see only their streams; a new connection gets a `reset` and the current
// state; Last-Event-ID resumes exactly after an event, and an id this gateway
// cannot resume from gets the reset and the current state.
import t from 'tap';
import { rawJson } from '../../common/kube/client.ts';
import { createLogger } from '../../common/log.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { KubeStreamView } from '../../gateway/views/kube-stream-view.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { adminWithLiveStreams } from '../../harness/kube-fixtures.ts';
import { openEventStream, type SseClient, type SseEvent } from '../../harness/sse-client.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'gwevents';
const OTHER = 'gwevents-other';
const log = createLogger('gateway-events-kube-test', process.env.TTEOK_TEST_VERBOSE === '1' ? 'debug' : 'silent');
const kube = await startKubeApiServer();
t.teardown(() => kube.stop());
const { kc, custom } = await adminWithLiveStreams(kube, [NS, OTHER]);
// Every namespace, as a gateway without TTEOK_WATCH_NAMESPACE watches.
const view = new KubeStreamView({ kc, log });
await view.ready();
const gateway = await startGateway({ view, host: '127.0.0.1', port: 0, playbackBaseUrl: 'https://cdn.example.test', followIntervalMs: 0, log });
const clients: SseClient[] = [];
t.teardown(async () => {
  for (const c of clients) c.close();
  await gateway.close();
  await view.close();
});

const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const showPath = `/apis/tteok.dev/v1alpha1/namespaces/${NS}/livestreams/show`;
async function open(path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const c = await openEventStream(`${gateway.url}${path}`, headers);
  clients.push(c);
  return c;
}
async function lookupText(namespace: string, name: string): Promise<string> {
  return (await fetch(`${gateway.url}/v1/streams/${namespace}/${name}`)).text();
}
/** Runs the write, then waits for the next event on `client` of the stream `name`; returns it and how long after the write was accepted it came. */
async function afterWrite(client: SseClient, name: string, write: () => Promise<unknown>): Promise<{ event: SseEvent; delayMs: number }> {
  const from = client.events.length;
  await write();
  const acceptedAt = Date.now();
  const event = await client.next(`an event for ${name}`, (e) => (JSON.parse(e.data) as { name: string }).name === name, { from });
  return { event, delayMs: event.at - acceptedAt };
}
async function setLive(live: boolean): Promise<void> {
  const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  await rawJson(kc, `${showPath}/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        phase: live ? 'Live' : 'Ready',
        liveSince: live ? at : null,
        conditions: [{ type: 'Live', status: live ? 'True' : 'False', reason: live ? 'Publishing' : 'Idle', message: 'x', lastTransitionTime: at }],
      },
    },
  });
}

const all = await open('/v1/streams/events');
const inNs = await open(`/v1/streams/events?namespace=${NS}`);
const inOther = await open(`/v1/streams/events?namespace=${OTHER}`);

t.test('the streams are served as Server-Sent Events', async (tt) => {
  tt.equal(all.status, 200);
  tt.equal(all.headers['content-type'], 'text/event-stream; charset=utf-8');
  tt.equal(all.headers['cache-control'], 'no-store');
  tt.equal(all.headers['access-control-allow-origin'], '*', 'CORS as every other route');
  tt.equal(all.retry, 2000, 'a reconnect delay for EventSource');
  tt.same(
    all.events.map((e) => [e.event, e.data]),
    [['reset', '{}']],
    'a reset, and no streams yet to give the current state of',
  );
});

const changes: Array<{ what: string; event: SseEvent; delayMs: number }> = [];

t.test("each change of a LiveStream is one event with the lookup's body, within 1 s", async (tt) => {
  const steps: Array<{ what: string; expect: string; write: () => Promise<unknown>; check: Record<string, unknown> }> = [
    {
      what: 'created',
      expect: 'changed',
      check: { title: 'First', live: false, phase: 'Pending', access: 'public' },
      write: () =>
        custom.createNamespacedCustomObject({
          ...GROUP,
          namespace: NS,
          body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'show' }, spec: { title: 'First' } },
        }),
    },
    {
      what: 'status Live',
      expect: 'live',
      check: { live: true, phase: 'Live', playbackUrl: `https://cdn.example.test/${NS}/show/index.m3u8` },
      write: () => setLive(true),
    },
    {
      what: 'title',
      expect: 'changed',
      check: { title: 'Second', live: true },
      write: () => rawJson(kc, showPath, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec: { title: 'Second' } } }),
    },
    {
      what: 'private',
      expect: 'changed',
      check: { access: 'private', playbackUrl: null, live: true },
      write: () => rawJson(kc, showPath, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec: { playback: { access: 'private' } } } }),
    },
    { what: 'run ended', expect: 'offline', check: { live: false, liveSince: null, phase: 'Ready' }, write: () => setLive(false) },
  ];
  for (const step of steps) {
    const { event, delayMs } = await afterWrite(all, 'show', step.write);
    changes.push({ what: step.what, event, delayMs });
    tt.equal(event.event, step.expect, `${step.what}: a ${step.expect} event`);
    tt.match(JSON.parse(event.data), { namespace: NS, name: 'show', ...step.check }, `${step.what}: its body`);
    tt.equal(event.data, await lookupText(NS, 'show'), `${step.what}: the same bytes as the lookup`);
    tt.ok(delayMs < 1000, `${step.what}: ${delayMs} ms after the API server accepted the write`);
  }
  const { event, delayMs } = await afterWrite(all, 'show', () => custom.deleteNamespacedCustomObject({ ...GROUP, namespace: NS, name: 'show' }));
  changes.push({ what: 'deleted', event, delayMs });
  tt.equal(event.event, 'deleted');
  tt.same(JSON.parse(event.data), { namespace: NS, name: 'show' });
  tt.ok(delayMs < 1000, `deleted: ${delayMs} ms`);
  tt.comment(`event delays after the write: ${changes.map((c) => `${c.what} ${c.delayMs} ms`).join(', ')}`);

  const ids = changes.map((c) => c.event.id!);
  tt.same(
    all.events.slice(1).map((e) => e.id),
    ids,
    'one event per change, nothing else',
  );
  const seqs = ids.map((id) => Number(id.split('-')[1]));
  tt.ok(
    seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1),
    `ids increase by one (${ids.join(', ')})`,
  );
  // Each stream is its own connection: the filtered one may get the last event a moment after `all` did.
  await waitFor('the namespace filter to get every event', () => inNs.events.length > ids.length, { timeoutMs: 5000, intervalMs: 20 }).catch(() => undefined);
  tt.same(
    inNs.events.slice(1).map((e) => e.id),
    ids,
    "the namespace filter sees its namespace's events",
  );
  tt.same(
    inOther.events.map((e) => e.event),
    ['reset'],
    "and another namespace's filter none of them",
  );
});

t.test('the one-stream route: 404 for an unknown stream, then only its own events', async (tt) => {
  const missing = await open(`/v1/streams/${NS}/nope/events`);
  tt.equal(missing.status, 404);
  tt.match(JSON.parse(missing.errorBody ?? '{}'), { statusCode: 404, message: /not found/ });
  const bad = await open('/v1/streams/Bad_Namespace/x/events');
  tt.equal(bad.status, 400, 'a malformed namespace is refused');

  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: OTHER,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'alpha' }, spec: { title: 'Alpha' } },
  });
  await custom.createNamespacedCustomObject({
    ...GROUP,
    namespace: OTHER,
    body: { apiVersion: 'tteok.dev/v1alpha1', kind: 'LiveStream', metadata: { name: 'beta' }, spec: { title: 'Beta' } },
  });
  await inOther.next('both new streams', (e) => JSON.parse(e.data).name === 'beta');
  const beta = await open(`/v1/streams/${OTHER}/beta/events`);
  tt.equal(beta.status, 200);
  const first = await beta.next('the current state', (e) => e.event !== 'reset');
  tt.equal(beta.events[0]!.event, 'reset', 'a new connection starts with a reset');
  tt.equal(first.event, 'changed', "then the stream's current state");
  tt.equal(first.data, await lookupText(OTHER, 'beta'));
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${OTHER}/livestreams/alpha`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { title: 'Alpha 2' } },
  });
  await rawJson(kc, `/apis/tteok.dev/v1alpha1/namespaces/${OTHER}/livestreams/beta`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { spec: { title: 'Beta 2' } },
  });
  const second = await beta.next("beta's title change", (e) => JSON.parse(e.data).title === 'Beta 2', { from: 2 });
  tt.equal(second.event, 'changed');
  await all.next("alpha's change on the all-streams connection", (e) => JSON.parse(e.data).title === 'Alpha 2');
  tt.same(
    beta.events.slice(1).map((e) => JSON.parse(e.data).name),
    ['beta', 'beta'],
    'nothing about alpha',
  );
});

t.test('Last-Event-ID resumes after that event; an id it cannot resume from gets the current state', async (tt) => {
  const liveEvent = changes.find((c) => c.what === 'status Live')!.event;
  const resumed = await open(`/v1/streams/events?namespace=${NS}`, { 'last-event-id': liveEvent.id! });
  const after = changes.slice(changes.findIndex((c) => c.event === liveEvent) + 1).map((c) => c.event);
  await resumed.next('the last missed event', (e) => e.id === after.at(-1)!.id);
  tt.same(
    resumed.events.map((e) => [e.id, e.event, e.data]),
    after.map((e) => [e.id, e.event, e.data]),
    'exactly the missed events, with their ids (no reset)',
  );

  const current = await open(`/v1/streams/events?namespace=${OTHER}`, { 'last-event-id': 'someothergateway-12' });
  const state = await current.next('the current state', (e) => JSON.parse(e.data).name === 'beta');
  tt.same(
    current.events.map((e) => [e.event, JSON.parse(e.data).name]),
    [
      ['reset', undefined],
      ['changed', 'alpha'],
      ['changed', 'beta'],
    ],
    "another gateway's id: a reset and every matching stream's current state",
  );
  tt.equal(state.data, await lookupText(OTHER, 'beta'));
  tt.equal(state.id, all.events.at(-1)!.id, 'carrying the newest id, to resume from');
});

t.test('closing the gateway ends the open event streams', async (tt) => {
  const open = clients.filter((c) => c.status === 200 && !c.ended());
  tt.ok(open.length >= 4, `${open.length} open`);
  const started = Date.now();
  await gateway.close();
  await Promise.all(open.map((c) => c.end));
  tt.ok(
    open.every((c) => c.ended()),
    `all ended, ${Date.now() - started} ms after close began`,
  );
});
