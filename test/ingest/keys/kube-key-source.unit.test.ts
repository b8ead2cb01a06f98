// How the ingest's Kubernetes key source reads a LiveStream: a grant keyed by
// the SHA-256 the controller published in status, settings from the spec;
// nothing before the hash is published, nothing once the LiveStream is being
// deleted, and a malformed status is ignored rather than trusted. (The key
// source following a real API server is in test/common/kube/informer.test.ts, and
// real publishes in test/ingest/kube-ingest.test.ts.)
import { createHash } from 'node:crypto';
import t from 'tap';
import { STREAM_KEY_SHA256_PATTERN, streamKeySha256 } from '../../../common/kube/contract.ts';
import { DEFAULT_SETTINGS } from '../../../common/livestream.ts';
import { grantFromLiveStream } from '../../../ingest/keys/kube-key-source.ts';

const KEY = 'Zm9vYmFyYmF6cXV4cXV1eHh5enp5MTIz';
const HASH = createHash('sha256').update(KEY).digest('hex');

function ls(fields: { status?: Record<string, unknown>; spec?: Record<string, unknown>; deleting?: boolean; name?: string; namespace?: string }) {
  return {
    apiVersion: 'tteok.dev/v1alpha1',
    kind: 'LiveStream',
    metadata: {
      name: fields.name ?? 'show',
      namespace: fields.namespace ?? 'streams',
      ...(fields.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    ...(fields.spec ? { spec: fields.spec } : {}),
    ...(fields.status ? { status: fields.status } : {}),
  };
}

t.test('the hash is the hex SHA-256 of the key as UTF-8', async (t) => {
  t.equal(streamKeySha256(KEY), HASH);
  t.match(streamKeySha256(KEY), STREAM_KEY_SHA256_PATTERN);
  t.not(streamKeySha256(KEY + 'x'), HASH);
});

t.test("a published hash grants the stream, with its spec's settings and defaults", async (t) => {
  t.same(grantFromLiveStream(ls({ status: { streamKeySha256: HASH } })), {
    keySha256: HASH,
    grant: { ref: { namespace: 'streams', name: 'show' }, settings: DEFAULT_SETTINGS },
  });
  const read = grantFromLiveStream(ls({ status: { streamKeySha256: HASH }, spec: { title: 'Show', enabled: false, hls: { segmentSeconds: 2 } } }));
  t.match(
    read,
    { grant: { settings: { title: 'Show', enabled: false, segmentSeconds: 2, playlistLength: 6 } } },
    'a disabled stream is still known (refused as disabled, not as unknown)',
  );
});

t.test('no grant before the hash is published, or while the LiveStream is being deleted', async (t) => {
  t.same(grantFromLiveStream(ls({})), { none: 'no key published yet' });
  t.same(grantFromLiveStream(ls({ status: { phase: 'Error' } })), { none: 'no key published yet' });
  t.same(grantFromLiveStream(ls({ status: { streamKeySha256: HASH }, deleting: true })), { none: 'being deleted' });
});

t.test('a malformed status or name is a problem, never a grant', async (t) => {
  for (const bad of [HASH.toUpperCase(), HASH.slice(1), KEY, '', 42]) {
    t.ok('problem' in grantFromLiveStream(ls({ status: { streamKeySha256: bad } })), `streamKeySha256 ${JSON.stringify(bad).slice(0, 20)}: refused`);
  }
  t.ok('problem' in grantFromLiveStream(ls({ status: { streamKeySha256: HASH }, spec: { hls: { segmentSeconds: 99 } } })), 'a spec out of range');
  t.ok('problem' in grantFromLiveStream(ls({ status: { streamKeySha256: HASH }, namespace: 'Not_A_Namespace' })), 'a bad namespace');
});
