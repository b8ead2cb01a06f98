// The controller's webhook settings: defaults, and a clear error for each bad value.
import t from 'tap';
import { ConfigError } from '../../common/env-config.ts';
import { loadControllerConfig } from '../../controller/config.ts';
import { urlAllowed } from '../../controller/webhooks.ts';

const base = { TTEOK_POD_NAME: 'c', TTEOK_POD_NAMESPACE: 'tteok' };

t.test('defaults: no global webhook, retries for a day', async (t) => {
  const w = loadControllerConfig(base).webhooks;
  t.equal(w.global, undefined);
  t.same(
    {
      timeoutMs: w.timeoutMs,
      retryInitialMs: w.retryInitialMs,
      retryMaxMs: w.retryMaxMs,
      maxAgeMs: w.maxAgeMs,
      maxPending: w.maxPending,
      concurrency: w.concurrency,
    },
    { timeoutMs: 10_000, retryInitialMs: 5000, retryMaxMs: 600_000, maxAgeMs: 86_400_000, maxPending: 50, concurrency: 16 },
  );
});

t.test('a global webhook with its key and an event filter', async (t) => {
  const w = loadControllerConfig({
    ...base,
    TTEOK_WEBHOOK_URL: 'https://api.example.com/hooks',
    TTEOK_WEBHOOK_SECRET: 'x'.repeat(16),
    TTEOK_WEBHOOK_EVENTS: 'stream.live, stream.offline',
  }).webhooks;
  t.same(w.global, { url: 'https://api.example.com/hooks', secret: 'x'.repeat(16), events: ['stream.live', 'stream.offline'] });
});

t.test('bad values are refused, naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ TTEOK_WEBHOOK_URL: 'ftp://example.com/x', TTEOK_WEBHOOK_SECRET: 'x'.repeat(16) }, /TTEOK_WEBHOOK_URL must be an http\(s\) URL/],
    [{ TTEOK_WEBHOOK_URL: 'https://example.com/x' }, /TTEOK_WEBHOOK_SECRET must be set/],
    [{ TTEOK_WEBHOOK_URL: 'https://example.com/x', TTEOK_WEBHOOK_SECRET: 'short' }, /at least 16 characters/],
    [
      { TTEOK_WEBHOOK_URL: 'https://example.com/x', TTEOK_WEBHOOK_SECRET: 'x'.repeat(16), TTEOK_WEBHOOK_EVENTS: 'stream.live,stream.exploded' },
      /TTEOK_WEBHOOK_EVENTS: unknown event "stream.exploded"/,
    ],
    [{ TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS: '10', TTEOK_WEBHOOK_RETRY_MAX_SECONDS: '5' }, /TTEOK_WEBHOOK_RETRY_MAX_SECONDS must be at least/],
    [{ TTEOK_WEBHOOK_MAX_AGE_SECONDS: '0' }, /TTEOK_WEBHOOK_MAX_AGE_SECONDS must be a number/],
    [{ TTEOK_WEBHOOK_TIMEOUT_SECONDS: 'soon' }, /TTEOK_WEBHOOK_TIMEOUT_SECONDS must be a number/],
    [{ TTEOK_WEBHOOK_MAX_PENDING: '0' }, /TTEOK_WEBHOOK_MAX_PENDING must be an integer/],
    [{ TTEOK_WEBHOOK_CONCURRENCY: '1.5' }, /TTEOK_WEBHOOK_CONCURRENCY must be an integer/],
    [
      { TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: 'https://api.example.com/hooks' },
      /TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "https:\/\/api.example.com\/hooks" must be an http\(s\) URL ending in "\/"/,
    ],
    [{ TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: 'ftp://files.example.com/' }, /must be an http\(s\) URL/],
  ];
  for (const [env, message] of cases) {
    let err: unknown;
    try {
      loadControllerConfig({ ...base, ...env });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ConfigError, `${Object.keys(env).join(', ')}: refused`);
    t.match((err as Error | undefined)?.message, message, `${Object.keys(env).join(', ')}: says why`);
  }
});

t.test('allowed URL prefixes match on a path boundary, normalized', async (t) => {
  const { allowedUrlPrefixes } = loadControllerConfig({
    ...base,
    TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: 'https://API.example.com, https://hooks.example.org/tteok/',
  }).webhooks;
  t.same(allowedUrlPrefixes, ['https://api.example.com/', 'https://hooks.example.org/tteok/']);
  t.ok(urlAllowed('https://api.example.com/hooks?x=1', allowedUrlPrefixes));
  t.ok(urlAllowed('https://hooks.example.org/tteok/in', allowedUrlPrefixes));
  t.notOk(urlAllowed('https://api.example.com.evil.net/hooks', allowedUrlPrefixes), 'not a longer host name');
  t.notOk(urlAllowed('https://hooks.example.org/tteokx/in', allowedUrlPrefixes), 'not a longer path segment');
  t.notOk(urlAllowed('http://api.example.com/hooks', allowedUrlPrefixes), 'not another scheme');
  t.ok(urlAllowed('http://anything.example/', undefined), 'no prefixes: any URL');
});

t.test('encoded path separators and dot segments are refused, whatever the prefixes', async (t) => {
  const prefixes = ['https://api.example.com/tteok/'];
  for (const url of [
    'https://api.example.com/tteok/..%2fadmin',
    'https://api.example.com/tteok/..%2Fadmin',
    'https://api.example.com/tteok/%2e%2e/admin',
    'https://api.example.com/tteok/.%2E/admin',
    'https://api.example.com/tteok/..%5cadmin',
    'https://api.example.com/tteok/..\\admin',
    'https://api.example.com/tteok/./hooks',
    'https://api.example.com/tteok/a/../../admin',
  ]) {
    t.notOk(urlAllowed(url, prefixes), `${url}: not under the prefix`);
    t.notOk(urlAllowed(url, undefined), `${url}: refused even with no prefixes`);
  }
  t.ok(urlAllowed('https://api.example.com/tteok/hooks?next=%2fdashboard', prefixes), 'an encoded slash in the query string is fine');
  t.ok(urlAllowed('https://api.example.com/tteok/v1.2/hooks..json', prefixes), 'dots inside a segment are fine');
  t.ok(urlAllowed('https://api.example.com/tteok/hooks?from=/../x#/./y', prefixes), 'dot segments in the query or fragment are not the path');
  const cases: Array<[Record<string, string>, RegExp]> = [
    [
      { TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: 'https://api.example.com/tteok/%2e%2e/' },
      /TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "https:\/\/api.example.com\/tteok\/%2e%2e\/" is refused: its path has a dot segment/,
    ],
    [
      { TTEOK_WEBHOOK_URL: 'https://api.example.com/a%2fb', TTEOK_WEBHOOK_SECRET: 'x'.repeat(16) },
      /TTEOK_WEBHOOK_URL "https:\/\/api.example.com\/a%2fb" is refused: its path has an encoded path separator/,
    ],
  ];
  for (const [env, message] of cases) t.throws(() => loadControllerConfig({ ...base, ...env }), message, `${Object.keys(env).join(', ')}: refused, saying why`);
});
