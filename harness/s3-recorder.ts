// A recording HTTP proxy in front of the S3 test server. The ingest talks to
// S3 through it, so a test knows exactly when each object's PUT finished,
// as the server saw it, and can check upload ordering rigorously: at the
// moment a playlist's PUT began, had every segment it names been stored?
// SigV4 signs the Host header, which the proxy forwards unchanged.
import { createServer, request, type Server } from 'node:http';
import { freePort } from './ports.ts';

export interface RecordedRequest {
  method: string;
  /** Object key (path without the bucket). */
  key: string;
  startedAt: number;
  finishedAt: number;
  status: number;
  /** Bytes of the request body. */
  bytes: number;
  /** Request body, for playlist PUTs only. */
  body?: string;
}

export interface S3Recorder {
  endpoint: string;
  requests: RecordedRequest[];
  puts(filter?: (key: string) => boolean): RecordedRequest[];
  /** TCP connections the proxy has accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connectionsAccepted(): number;
  close(): Promise<void>;
}

export async function startS3Recorder(target: string, bucket: string): Promise<S3Recorder> {
  const targetUrl = new URL(target);
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const startedAt = Date.now();
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const key = path.replace(new RegExp(`^/${bucket}/?`), '');
    const chunks: Buffer[] = [];
    let bytes = 0;
    const upstream = request({ host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', () => {
        requests.push({
          method: req.method ?? '',
          key,
          startedAt,
          finishedAt: Date.now(),
          status: up.statusCode ?? 0,
          bytes,
          ...(key.endsWith('.m3u8') && req.method === 'PUT' ? { body: Buffer.concat(chunks).toString('utf8') } : {}),
        });
      });
    });
    upstream.on('error', () => {
      requests.push({ method: req.method ?? '', key, startedAt, finishedAt: Date.now(), status: 502, bytes });
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (key.endsWith('.m3u8')) chunks.push(c);
    });
    req.pipe(upstream);
  });
  let connections = 0;
  server.on('connection', () => {
    connections += 1;
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    puts: (filter = () => true) => requests.filter((r) => r.method === 'PUT' && r.status === 200 && filter(r.key)),
    connectionsAccepted: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
