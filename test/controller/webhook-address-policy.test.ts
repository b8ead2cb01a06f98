// The webhook address policy on real sockets: postWebhook (what every
// delivery attempt calls) against HTTP servers on loopback, with a resolver
// the test controls, so a name that resolves to a blocked address, a DNS
// answer that changes between attempts (rebinding), and IP literals in every
// spelling the URL parser accepts are tried for real. What reaches a server
// is what the server saw.
import { createServer, type Server } from 'node:http';
import t from 'tap';
import { loadControllerConfig } from '../../controller/config.ts';
import { WebhookAddressPolicy, type Resolver } from '../../controller/webhook-address-policy.ts';
import { postWebhook } from '../../controller/webhook-post.ts';

async function server(host: string, port = 0): Promise<{ port: number; hits: string[]; close(): Promise<void> } | undefined> {
  const hits: string[] = [];
  const s: Server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url} host=${req.headers.host}`);
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  const ok = await new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, host, () => resolve(true));
  });
  if (!ok) return undefined;
  const address = s.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  };
}

const a = (await server('127.0.0.1'))!;
// "Another address" on the same port: what a rebinding name would point at instead.
const b = await server('127.0.0.2', a.port);
t.teardown(async () => {
  await a.close();
  await b?.close();
});

const post = (url: string, policy: WebhookAddressPolicy | undefined) =>
  postWebhook({ url, headers: { 'content-type': 'application/json' }, body: '{}', timeoutMs: 3000, signal: new AbortController().signal, policy });
const resolverOf = (answers: Record<string, string[][]>): Resolver => {
  const calls = new Map<string, number>();
  return async (hostname) => {
    const n = calls.get(hostname) ?? 0;
    calls.set(hostname, n + 1);
    const list = answers[hostname];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return list[Math.min(n, list.length - 1)]!.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
};

t.test('the built-in ranges are blocked, public addresses are not, and the operator can add and allow ranges', async (t) => {
  const policy = new WebhookAddressPolicy({ allowedCidrs: [], blockedCidrs: [] });
  for (const ip of [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '100.64.0.1',
    '169.254.169.254',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'fd00:ec2::254',
    'ff02::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
  ]) {
    t.notOk(policy.allows(ip), `${ip} blocked`);
  }
  for (const ip of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) t.ok(policy.allows(ip), `${ip} allowed`);
  const operator = new WebhookAddressPolicy({ allowedCidrs: ['10.20.0.0/16'], blockedCidrs: ['203.0.113.0/24'] });
  t.ok(operator.allows('10.20.3.4'), 'an allowed range opens only itself…');
  t.notOk(operator.allows('10.21.0.1'), '…not the rest of 10/8');
  t.notOk(operator.allows('203.0.113.9'), 'an added range (a public pod range) is blocked');
});

t.test('a name that resolves to a blocked address is not requested', async (t) => {
  const policy = new WebhookAddressPolicy({
    allowedCidrs: [],
    blockedCidrs: [],
    resolve: resolverOf({ 'hooks.example.test': [['10.0.0.5']], 'local.example.test': [['127.0.0.1']] }),
  });
  t.same(await post(`http://hooks.example.test:${a.port}/x`, policy), {
    failure: 'blocked by address policy',
    detail: 'ETTEOK_ADDRESS_BLOCKED: blocked by address policy',
  });
  t.equal((await post(`http://local.example.test:${a.port}/x`, policy)).failure, 'blocked by address policy');
  t.equal(
    (await post(`http://localhost:${a.port}/x`, new WebhookAddressPolicy({ allowedCidrs: [], blockedCidrs: [] }))).failure,
    'blocked by address policy',
    'localhost, with the system resolver',
  );
  t.equal((await post(`http://nowhere.example.test:${a.port}/x`, policy)).failure, 'name not resolved');
  t.same(a.hits, [], 'nothing reached the server');
});

t.test('IP literals in any spelling are checked (no lookup happens for them)', async (t) => {
  const policy = new WebhookAddressPolicy({ allowedCidrs: [], blockedCidrs: [] });
  for (const host of ['127.0.0.1', '0x7f.1', '2130706433', '0177.0.0.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
    t.equal((await post(`http://${host}:${a.port}/x`, policy)).failure, 'blocked by address policy', host);
  }
  t.same(a.hits, [], 'nothing reached the server');
});

t.test('the socket connects to the address that was checked, on every attempt (no DNS-rebinding window)', async (t) => {
  if (!b) throw new Error('cannot listen on 127.0.0.2, the other loopback address this test needs');
  // 127.0.0.1 stands for a public address (allowed), 127.0.0.2 for an internal one (not); both listen on the same port.
  const allowOne = { allowedCidrs: ['127.0.0.1/32'], blockedCidrs: [] };
  const mixed = new WebhookAddressPolicy({ ...allowOne, resolve: resolverOf({ 'mixed.example.test': [['127.0.0.2', '127.0.0.1']] }) });
  t.equal((await post(`http://mixed.example.test:${a.port}/mixed`, mixed)).failure, undefined, 'a name with a blocked and an allowed address: delivered…');
  t.match(a.hits, [/POST \/mixed host=mixed\.example\.test:/], '…to the allowed one, with the name in Host');
  const rebinding = new WebhookAddressPolicy({ ...allowOne, resolve: resolverOf({ 'rebind.example.test': [['127.0.0.1'], ['127.0.0.2']] }) });
  t.equal((await post(`http://rebind.example.test:${a.port}/first`, rebinding)).failure, undefined, 'first attempt: the name resolves to the allowed address');
  t.equal(
    (await post(`http://rebind.example.test:${a.port}/second`, rebinding)).failure,
    'blocked by address policy',
    'second attempt: resolved again, now to a blocked address',
  );
  t.equal(a.hits.filter((h) => h.startsWith('POST /first')).length, 1, 'the first reached the allowed address');
  t.same(b.hits, [], 'the blocked address got no request on any attempt');
});

t.test('failures are reduced to a class with no address, port or error text', async (t) => {
  const allowLoopback = new WebhookAddressPolicy({ allowedCidrs: ['127.0.0.0/8'], blockedCidrs: [] });
  const closed = await server('127.0.0.1');
  const port = closed!.port;
  await closed!.close();
  const refused = await post(`http://127.0.0.1:${port}/x`, allowLoopback);
  t.equal(refused.failure, 'refused');
  t.match(refused.detail, /ECONNREFUSED/, 'the detail (for the log only) keeps the error');
  const tls = await post(`https://127.0.0.1:${a.port}/x`, allowLoopback);
  t.equal(tls.failure, 'TLS error', 'https to a plain HTTP server');
  const status = await server('127.0.0.1');
  t.teardown(async () => {
    await status?.close();
  });
  t.equal((await post(`http://127.0.0.1:${status!.port}/x`, allowLoopback)).failure, undefined, '2xx: acknowledged');
});

t.test('TTEOK_WEBHOOK_ALLOWED_CIDRS and TTEOK_WEBHOOK_BLOCKED_CIDRS: parsed, a bad one refused by name', async (t) => {
  const base = { TTEOK_POD_NAME: 'c', TTEOK_POD_NAMESPACE: 'tteok' };
  t.same(loadControllerConfig(base).webhooks.addressPolicy, { allowedCidrs: [], blockedCidrs: [] }, 'default: nothing allowed beyond public addresses');
  t.same(
    loadControllerConfig({ ...base, TTEOK_WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8, fd00:1::/64', TTEOK_WEBHOOK_BLOCKED_CIDRS: '203.0.113.7' }).webhooks
      .addressPolicy,
    { allowedCidrs: ['127.0.0.0/8', 'fd00:1::/64'], blockedCidrs: ['203.0.113.7'] },
  );
  t.throws(
    () => loadControllerConfig({ ...base, TTEOK_WEBHOOK_ALLOWED_CIDRS: '10.0.0.0/33' }),
    /TTEOK_WEBHOOK_ALLOWED_CIDRS: "10\.0\.0\.0\/33" is not an address range/,
  );
  t.throws(
    () => loadControllerConfig({ ...base, TTEOK_WEBHOOK_BLOCKED_CIDRS: 'cluster.local' }),
    /TTEOK_WEBHOOK_BLOCKED_CIDRS: "cluster\.local" is not an address range/,
  );
});
