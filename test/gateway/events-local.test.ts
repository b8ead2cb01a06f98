// Live-state events in the one-machine mode (`tteok local` as a process, as
// `make run` starts it), with ffmpeg publishing over RTMP: the publish turns
// into a `live` event and its end into an `offline` event, each within 1 s of
// the ingest's own transition, seen by a plain node:http client and by an
// EventSource in headless Chromium. Measured without relying on polling:
// against the run's liveSince (stamped by the ingest when it accepted the
// publish), and against a lookup polled every 25 ms (the first answer that
// reports the change). The player page follows the events rather than
// polling the list, and falls back to polling when the gateway refuses its
// event stream (over TTEOK_EVENTS_MAX_CONNECTIONS, 503 JSON). Heartbeats
// come at TTEOK_EVENTS_HEARTBEAT_MS and keep a quiet stream open far past
// the gateway's (short, here) request and connection timeouts. Title edits
// in the key file are `changed` events; Last-Event-ID resumes after an id
// still in the (small, here) buffer and gets the current state for one that
// has left it. SIGTERM ends the open event streams and the process exits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { launchBrowser, type Browser } from '../../harness/browser.ts';
import { metricValue, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { localModePorts, spawnLocalMode } from '../../harness/local-mode.ts';
import { stopAll, type ManagedProcess } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { openEventStream, type SseClient, type SseEvent } from '../../harness/sse-client.ts';
import { httpReady, waitFor } from '../../harness/wait.ts';

const home = mkdtempSync(join(tmpdir(), 'tteok-events-'));
const ports = await localModePorts();
const { rtmpPort, gatewayPort } = ports;
const HEARTBEAT_MS = 300;
const CONNECTION_TIMEOUT_MS = 1000;
const MAX_CONNECTIONS = 4;
const BUFFER_SIZE = 3;
let browser: Browser | undefined;
const clients: SseClient[] = [];

t.teardown(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await stopAll();
  rmSync(home, { recursive: true, force: true });
});

const KEY = 'events-demo-key-0123456789abcdefghij';
const streamsWithTitle = (title: string): TestStream[] => [
  { name: 'demo', key: KEY, spec: { title } },
  { name: 'other', key: 'events-other-key-0123456789abcdefghi', spec: { title: 'Other' } },
];
const keysFile = join(home, 'keys.yaml');
writeKeyFile(keysFile, streamsWithTitle('Demo'));

const local: ManagedProcess = spawnLocalMode(home, ports, {
  TTEOK_RECONNECT_GRACE_SECONDS: '1',
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_EVENTS_HEARTBEAT_MS: String(HEARTBEAT_MS),
  TTEOK_EVENTS_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  TTEOK_EVENTS_BUFFER_SIZE: String(BUFFER_SIZE),
  // Short timeouts: an event stream must outlive every one of them.
  TTEOK_GATEWAY_REQUEST_TIMEOUT_MS: '800',
  TTEOK_GATEWAY_HEADERS_TIMEOUT_MS: '500',
  TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS: '500',
  TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
});
const gateway = `http://127.0.0.1:${gatewayPort}`;
await local.waitForLine(/^\s+Watch:\s+http\S+\/$/, 60_000);
await httpReady(`${gateway}/readyz`);

async function open(path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const c = await openEventStream(`${gateway}${path}`, headers);
  clients.push(c);
  return c;
}
type Body = { name: string; namespace: string; title: string; live: boolean; phase: string; liveSince: string | null; playbackUrl: string | null };
const body = (e: { data: string }): Body => JSON.parse(e.data) as Body;
async function lookup(): Promise<Body> {
  return (await (await fetch(`${gateway}/v1/streams/default/demo`)).json()) as Body;
}
async function metrics(): Promise<string> {
  return (await fetch(`${gateway}/metrics`)).text();
}
/** Polls the lookup every 25 ms; resolves with the time of the first answer whose `live` is `live`. */
async function lookupTurns(live: boolean): Promise<number> {
  return waitFor(`the lookup to say live=${live}`, async () => ((await lookup()).live === live ? Date.now() : undefined), {
    timeoutMs: 60_000,
    intervalMs: 25,
  });
}

type PageEvent = { event: string; id: string; data: string; at: number };
const pageEvents = async (): Promise<PageEvent[]> => browser!.page.evaluate(() => (window as unknown as { testEvents: PageEvent[] }).testEvents);
type PlayerStats = { state: string; listSource: string | null };
const playerStats = async (page = browser!.page): Promise<PlayerStats> => page.evaluate(() => (window as unknown as { tteokStats: PlayerStats }).tteokStats);

let all: SseClient;
let demoOnly: SseClient;
/** URLs under /v1/streams the player page requested (the list and lookups; not its event stream). */
const pagePolls: string[] = [];

t.test('a new connection gets a reset and the current state of the streams', async (tt) => {
  all = await open('/v1/streams/events');
  demoOnly = await open('/v1/streams/default/demo/events');
  tt.equal(all.status, 200);
  tt.equal(all.headers['content-type'], 'text/event-stream; charset=utf-8');
  await all.next('the current state', (e) => e.event === 'changed' && body(e).name === 'other');
  tt.same(
    all.events.map((e) => [e.event, e.event === 'reset' ? '' : body(e).name]),
    [
      ['reset', ''],
      ['changed', 'demo'],
      ['changed', 'other'],
    ],
  );
  tt.match(body(all.events[1]!), { title: 'Demo', phase: 'Ready', live: false, playbackUrl: `${gateway}/origin/default/demo/index.m3u8` });
  await demoOnly.next("demo's state", (e) => e.event === 'changed');
  tt.same(
    demoOnly.events.map((e) => e.event),
    ['reset', 'changed'],
    'the one-stream route: its stream only',
  );
});

t.test('the player page follows the events; a page in Chromium sees them with EventSource', async (tt) => {
  browser = await launchBrowser();
  const { page } = browser;
  page.on('request', (req) => {
    const path = new URL(req.url()).pathname;
    if (path.startsWith('/v1/streams') && !path.endsWith('/events')) pagePolls.push(path);
  });
  await page.goto(`${gateway}/?stream=default/demo`);
  const s = await waitFor(
    'the page to list its streams from the events',
    async () => {
      const st = await playerStats();
      return st.listSource === 'events' && st.state === 'offline' ? st : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  tt.equal(s.listSource, 'events');
  await page.waitForSelector('#streams a');
  tt.equal(await page.locator('#streams a').count(), 2, 'both streams listed');
  // The test's own EventSource on the page (same origin, as the page's CSP allows).
  await page.evaluate(() => {
    const w = window as unknown as { testEvents: PageEvent[] };
    w.testEvents = [];
    const source = new EventSource('/v1/streams/default/demo/events');
    for (const name of ['reset', 'live', 'offline', 'changed', 'deleted']) {
      source.addEventListener(name, (e) =>
        w.testEvents.push({ event: name, id: (e as MessageEvent).lastEventId, data: (e as MessageEvent).data as string, at: Date.now() }),
      );
    }
  });
  const first = await waitFor("the page's EventSource to get the state", async () => (await pageEvents()).find((e) => e.event === 'changed'), {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  tt.equal(body(first).name, 'demo');
});

let publisher: ManagedProcess | undefined;
const timings: string[] = [];

function within1s(tt: Test, what: string, at: number, reference: number, referenceName: string): void {
  const ms = at - reference;
  timings.push(`${what} ${ms} ms after ${referenceName}`);
  tt.ok(ms < 1000, `${what}: ${ms} ms after ${referenceName}`);
}

t.test('a publish is a live event within 1 s, on every connection', async (tt) => {
  const fromAll = all.events.length;
  const fromDemo = demoOnly.events.length;
  const lookupLive = lookupTurns(true);
  publisher = publishTestPattern({ url: `rtmp://127.0.0.1:${rtmpPort}/live/${KEY}`, size: '320x180' });
  const lookupAt = await lookupLive;
  const plain = await all.next('a live event', (e) => e.event === 'live', { from: fromAll, timeoutMs: 30_000 });
  const single = await demoOnly.next('a live event', (e) => e.event === 'live', { from: fromDemo, timeoutMs: 30_000 });
  const inPage = await waitFor("the page's live event", async () => (await pageEvents()).find((e) => e.event === 'live'), {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  const live = body(plain);
  tt.match(live, { name: 'demo', live: true, phase: 'Live', title: 'Demo' });
  tt.same(body(single), live, 'the same body on the one-stream route');
  tt.same(body(inPage), live, 'and in the page');
  tt.equal(plain.data, JSON.stringify(await lookup()), "the lookup's body");
  const since = Date.parse(live.liveSince!);
  within1s(tt, 'live (node:http)', plain.at, since, 'the ingest accepted the publish (liveSince)');
  within1s(tt, 'live (Chromium EventSource)', inPage.at, since, 'liveSince');
  within1s(tt, 'live (node:http)', plain.at, lookupAt, 'the lookup first said live');
  within1s(tt, 'live (Chromium EventSource)', inPage.at, lookupAt, 'the lookup first said live');
  tt.equal(plain.id, single.id, 'the same id on both routes');
  tt.equal(inPage.id, plain.id, 'and in the page (EventSource lastEventId)');

  const state = await waitFor('the player page to say live', async () => ((await playerStats()).state === 'live' ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  tt.ok(state);
  tt.equal((await browser!.page.textContent('#badge'))?.trim(), 'live');
  tt.same(pagePolls, [], 'the page never polled the list or the lookup');
});

t.test('heartbeats keep a quiet stream open past the request and connection timeouts', async (tt) => {
  const from = all.comments.length;
  await waitFor('five heartbeats', () => all.comments.length - from >= 5 || undefined, { timeoutMs: 10_000, intervalMs: 50 });
  const beats = all.comments.slice(from).filter((c) => c.text === 'heartbeat');
  tt.ok(beats.length >= 5, `${beats.length} heartbeat comments`);
  const gaps = beats
    .slice(1)
    .map((b, i) => b.at - beats[i]!.at)
    .sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)]!;
  // The median, not every gap: timers on a busy shared machine run late now and then.
  tt.ok(median > HEARTBEAT_MS / 2 && median < HEARTBEAT_MS * 2, `every ~${HEARTBEAT_MS} ms (median ${median} ms of ${gaps.join(', ')})`);
  // Open since the first subtest: past 4 × the connection timeout and 5 × the request timeout.
  await waitFor('the stream to have been open 4 connection timeouts', () => Date.now() - all.events[0]!.at > 4 * CONNECTION_TIMEOUT_MS || undefined, {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  tt.notOk(all.ended(), `still open after ${Date.now() - all.events[0]!.at} ms (connection timeout ${CONNECTION_TIMEOUT_MS} ms, request timeout 800 ms)`);
  tt.notOk(demoOnly.ended(), 'both');
});

t.test('over TTEOK_EVENTS_MAX_CONNECTIONS: 503 JSON; the player page then polls', async (tt) => {
  // Open: the two plain clients, the player page's and the test's EventSource.
  const gauge = await waitFor(
    `${MAX_CONNECTIONS} open event streams`,
    async () => {
      const v = metricValue(await metrics(), 'tteok_gateway_event_connections');
      return v === MAX_CONNECTIONS ? v : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  tt.equal(gauge, MAX_CONNECTIONS, 'the gauge counts them');
  const refused = await open('/v1/streams/events');
  tt.equal(refused.status, 503);
  tt.equal(refused.headers['retry-after'], '10');
  tt.match(refused.headers['content-type'], /application\/json/);
  tt.match(JSON.parse(refused.errorBody ?? '{}'), { statusCode: 503, error: 'Service Unavailable', message: /too many open event streams/ });
  tt.equal(metricValue(await metrics(), 'tteok_gateway_event_connections_refused_total'), 1, 'counted');

  const second = await browser!.context.newPage();
  try {
    await second.goto(`${gateway}/?stream=default/demo`);
    const st = await waitFor(
      'the second page to fall back to polling and show the stream live',
      async () => {
        const s = await playerStats(second);
        return s.listSource === 'polling' && s.state === 'live' ? s : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    tt.equal(st.listSource, 'polling', 'refused events: the page polls the list');
  } finally {
    await second.close();
  }

  demoOnly.close();
  await waitFor('a free slot', async () => metricValue(await metrics(), 'tteok_gateway_event_connections') < MAX_CONNECTIONS || undefined, {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  demoOnly = await open('/v1/streams/default/demo/events');
  tt.equal(demoOnly.status, 200, 'a slot freed is taken again');
  await demoOnly.next("demo's state", (e) => e.event === 'live');
});

t.test('the end of the run is an offline event within 1 s', async (tt) => {
  const from = all.events.length;
  const lookupOffline = lookupTurns(false);
  await publisher!.stop('SIGINT', 10_000);
  const lookupAt = await lookupOffline;
  const plain = await all.next('an offline event', (e) => e.event === 'offline', { from, timeoutMs: 30_000 });
  const inPage = await waitFor("the page's offline event", async () => (await pageEvents()).find((e) => e.event === 'offline'), {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  tt.match(body(plain), { name: 'demo', live: false, liveSince: null, phase: 'Ready' });
  tt.equal(plain.data, JSON.stringify(await lookup()), "the lookup's body");
  within1s(tt, 'offline (node:http)', plain.at, lookupAt, 'the lookup first said offline');
  within1s(tt, 'offline (Chromium EventSource)', inPage.at, lookupAt, 'the lookup first said offline');
  await waitFor('the player page to say offline', async () => ((await playerStats()).state === 'offline' ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  tt.same(pagePolls, [], 'the first page never polled');
  tt.comment(timings.join('; '));
});

t.test('title edits are changed events; Last-Event-ID resumes while the id is in the buffer', async (tt) => {
  // The page's two event streams free their slots for the connections below.
  await browser?.close();
  browser = undefined;
  await waitFor('two free slots', async () => metricValue(await metrics(), 'tteok_gateway_event_connections') <= MAX_CONNECTIONS - 2 || undefined, {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  const offline = all.events.findLast((e) => e.event === 'offline')!;
  const live = all.events.findLast((e) => e.event === 'live')!;
  const edits: SseEvent[] = [];
  for (const title of ['Demo 2', 'Demo 3', 'Demo 4']) {
    const from = all.events.length;
    writeKeyFile(keysFile, streamsWithTitle(title));
    edits.push(await all.next(`the title ${title}`, (e) => e.event === 'changed' && body(e).title === title, { from }));
  }
  tt.same(
    edits.map((e) => e.event),
    ['changed', 'changed', 'changed'],
  );
  const seq = (e: SseEvent) => Number(e.id!.split('-')[1]);
  tt.same(edits.map(seq), [seq(offline) + 1, seq(offline) + 2, seq(offline) + 3], 'ids go on increasing by one');

  const resumed = await open('/v1/streams/events', { 'last-event-id': edits[0]!.id! });
  await resumed.next('the last edit', (e) => e.id === edits[2]!.id);
  tt.same(
    resumed.events.map((e) => [e.id, e.event, e.data]),
    edits.slice(1).map((e) => [e.id, e.event, e.data]),
    'the events after the id, and nothing else',
  );
  resumed.close();

  // The buffer holds the last 3 events; the live event has left it.
  const stale = await open('/v1/streams/default/demo/events', { 'last-event-id': live.id! });
  await stale.next('the current state', (e) => e.event === 'changed');
  tt.same(
    stale.events.map((e) => e.event),
    ['reset', 'changed'],
    'an id older than the buffer: a reset and the current state',
  );
  tt.equal(body(stale.events[1]!).title, 'Demo 4');
  tt.equal(stale.events[1]!.id, edits[2]!.id, 'with the newest id');
  stale.close();
});

t.test('SIGTERM ends the open event streams and stops the process', async (tt) => {
  const stopped = local.stop('SIGTERM', 30_000);
  await Promise.all([all.end, demoOnly.end]);
  tt.ok(all.ended() && demoOnly.ended(), 'the server ended both streams');
  await stopped;
  const { code } = await local.exited;
  tt.equal(code, 0, 'exited 0');
});
