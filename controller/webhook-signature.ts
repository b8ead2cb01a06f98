// Webhook signatures, as Stripe and Mux sign theirs: HMAC-SHA256 with the
// webhook's signing key over `<unix seconds>.<raw body>`, sent as
//   Tteok-Signature: t=<unix seconds>,v1=<hex digest>
// The timestamp is inside the signed text, so a captured delivery cannot be
// replayed later with a fresh time; a receiver refuses one whose t is too far
// from its own clock. Several v1= values may appear (during a key change
// every key in use signs); one matching is enough.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Tteok-Signature';

export function signaturePayload(timestamp: number, body: string): string {
  return `${timestamp}.${body}`;
}

export function webhookSignature(secret: string, body: string, timestamp: number): string {
  const digest = createHmac('sha256', secret).update(signaturePayload(timestamp, body), 'utf8').digest('hex');
  return `t=${timestamp},v1=${digest}`;
}

/**
 * Whether `header` is a valid signature of `body` with `secret`, made within
 * `toleranceSeconds` of `now` (unix seconds). Compares in constant time.
 */
export function verifyWebhookSignature(
  header: string | undefined,
  body: string,
  secret: string,
  toleranceSeconds = 300,
  now = Math.floor(Date.now() / 1000),
): boolean {
  if (!header) return false;
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [k, v] = part.split('=', 2).map((s) => s.trim());
    if (k === 't' && v && /^\d+$/.test(v)) timestamp = Number(v);
    else if (k === 'v1' && v && /^[0-9a-f]{64}$/.test(v)) signatures.push(v);
  }
  if (timestamp === undefined || signatures.length === 0 || Math.abs(now - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(signaturePayload(timestamp, body), 'utf8').digest('hex'));
  return signatures.some((s) => timingSafeEqual(Buffer.from(s), expected));
}
