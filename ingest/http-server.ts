// The ingest's small HTTP side: Prometheus metrics and the probes.
// /healthz: the process is up. /readyz: the RTMP listener is up, keys are
// loaded, the ingest is not shutting down (so Kubernetes stops sending it
// new publishers before it drains) and its media volume is below the
// high-water mark (so the LoadBalancer sends new streamers to other pods).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface ProbeState {
  ready(): boolean;
  /** Why the ingest is not ready, for the 503 body (operators read it with curl). */
  notReadyReason?(): string | undefined;
}

export function createIngestHttpServer(registry: Registry, state: ProbeState): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' }).end('{"error":"method not allowed"}');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const ready = state.ready();
      const reason = ready ? undefined : state.notReadyReason?.();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ready ? 'ready' : 'not ready', ...(reason ? { reason } : {}) }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
}
