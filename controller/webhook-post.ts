// One webhook delivery attempt: a POST with node:http(s), connected only
// where the address policy allows (webhook-address-policy.ts), and its
// outcome reduced to a class. The class is what the LiveStream's
// WebhookFailed Event says, and whoever may create a LiveStream may read
// those: it must not tell them what lives at an address (no IP, no port, no
// error text from the other side or from the network stack). The full error
// goes to the controller's log only.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { WebhookAddressPolicy } from './webhook-address-policy.ts';

export type FailureClass = 'timeout' | 'refused' | 'blocked by address policy' | 'TLS error' | 'name not resolved' | 'connection failed' | `HTTP ${number}`;

export interface PostResult {
  /** undefined: acknowledged (2xx). */
  failure: FailureClass | undefined;
  /** For the controller's log only: the error as Node reported it. */
  detail?: string;
}

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  signal: AbortSignal;
  /** undefined: any address (the operator's own global webhook). */
  policy: WebhookAddressPolicy | undefined;
}

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/** The class of a failed request's error. */
export function failureClass(err: unknown, timedOut: boolean, tls: boolean): FailureClass {
  if (timedOut) return 'timeout';
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ETTEOK_ADDRESS_BLOCKED') return 'blocked by address policy';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NODATA' || code === 'EAI_NONAME') return 'name not resolved';
  if (typeof code === 'string' && TLS_CODE.test(code)) return 'TLS error';
  // OpenSSL's handshake failures (not TLS on the other side, a protocol alert) surface as EPROTO.
  if (tls && code === 'EPROTO') return 'TLS error';
  return 'connection failed';
}

/** POSTs once; resolves (never rejects) with the outcome's class. */
export function postWebhook(o: PostOptions): Promise<PostResult> {
  const url = new URL(o.url);
  if (o.policy && !o.policy.allowsHost(url.hostname))
    return Promise.resolve({ failure: 'blocked by address policy', detail: 'IP literal outside the address policy' });
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = AbortSignal.any([o.signal, timeout]);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<PostResult>((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...o.headers, 'content-length': String(Buffer.byteLength(o.body)) },
        // A fresh connection per attempt: each connects to an address checked just now.
        agent: false,
        signal,
        ...(o.policy ? { lookup: o.policy.lookup } : {}),
      },
      (res: IncomingMessage) => {
        // A redirect is not an acknowledgement (node:http follows none): the signed body goes nowhere else.
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('error', () => undefined);
        resolve(status >= 200 && status < 300 ? { failure: undefined } : { failure: `HTTP ${status}` });
        res.destroy();
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      resolve({ failure: failureClass(err, timeout.aborted, url.protocol === 'https:'), detail: err.code ? `${err.code}: ${err.message}` : err.message });
    });
    req.end(o.body);
  });
}
