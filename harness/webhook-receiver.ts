// A webhook receiver as a frontend's backend would run it: node:http on
// loopback, verifying each delivery's Tteok-Signature with its own HMAC code
// (not the controller's), refusing a bad one with 400, and deduplicating by
// event id. It can be told to fail attempts (503) to exercise retries.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface ReceivedEvent {
  id: string;
  type: string;
  createdAt: string;
  stream: { namespace: string; name: string };
  data: Record<string, unknown>;
}

export interface WebhookReceiver {
  readonly url: string;
  /** The path of every request that reached the server, whatever it was. */
  readonly requests: string[];
  /** Every attempt, in arrival order (event id, what was answered). */
  readonly attempts: Array<{ id: string; status: number }>;
  /** Events processed, each once, in the order first acknowledged. */
  readonly processed: ReceivedEvent[];
  /** Deliveries of an id already processed (acknowledged again, not processed again). */
  duplicates: number;
  /** Requests whose signature did not verify. */
  badSignatures: number;
  /** Answer 503 to everything. */
  down: boolean;
  /** Answer 503 to the first this many attempts of each event id (counted from when it is set). */
  failFirst: number;
  /** Runs before an event is first acknowledged (what a backend does with it, e.g. fetch the recording). */
  onEvent: ((event: ReceivedEvent) => Promise<void>) | undefined;
  close(): Promise<void>;
}

/** What README tells a backend to do: HMAC-SHA256 over `${t}.${rawBody}`, compared in constant time, t within 5 minutes. */
export function verify(header: string | undefined, rawBody: string, secret: string): boolean {
  const parts = new Map<string, string[]>();
  for (const kv of (header ?? '').split(',')) {
    const [k, v] = kv.split('=');
    if (k && v) parts.set(k, [...(parts.get(k) ?? []), v]);
  }
  const t = Number(parts.get('t')?.[0]);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  return (parts.get('v1') ?? []).some((sig) => {
    const got = Buffer.from(sig, 'hex');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}

export async function startWebhookReceiver(secret: string, path = '/hooks/tteok'): Promise<WebhookReceiver> {
  const seenAttempts = new Map<string, number>();
  const processedIds = new Set<string>();
  const r: WebhookReceiver = {
    url: '',
    requests: [],
    attempts: [],
    processed: [],
    duplicates: 0,
    badSignatures: 0,
    down: false,
    failFirst: 0,
    onEvent: undefined,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  let failFirst = 0;
  let failBase = new Map<string, number>();
  Object.defineProperty(r, 'failFirst', {
    get: () => failFirst,
    set: (n: number) => {
      failFirst = n;
      failBase = new Map(seenAttempts);
    },
  });
  const server: Server = createServer((req, res) => {
    r.requests.push(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const answer = (status: number) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ status }));
      if (req.method !== 'POST' || req.url !== path) return answer(404);
      if (!verify(req.headers['tteok-signature'] as string | undefined, raw, secret)) {
        r.badSignatures++;
        return answer(400);
      }
      const event = JSON.parse(raw) as ReceivedEvent;
      const n = (seenAttempts.get(event.id) ?? 0) + 1;
      seenAttempts.set(event.id, n);
      if (r.down || n - (failBase.get(event.id) ?? 0) <= failFirst) {
        r.attempts.push({ id: event.id, status: 503 });
        return answer(503);
      }
      if (processedIds.has(event.id)) {
        r.duplicates++;
        r.attempts.push({ id: event.id, status: 200 });
        return answer(200);
      }
      processedIds.add(event.id);
      void Promise.resolve(r.onEvent?.(event)).then(
        () => {
          r.processed.push(event);
          r.attempts.push({ id: event.id, status: 200 });
          answer(200);
        },
        () => {
          processedIds.delete(event.id);
          r.attempts.push({ id: event.id, status: 500 });
          answer(500);
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  (r as { url: string }).url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}${path}`;
  return r;
}
