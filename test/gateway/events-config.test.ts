// The live-state events' settings (README, Gateway table): documented
// defaults, a heartbeat that always stays below the connection timeout (it is
// what keeps that timeout from cutting a quiet event stream), and clear
// errors for bad values.
import t from 'tap';
import { ConfigError } from '../../common/env-config.ts';
import { loadGatewayConfig } from '../../gateway/config.ts';

const CDN = 'https://cdn.example.test';
const load = (env: Record<string, string> = {}) => loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: CDN, ...env });
const refused = (env: Record<string, string>): string => {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return '(accepted)';
};

t.test('defaults', async (tt) => {
  tt.same(load().events, { heartbeatMs: 15_000, maxConnections: 1000, maxConnectionsPerAddress: 20, bufferSize: 1000 });
  tt.equal(load({ TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '10000' }).events.heartbeatMs, 5000, 'half a connection timeout below 30 s');
  tt.same(
    load({ TTEOK_EVENTS_HEARTBEAT_MS: '500', TTEOK_EVENTS_MAX_CONNECTIONS: '0', TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS: '2', TTEOK_EVENTS_BUFFER_SIZE: '3' })
      .events,
    { heartbeatMs: 500, maxConnections: 0, maxConnectionsPerAddress: 2, bufferSize: 3 },
  );
});

t.test('bad values are refused with the variable named', async (tt) => {
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '30000' }), /TTEOK_EVENTS_HEARTBEAT_MS \(30000\) must be below TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS \(30000\)/);
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '20000', TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '10000' }), /must be below TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS/);
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '0' }), /TTEOK_EVENTS_HEARTBEAT_MS must be an integer between 100/);
  tt.match(refused({ TTEOK_EVENTS_MAX_CONNECTIONS: 'lots' }), /TTEOK_EVENTS_MAX_CONNECTIONS/);
  tt.match(refused({ TTEOK_EVENTS_BUFFER_SIZE: '0' }), /TTEOK_EVENTS_BUFFER_SIZE/);
  tt.match(refused({ TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS: '0' }), /TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS must be an integer between 1/);
});

t.test('trusted proxies: none by default; addresses, CIDR ranges and proxy-addr names', async (tt) => {
  tt.same(load().trustedProxies, [], "the connection's peer is the client unless told otherwise");
  tt.same(load({ TTEOK_GATEWAY_TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8,192.0.2.7,loopback' }).trustedProxies, [
    '10.0.0.0/8',
    'fd00::/8',
    '192.0.2.7',
    'loopback',
  ]);
  for (const bad of ['10.0.0.0/33', '*', 'proxy.example.com', '10.0.0.0/8/1', 'fd00::/129']) {
    tt.match(
      refused({ TTEOK_GATEWAY_TRUSTED_PROXIES: bad }),
      /TTEOK_GATEWAY_TRUSTED_PROXIES must be a comma list of addresses, CIDR ranges/,
      `"${bad}" refused`,
    );
  }
});

t.test('a key prefix the playback-token rule cannot carry is refused', async (tt) => {
  tt.equal(load({ TTEOK_S3_PREFIX: 'media/live' }).prefix, 'media/live');
  for (const bad of ['_t', 'live/_private', 'a b', '../x']) {
    tt.match(refused({ TTEOK_S3_PREFIX: bad }), /TTEOK_S3_PREFIX must be parts separated by "\/"/, `"${bad}" refused`);
  }
});
