// The small HTTP side of the ingest and the controller: Prometheus metrics
// and the probes. /healthz: the process is up. /readyz: what the role says
// (the ingest: RTMP listener up, keys loaded, not shutting down, media volume
// below the high-water mark; the controller: informers synced).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface ProbeState {
  ready(): boolean;
  /** Why the role is not ready, for the 503 body (operators read it with curl). */
  notReadyReason?(): string | undefined;
  /** More fields for the /readyz body (the controller adds whether it leads). */
  details?(): Record<string, unknown>;
  /** Called before /metrics is rendered, to refresh gauges sampled on demand. */
  beforeMetrics?(): void;
  /** A role's own GET routes beside the probes (the ingest's LL-HLS); true when it answered the request. */
  route?(path: string, req: IncomingMessage, res: ServerResponse): boolean;
}

export function createProbeServer(registry: Registry, state: ProbeState): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' }).end('{"error":"method not allowed"}');
      return;
    }
    if (state.route?.(path ?? '/', req, res)) return;
    if (path === '/metrics') {
      state.beforeMetrics?.();
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const ready = state.ready();
      const reason = ready ? undefined : state.notReadyReason?.();
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: ready ? 'ready' : 'not ready', ...(reason ? { reason } : {}), ...state.details?.() }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
}

/** Closes the server and the connections still open on it. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
