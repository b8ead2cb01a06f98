// A plain Server-Sent Events client on node:http, for tests: it parses the
// stream as the SSE spec says (fields, comments, blank-line dispatch) and
// records when each event and comment arrived, so tests can compare arrival
// times with other observations.
import { request, type IncomingHttpHeaders } from 'node:http';
import { waitFor } from './wait.ts';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** Date.now() when the blank line that dispatched it arrived. */
  at: number;
}

export interface SseClient {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body of a non-200 answer (the gateway's JSON error). */
  errorBody: string | undefined;
  events: SseEvent[];
  comments: Array<{ text: string; at: number }>;
  /** The `retry:` value, if the server sent one. */
  retry: number | undefined;
  /** True once the server ended the response (or the connection closed). */
  ended(): boolean;
  /** Resolves when the response ends. */
  end: Promise<void>;
  /** The first event from index `from` on that `accept` takes. */
  next(what: string, accept: (e: SseEvent) => boolean, options?: { from?: number; timeoutMs?: number }): Promise<SseEvent>;
  close(): void;
}

/** `localAddress`: the client's own address (127.0.0.2 on loopback is another client). */
export function openEventStream(url: string, headers: Record<string, string> = {}, options: { localAddress?: string } = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { headers: { accept: 'text/event-stream', ...headers }, ...(options.localAddress ? { localAddress: options.localAddress } : {}) },
      (res) => {
        let ended = false;
        let errorBody: string | undefined;
        const client: SseClient = {
          status: res.statusCode ?? 0,
          headers: res.headers,
          get errorBody() {
            return errorBody;
          },
          events: [],
          comments: [],
          retry: undefined,
          ended: () => ended,
          end: new Promise<void>((done) => {
            res.on('close', () => {
              ended = true;
              done();
            });
          }),
          next: (what, accept, { from = 0, timeoutMs = 10_000 } = {}) =>
            waitFor(what, () => client.events.slice(from).find(accept), { timeoutMs, intervalMs: 5 }),
          close: () => req.destroy(),
        };
        res.setEncoding('utf8');
        if (client.status !== 200) {
          errorBody = '';
          res.on('data', (chunk: string) => (errorBody += chunk));
          res.on('end', () => resolve(client));
          return;
        }
        let buffer = '';
        let id: string | undefined;
        let event = '';
        let data: string[] = [];
        res.on('data', (chunk: string) => {
          buffer += chunk;
          const lines = buffer.split(/\r\n|\r|\n/);
          buffer = lines.pop() ?? '';
          const at = Date.now();
          for (const line of lines) {
            if (line === '') {
              if (data.length > 0) client.events.push({ id, event: event || 'message', data: data.join('\n'), at });
              event = '';
              data = [];
              continue;
            }
            if (line.startsWith(':')) {
              client.comments.push({ text: line.slice(1).trim(), at });
              continue;
            }
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
            else if (field === 'retry' && /^\d+$/.test(value)) client.retry = Number(value);
          }
        });
        res.on('error', () => undefined); // a cut connection shows as ended()
        resolve(client);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
