// CloudFront in front of tteok as manifests/aws/cloudformation.yaml
// configures it, on loopback, without the cache: playlists go to the
// gateway's LL origin first and to the bucket on 404/5xx (an ended or non-LL
// stream), parts to the gateway alone, segments and init segments to the
// bucket first and to the gateway on 403/404 (listed before the upload
// lands). Every answer is recorded (who answered, status, time taken), so a
// test or benchmark can tell blocking reloads and parts from plain loads.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FrontAnswer {
  at: number;
  path: string;
  /** `.m3u8`, `.m4s` (parts and segments), `.mp4`. */
  kind: string;
  part: boolean;
  blocking: boolean;
  by: 'gateway' | 'bucket';
  status: number;
  ms: number;
}

export interface CdnFront {
  url: string;
  /** The LL origin's base (its `/origin` prefix included); set before the first request (the gateway may need the front's URL first). */
  gateway: string;
  answers: FrontAnswer[];
  close(): Promise<void>;
}

/** `bucket`: the bucket's base URL. */
export async function startCdnFront(bucket: string): Promise<CdnFront> {
  const answers: FrontAnswer[] = [];
  let front: CdnFront;
  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const part = path.endsWith('.part.m4s');
    const playlist = path.endsWith('.m3u8');
    const order: Array<'gateway' | 'bucket'> = part ? ['gateway'] : playlist ? ['gateway', 'bucket'] : ['bucket', 'gateway'];
    const failover = playlist ? [404, 500, 502, 503, 504] : [403, 404];
    for (const [i, by] of order.entries()) {
      // The bucket is asked without the query, as CloudFront's S3 origin is (the query is in the cache key only).
      const target = by === 'gateway' ? `${front.gateway}${url}` : `${bucket}${path}`;
      const answer = await fetch(target).catch(() => undefined);
      const status = answer?.status ?? 502;
      if (i < order.length - 1 && failover.includes(status)) {
        await answer?.arrayBuffer().catch(() => undefined);
        continue;
      }
      const body = answer ? Buffer.from(await answer.arrayBuffer()) : Buffer.alloc(0);
      answers.push({
        at: Date.now(),
        path,
        kind: path.slice(path.lastIndexOf('.')),
        part,
        blocking: url.includes('_HLS_msn='),
        by,
        status,
        ms: performance.now() - started,
      });
      res.writeHead(status, {
        'access-control-allow-origin': '*',
        'content-type': answer?.headers.get('content-type') ?? 'application/json',
        'cache-control': answer?.headers.get('cache-control') ?? 'no-store',
      });
      res.end(body);
      return;
    }
  }
  const server = createServer((req, res) => void route(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  front = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gateway: '',
    answers,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return front;
}
