// The live-state events' settings (README, Gateway table): documented
// defaults, a heartbeat that always stays below the connection timeout (it is
// what keeps that timeout from cutting a quiet event stream), and clear
// errors for bad values.
import t from 'tap';
import { ConfigError } from '../common/env-config.ts';
import { loadGatewayConfig } from '../gateway/config.ts';

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
  tt.same(load().events, { heartbeatMs: 15_000, maxConnections: 1000, bufferSize: 1000 });
  tt.equal(load({ TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '10000' }).events.heartbeatMs, 5000, 'half a connection timeout below 30 s');
  tt.same(load({ TTEOK_EVENTS_HEARTBEAT_MS: '500', TTEOK_EVENTS_MAX_CONNECTIONS: '0', TTEOK_EVENTS_BUFFER_SIZE: '3' }).events, { heartbeatMs: 500, maxConnections: 0, bufferSize: 3 });
});

t.test('bad values are refused with the variable named', async (tt) => {
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '30000' }), /TTEOK_EVENTS_HEARTBEAT_MS \(30000\) must be below TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS \(30000\)/);
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '20000', TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS: '10000' }), /must be below TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS/);
  tt.match(refused({ TTEOK_EVENTS_HEARTBEAT_MS: '0' }), /TTEOK_EVENTS_HEARTBEAT_MS must be an integer between 100/);
  tt.match(refused({ TTEOK_EVENTS_MAX_CONNECTIONS: 'lots' }), /TTEOK_EVENTS_MAX_CONNECTIONS/);
  tt.match(refused({ TTEOK_EVENTS_BUFFER_SIZE: '0' }), /TTEOK_EVENTS_BUFFER_SIZE/);
});
