// `GET /ll/<namespace>/<name>/<file>` on the ingest's HTTP port: the LL
// source (ll-source.ts) over HTTP, for the gateway that is the CDN's LL
// origin. Bad blocking parameters are a 400 with a sentence; a client that
// goes away ends its wait.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LOW_LATENCY_PATH_PREFIX, parseBlockingQuery, type BlockingQuery, type LowLatencySource } from '../../common/low-latency.ts';
import { isValidName, isValidNamespace } from '../../common/livestream.ts';

/** Answers the request when its path is an LL one; false otherwise. */
export function routeLowLatency(source: LowLatencySource, path: string, req: IncomingMessage, res: ServerResponse): boolean {
  if (!path.startsWith(`${LOW_LATENCY_PATH_PREFIX}/`)) return false;
  const [namespace = '', name = '', ...rest] = path.slice(LOW_LATENCY_PATH_PREFIX.length + 1).split('/');
  const file = rest.join('/');
  if (!isValidNamespace(namespace) || !isValidName(name) || file === '') {
    send(res, 404, { error: 'not found' });
    return true;
  }
  const url = new URL(req.url ?? '/', 'http://ingest');
  const query: BlockingQuery = {};
  for (const key of url.searchParams.keys()) {
    if (key !== '_HLS_msn' && key !== '_HLS_part' && key !== '_HLS_skip') {
      send(res, 400, { error: `unknown query parameter ${key}: only _HLS_msn, _HLS_part and _HLS_skip are read` });
      return true;
    }
    if (url.searchParams.getAll(key).length > 1) {
      send(res, 400, { error: `${key} is given more than once` });
      return true;
    }
    query[key] = url.searchParams.get(key)!;
  }
  const blocking = parseBlockingQuery(query);
  if ('error' in blocking) {
    send(res, 400, { error: blocking.error });
    return true;
  }
  const aborted = new AbortController();
  res.on('close', () => aborted.abort());
  source.serve({ ref: { namespace, name }, file, blocking }, aborted.signal).then(
    (answer) => {
      if (res.destroyed) return;
      res.writeHead(answer.status, { 'content-type': answer.contentType, 'cache-control': answer.cacheControl, 'content-length': answer.body.length });
      res.end(req.method === 'HEAD' ? undefined : answer.body);
    },
    () => send(res, 500, { error: 'internal error' }),
  );
  return true;
}

function send(res: ServerResponse, status: number, body: { error: string }): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
