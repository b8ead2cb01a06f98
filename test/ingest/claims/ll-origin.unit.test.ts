// The LL origin an ingest pod writes into its claims (tteok.dev/ll-origin):
// http://<TTEOK_POD_IP>:<TTEOK_HTTP_PORT>, IPv6 in brackets, none without a
// pod IP, and a clear configuration error for anything that is not an IP.
import t from 'tap';
import { claimsConfigFromEnv, llOriginOf } from '../../../ingest/claims/lease-claims.ts';

t.test('from the pod IP and the HTTP port', async (tt) => {
  tt.equal(llOriginOf('10.1.2.3', 9935), 'http://10.1.2.3:9935');
  tt.equal(llOriginOf('fd00::1:2', 9935), 'http://[fd00::1:2]:9935');
  tt.equal(llOriginOf(undefined, 9935), undefined, 'no pod IP: no LL origin');
  tt.throws(() => llOriginOf('ingest-0.example', 9935), /TTEOK_POD_IP must be an IP address/);
  tt.equal(claimsConfigFromEnv({ TTEOK_POD_IP: '10.1.2.3', TTEOK_HTTP_PORT: '9000', TTEOK_POD_NAME: 'ingest-0' }).llOrigin, 'http://10.1.2.3:9000');
  tt.equal(claimsConfigFromEnv({ TTEOK_POD_NAME: 'ingest-0' }).llOrigin, undefined);
});
