// The hub in process (ingest/stream-hub.ts): admission and the map of runs,
// with the real key file source, the real uploader and the local store.
// What a publisher is told, what viewers see live, and who holds the claim.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { StreamRef } from '../../common/livestream.ts';
import { FileKeySource } from '../../common/keys/file-key-source.ts';
import { StreamHub, type StreamClaims } from '../../ingest/stream-hub.ts';
import { clipTags, FAST_FEED_LIMITS, log, publish, REF, rig, storedPlaylist, untilStored, type Rig } from './run-kit.ts';
import { waitFor } from '../../harness/wait.ts';

const KEY = 'hub-test-key-0123456789';

async function hubRig(
  t: Parameters<typeof rig>[0],
  options: { claims?: StreamClaims; graceMs?: number } = {},
): Promise<{ r: Rig; hub: StreamHub; live: Array<[string, boolean]> }> {
  const r = await rig(t);
  const keysFile = join(r.mediaDir, '..', 'keys.yaml');
  await writeFile(
    keysFile,
    `apiVersion: tteok.dev/v1alpha1\nkind: LiveStream\nmetadata:\n  name: ${REF.name}\n  namespace: ${REF.namespace}\nstreamKey: ${KEY}\n`,
  );
  const keys = new FileKeySource(keysFile, log);
  await keys.ready();
  t.teardown(() => keys.close());
  const hub = new StreamHub({
    app: 'live',
    mediaDir: r.mediaDir,
    reconnectGraceMs: options.graceMs ?? 60_000,
    publisherIdleMs: 60_000,
    takeoverSilenceMs: 200,
    keys,
    ...(options.claims ? { claims: options.claims } : {}),
    metrics: r.metrics,
    log,
    storage: r.ctx.storage,
    publishLimits: FAST_FEED_LIMITS,
  });
  const live: Array<[string, boolean]> = [];
  hub.onLiveChange((ref, isLive) => live.push([ref.name, isLive]));
  t.teardown(() => hub.finishAll());
  return { r, hub, live };
}

/** Claims held in memory, as one ingest pod sees the fleet's: enough to check who holds what when. */
class MemoryClaims implements StreamClaims {
  readonly held = new Set<string>();
  readonly log: string[] = [];
  private lost?: (ref: StreamRef, lost: { newHolder?: string }) => void;
  async acquire(ref: StreamRef): Promise<boolean> {
    this.log.push(`acquire ${ref.name}`);
    this.held.add(ref.name);
    return true;
  }
  async release(ref: StreamRef): Promise<void> {
    this.log.push(`release ${ref.name}`);
    this.held.delete(ref.name);
  }
  onLost(listener: (ref: StreamRef, lost: { newHolder?: string }) => void): void {
    this.lost = listener;
  }
  takeOver(ref: StreamRef, newHolder: string): void {
    this.held.delete(ref.name);
    this.lost?.(ref, { newHolder });
  }
}

t.test('refusals say why, and admit nothing', async (t) => {
  const { hub, live } = await hubRig(t);
  const refused = async (app: string, key: string) => {
    const a = await hub.admit(app, key, () => undefined);
    return a.ok ? 'admitted' : a.description;
  };
  t.equal(await refused('other', KEY), 'Unknown application; publish to /live/<stream key>.');
  t.equal(await refused('live', 'short'), 'Malformed stream key.');
  t.equal(await refused('live', 'unknown-key-0123456789'), 'Unknown stream key.');
  t.same(live, [], 'no stream went live');
  t.equal(hub.liveCount, 0);
});

t.test('a reconnect within the grace continues the run; a publish after its end starts a new one', async (t) => {
  const { r, hub, live } = await hubRig(t);
  const tags = await clipTags(t);
  const first = await hub.admit('live', KEY, () => undefined);
  if (!first.ok) throw new Error(first.description);
  // Media flowing (a tag every 5 ms) while a second publish with the same key asks.
  const feeding = (async () => {
    for (const tag of tags) {
      publish(first.publish.session, [tag]);
      await sleep(5);
    }
  })();
  const second = await hub.admit('live', KEY, () => undefined);
  t.same(second.ok ? 'admitted' : second.description, 'This stream already has a publisher.', 'a second publisher of a stream whose media flows is refused');
  await feeding;
  await untilStored(r, 3);
  await first.publish.end(false);
  const back = await hub.admit('live', KEY, () => undefined);
  if (!back.ok) throw new Error(back.description);
  publish(back.publish.session, tags, 10_000);
  await back.publish.end(true);
  await waitFor('the run reported over', () => live.length === 2, { timeoutMs: 20_000, intervalMs: 20 });
  t.same(
    live,
    [
      ['room', true],
      ['room', false],
    ],
    'one run: live once, over once (after its final playlist is stored)',
  );
  const list = await storedPlaylist(r);
  t.ok(list?.ended && list.segments.some((s) => s.discontinuity), 'one playlist, continued after a discontinuity, ended');
  const again = await hub.admit('live', KEY, () => undefined);
  t.ok(again.ok, 'a publish after the end is admitted');
  await waitFor('a new run', () => live.length === 3, { timeoutMs: 5000, intervalMs: 20 });
  t.same(live.at(-1), ['room', true]);
});

t.test('a silent publisher is taken over by a new publish with the same key', async (t) => {
  const { hub } = await hubRig(t);
  let disconnected = 0;
  const first = await hub.admit('live', KEY, () => void disconnected++);
  t.ok(first.ok);
  // No media from the first publisher: after the takeover silence the newcomer is admitted.
  const second = await hub.admit('live', KEY, () => undefined);
  t.ok(second.ok, 'taken over');
  t.equal(disconnected, 1, 'the silent publisher was disconnected');
});

t.test('the claim: acquired at admission, held through the run, let go once its objects are stored', async (t) => {
  const claims = new MemoryClaims();
  const { r, hub } = await hubRig(t, { claims });
  const tags = await clipTags(t);
  const a = await hub.admit('live', KEY, () => undefined);
  if (!a.ok) throw new Error(a.description);
  t.same(claims.log, ['acquire room']);
  publish(a.publish.session, tags);
  await untilStored(r, 3);
  await a.publish.end(false);
  t.same(claims.log, ['acquire room'], 'still held through the reconnect grace');
  const b = await hub.admit('live', KEY, () => undefined);
  if (!b.ok) throw new Error(b.description);
  t.same(claims.log, ['acquire room'], 'a reconnect does not claim again');
  await b.publish.end(true);
  await waitFor('the claim let go', () => claims.log.length === 2, { timeoutMs: 20_000, intervalMs: 20 });
  t.same(claims.log, ['acquire room', 'release room']);
});

t.test('the claim taken over by another ingest: the publisher is closed and the run handed over, not ended', async (t) => {
  const claims = new MemoryClaims();
  const { r, hub } = await hubRig(t, { claims });
  const tags = await clipTags(t);
  let disconnected = 0;
  const a = await hub.admit('live', KEY, () => void disconnected++);
  if (!a.ok) throw new Error(a.description);
  publish(a.publish.session, tags);
  await untilStored(r, 3);
  claims.takeOver(REF, 'ingest-1');
  await waitFor('the hand-over', () => r.ended.length === 1, { timeoutMs: 20_000, intervalMs: 20 });
  t.equal(disconnected, 1, 'the publisher is disconnected');
  t.equal(r.ended[0]!.handedOver, true, 'handed over');
  t.notOk((await storedPlaylist(r))?.ended, 'no final playlist from this ingest');
  t.notOk(claims.log.includes('release room'), 'a claim another ingest holds is not released');
});
