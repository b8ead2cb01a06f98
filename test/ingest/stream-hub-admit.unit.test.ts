// StreamHub.admit reserves a stream before its first await, so two publishes
// with the same key cannot both pass. Whatever fails after that reservation
// must let it go again (issue 17, item 8): otherwise the key stays "already
// live" until the ingest restarts. The failure is forced in process, through
// a dependency the hub calls after reserving: a live-state listener (what the
// gateway's event stream registers) that throws.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DEFAULT_SETTINGS, type StreamRef } from '../../common/livestream.ts';
import { createLogger } from '../../common/log.ts';
import type { KeySource, StreamGrant } from '../../common/keys/key-source.ts';
import type { RunStorage } from '../../ingest/run-storage.ts';
import { IngestMetrics } from '../../ingest/metrics.ts';
import { StreamHub, type StreamClaims } from '../../ingest/stream-hub.ts';
import { metricValue } from '../../harness/ingest-process.ts';
import { waitFor } from '../../harness/wait.ts';

const KEY = 'hub_admit_key_aaaaaaaaaaaaaa1';
const grant: StreamGrant = { ref: { namespace: 'default', name: 'admit' }, settings: { ...DEFAULT_SETTINGS } };
const keys: KeySource = {
  lookup: (key) => (key === KEY ? grant : undefined),
  streams: () => [grant],
  grantOf: (ref) => (ref.namespace === grant.ref.namespace && ref.name === grant.ref.name ? grant : undefined),
  onChange: () => undefined,
  ready: async () => undefined,
  close: async () => undefined,
};

/** Storage that takes everything and holds nothing: these tests look at admission only. */
const storage: RunStorage = {
  objectFinished: () => undefined,
  runEnded: () => undefined,
  settled: async () => undefined,
  readStored: async () => undefined,
};

/** Claims held in memory: what the Kubernetes Lease claims do, minus the API server. */
function memoryClaims(): StreamClaims & { held: Set<string>; released: number } {
  const held = new Set<string>();
  const claims = {
    held,
    released: 0,
    acquire: async (ref: StreamRef) => {
      const id = `${ref.namespace}/${ref.name}`;
      if (held.has(id)) return false;
      held.add(id);
      return true;
    },
    release: async (ref: StreamRef) => {
      held.delete(`${ref.namespace}/${ref.name}`);
      claims.released++;
    },
  };
  return claims;
}

function newHub(t: Test, claims?: StreamClaims): { hub: StreamHub; metrics: IngestMetrics } {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-hub-admit-'));
  const metrics = new IngestMetrics();
  const hub = new StreamHub({
    app: 'live',
    mediaDir: dir,
    reconnectGraceMs: 30_000,
    publisherIdleMs: 5000,
    takeoverSilenceMs: 1000,
    keys,
    ...(claims ? { claims } : {}),
    metrics,
    log: createLogger('test', 'silent'),
    storage,
  });
  t.teardown(async () => {
    await hub.finishAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return { hub, metrics };
}

async function counter(metrics: IngestMetrics, name: string, labels: string): Promise<number> {
  return metricValue(await metrics.registry.metrics(), name, labels);
}

for (const withClaims of [false, true]) {
  t.test(
    `a listener that throws after the publish is set up: the run ends and the key publishes again at once${withClaims ? ', its claim released' : ''}`,
    async (t) => {
      const claims = withClaims ? memoryClaims() : undefined;
      const { hub, metrics } = newHub(t, claims);
      let throwsLeft = 1;
      const events: boolean[] = [];
      hub.onLiveChange((_ref, live) => {
        events.push(live);
        if (throwsLeft-- > 0) throw new Error('a listener failed');
      });

      await t.rejects(
        hub.admit('live', KEY, () => undefined),
        /a listener failed/,
        'the first admission fails inside the hub',
      );
      // The half-admitted publish ends like an unpublish: viewers see the run end.
      await waitFor('the run begun to end', () => events.includes(false), { timeoutMs: 5000 }).then(
        () => t.pass('the run it began ends'),
        (error: Error) => t.fail(error.message),
      );
      if (claims)
        await waitFor('the claim to be released', () => !claims.held.has('default/admit'), { timeoutMs: 5000 }).then(
          () => t.pass('its claim is released'),
          (error: Error) => t.fail(error.message),
        );

      const second = await hub.admit('live', KEY, () => undefined);
      t.equal(second.ok, true, `the same key publishes again${second.ok ? '' : ` (refused: ${second.description})`}`);
      t.equal(
        await counter(metrics, 'tteok_ingest_takeovers_total', 'from="same_ingest"'),
        0,
        'at once: not by taking over from a half-admitted publish after the silence threshold',
      );
      if (second.ok) await second.publish.end(true);
    },
  );
}

t.test('claims that throw while a reconnect is admitted: the key is not locked until a restart', async (t) => {
  const claims = memoryClaims();
  let throwing = false;
  const failing: StreamClaims = {
    ...claims,
    acquire: (ref, options) => claims.acquire(ref, options),
    release: (ref) => claims.release(ref),
    reportSilence: () => {
      if (throwing) throw new Error('the claims failed');
    },
  };
  const { hub, metrics } = newHub(t, failing);
  const first = await hub.admit('live', KEY, () => undefined);
  t.equal(first.ok, true, 'the first publish is admitted');
  if (!first.ok) return;
  await first.publish.end(false); // the publisher dropped: the run waits in its reconnect grace, its claim held

  throwing = true;
  await t.rejects(
    hub.admit('live', KEY, () => undefined),
    /the claims failed/,
    'the reconnect fails inside the hub, before its publish is set up',
  );
  throwing = false;
  const third = await hub.admit('live', KEY, () => undefined);
  t.equal(third.ok, true, `the next reconnect is admitted${third.ok ? '' : ` (refused: ${third.description})`}`);
  t.equal(await counter(metrics, 'tteok_ingest_publishes_total', 'outcome="already_live"'), 0, 'never refused as already live');
  if (third.ok) await third.publish.end(true);
});
