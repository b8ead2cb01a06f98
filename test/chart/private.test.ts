// The chart's side of private streams: the gateway reads the token secrets
// and the API key from a Secret the operator made (gateway.playbackTokens.
// existingSecret; secrets never go into values), the token lifetime from a
// value the schema bounds, and the gateway's own config loader accepts what
// the chart renders.
import t from 'tap';
import { loadGatewayConfig } from '../../gateway/config.ts';
import { CI_VALUES, get, helmTemplate, parseDocs, render, type K8sObject } from '../../harness/chart-tools.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}
const gatewayEnv = (objs: K8sObject[]): Map<string, EnvVar> => {
  const spec = (get(objs, 'Deployment', 't-tteok-gateway').spec as { template: { spec: { containers: Array<{ env?: EnvVar[] }> } } }).template.spec;
  return new Map((spec.containers[0]!.env ?? []).map((e) => [e.name, e]));
};

t.test('default: no token secrets (private streams play nowhere), the default lifetime', async (t) => {
  const env = gatewayEnv(parseDocs(await render({ values: [CI_VALUES['default']!] })));
  t.equal(env.get('TTEOK_PLAYBACK_TOKEN_TTL_SECONDS')?.value, '14400');
  t.notOk(env.has('TTEOK_PLAYBACK_TOKEN_KEYS'));
  t.notOk(env.has('TTEOK_PLAYBACK_API_KEY'));
});

t.test('existingSecret: both from the Secret, the API key optional', async (t) => {
  const objs = parseDocs(await render({ values: [CI_VALUES['all-features']!] }));
  const env = gatewayEnv(objs);
  t.same(env.get('TTEOK_PLAYBACK_TOKEN_KEYS')?.valueFrom, { secretKeyRef: { name: 'tteok-playback-tokens', key: 'TTEOK_PLAYBACK_TOKEN_KEYS' } });
  t.same(env.get('TTEOK_PLAYBACK_API_KEY')?.valueFrom, { secretKeyRef: { name: 'tteok-playback-tokens', key: 'TTEOK_PLAYBACK_API_KEY', optional: true } });
  t.equal(env.get('TTEOK_PLAYBACK_TOKEN_TTL_SECONDS')?.value, '7200');
  t.notOk(
    objs.some((o) => o.kind === 'Secret'),
    'the chart itself makes no Secret',
  );
  for (const kind of ['StatefulSet', 'Deployment']) {
    for (const o of objs.filter((x) => x.kind === kind && x.metadata.name !== 't-tteok-gateway')) {
      t.notMatch(JSON.stringify(o), 'tteok-playback-tokens', `${o.metadata.name} does not get the token secrets`);
    }
  }
  // What the gateway makes of it, with the Secret's values filled in.
  const plain = Object.fromEntries([...env.values()].filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  const config = loadGatewayConfig({
    ...plain,
    TTEOK_PLAYBACK_BASE_URL: 'https://d111111abcdef8.cloudfront.net',
    TTEOK_PLAYBACK_TOKEN_KEYS: 'k2:current-secret-0123456789abcdefghijklmnop,k1:previous-secret-0123456789abcdefghijklmno',
    TTEOK_PLAYBACK_API_KEY: 'backend-api-key-0123456789abcdefghijklmnop',
  });
  t.equal(config.playbackTokens.keyring?.signing.id, 'k2');
  t.same(
    config.playbackTokens.keyring?.all.map((k) => k.id),
    ['k2', 'k1'],
  );
  t.equal(config.playbackTokens.ttlSeconds, 7200);
});

t.test('the schema bounds the lifetime', async (t) => {
  const bad = await helmTemplate({ values: [CI_VALUES['default']!], set: ['gateway.playbackTokens.ttlSeconds=10'] });
  t.not(bad.code, 0);
  t.match(bad.stderr, /ttlSeconds/);
});

t.test('the gateway refuses bad token settings with a clear message, naming no secret', async (t) => {
  const base = { TTEOK_STORAGE: 'local' };
  t.throws(
    () => loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_KEYS: 'k1:short' }),
    /TTEOK_PLAYBACK_TOKEN_KEYS: key "k1": the secret must be at least 32 characters/,
  );
  t.throws(() => loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_KEYS: 'no-colon-0123456789abcdefghijklmnopqrstuvwxyz' }), /each key must be <id>:<secret>/);
  const dup = 'k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,k1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
  t.throws(() => loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_KEYS: dup }), /appears twice/);
  try {
    loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_KEYS: 'k1:tooshort-secret' });
  } catch (error) {
    t.notMatch((error as Error).message, 'tooshort-secret', 'the message does not echo the secret');
  }
  t.throws(() => loadGatewayConfig({ ...base, TTEOK_PLAYBACK_API_KEY: 'x'.repeat(40) }), /TTEOK_PLAYBACK_TOKEN_KEYS is not/);
  t.throws(
    () =>
      loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_KEYS: dup.replace(',k1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', ''), TTEOK_PLAYBACK_API_KEY: 'short' }),
    /at least 32 characters/,
  );
  t.throws(
    () => loadGatewayConfig({ ...base, TTEOK_PLAYBACK_TOKEN_TTL_SECONDS: '5' }),
    /TTEOK_PLAYBACK_TOKEN_TTL_SECONDS must be an integer between 60 and 604800/,
  );
});
