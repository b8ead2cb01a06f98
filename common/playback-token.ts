// Playback tokens for private streams: one module that mints and verifies
// them, and decides which media paths need one. The gateway mints tokens
// (POST /v1/streams/:namespace/:name/playback-token) and its local origin
// enforces them; a backend may mint its own with the same shared secret.
// The CloudFront Function in manifests/aws/playback-token-function.js is the
// same rule in the CloudFront Functions JavaScript dialect; a test runs both
// on the same cases and requires them to agree.
//
// Token (v1): `<kid>.<expires>.<signature>`
//   kid        which secret signed it: 1–16 of [A-Za-z0-9_-]
//   expires    Unix time in seconds (decimal, no sign, no leading zero)
//   signature  lowercase hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of
//              "tteok-playback-v1\n<kid>\n<expires>\n<namespace>/<name>"
//
// The stream is not written in the token: it is taken from the path the
// token travels with, and the signature covers it. Editing the expiry, the
// key id or the path breaks the signature, so a token cannot be widened.
//
// Where it travels: `<cdn>/t/<token>/<prefix>/_private/<namespace>/<name>/index.m3u8`.
// A private stream's objects live under `_private/` (not a valid namespace,
// so it never collides with a public stream's path); a request for anything
// under it needs a valid token for that stream, and the `t/<token>` part is
// removed before the cache lookup, so every viewer shares one cached copy.
// Relative segment URIs in the playlist inherit the token.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type PlaybackAccess = 'public' | 'private';

/** The path segment under which private streams' objects live, after the prefix. */
export const PRIVATE_SEGMENT = '_private';
/** The first path segment of a tokenized URL: `/t/<token>/…`. */
export const TOKEN_SEGMENT = 't';
const SIGNING_CONTEXT = 'tteok-playback-v1';

/** A minted token's default lifetime: a long event with margin (TTEOK_PLAYBACK_TOKEN_TTL_SECONDS). */
export const DEFAULT_TOKEN_TTL_SECONDS = 4 * 3600;
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,16}$/;
/** A shared secret: at least 32 characters (HMAC-SHA256 wants ≥ 256 bits of key). */
export const SECRET_MIN_LENGTH = 32;
const TOKEN_PATTERN = /^([A-Za-z0-9_-]{1,16})\.([1-9][0-9]{0,11})\.([0-9a-f]{64})$/;

// The stream part of a private path: DNS-1123 namespace and name, then the
// media layout's file names (common/object-layout.ts): the playlist, or a
// run folder with an init or media segment. Nothing else (no `..`, no `%`).
const NAMESPACE = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const NAME = '[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?';
const FILE = '(index\\.m3u8|[A-Za-z0-9][A-Za-z0-9_-]{0,127}/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\\.(mp4|m4s))';
const PRIVATE_PATH = new RegExp(`^/((?:[A-Za-z0-9][A-Za-z0-9_.-]{0,127}/)*)${PRIVATE_SEGMENT}/(${NAMESPACE})/(${NAME})/${FILE}$`);

export interface PlaybackKey {
  id: string;
  secret: string;
}

/**
 * The secrets tokens are checked against: the first signs new tokens, every
 * one verifies. Rotation: add the new key second, wait until every gateway
 * and the CloudFront KeyValueStore have it, move it first, and drop the old
 * one once the longest token signed with it has expired.
 */
export interface PlaybackKeyring {
  signing: PlaybackKey;
  all: PlaybackKey[];
}

/** `kid:secret,kid:secret` (TTEOK_PLAYBACK_TOKEN_KEYS) → keyring; throws a message naming what is wrong, never a secret. */
export function parseKeyring(text: string): PlaybackKeyring {
  const keys: PlaybackKey[] = [];
  for (const entry of text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const secret = colon < 0 ? '' : entry.slice(colon + 1);
    if (!KEY_ID_PATTERN.test(id)) throw new Error(`each key must be <id>:<secret> with an id of 1-16 of A-Z a-z 0-9 _ - (entry ${keys.length + 1})`);
    if (secret.length < SECRET_MIN_LENGTH || /[\s,]/.test(secret)) throw new Error(`key "${id}": the secret must be at least ${SECRET_MIN_LENGTH} characters, without blanks or commas`);
    if (keys.some((k) => k.id === id)) throw new Error(`key id "${id}" appears twice`);
    keys.push({ id, secret });
  }
  const [signing] = keys;
  if (!signing) throw new Error('no keys given');
  return { signing, all: keys };
}

export function signatureOf(secret: string, keyId: string, expires: number, namespace: string, name: string): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${SIGNING_CONTEXT}\n${keyId}\n${expires}\n${namespace}/${name}`)
    .digest('hex');
}

export interface MintedToken {
  token: string;
  /** Unix seconds. */
  expires: number;
}

export function mintPlaybackToken(key: PlaybackKey, ref: { namespace: string; name: string }, ttlSeconds: number, nowMs = Date.now()): MintedToken {
  const expires = Math.floor(nowMs / 1000) + Math.max(1, Math.floor(ttlSeconds));
  return { token: `${key.id}.${expires}.${signatureOf(key.secret, key.id, expires, ref.namespace, ref.name)}`, expires };
}

export type TokenCheck = { ok: true; keyId: string; expires: number } | { ok: false; reason: 'malformed' | 'unknown-key' | 'expired' | 'bad-signature' };

/** Whether `token` is valid now for the stream; a lookup of the secret by key id, then a constant-time compare. */
export function verifyPlaybackToken(
  token: string,
  ref: { namespace: string; name: string },
  secretOf: (keyId: string) => string | undefined,
  nowMs = Date.now(),
): TokenCheck {
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, keyId = '', expiresText = '', signature = ''] = match;
  const expires = Number(expiresText);
  if (expires * 1000 <= nowMs) return { ok: false, reason: 'expired' };
  const secret = secretOf(keyId);
  if (secret === undefined) return { ok: false, reason: 'unknown-key' };
  const expected = Buffer.from(signatureOf(secret, keyId, expires, ref.namespace, ref.name), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, keyId, expires };
}

export function keyringLookup(keyring: PlaybackKeyring | undefined): (keyId: string) => string | undefined {
  return (keyId) => keyring?.all.find((k) => k.id === keyId)?.secret;
}

export type MediaPathDecision =
  | { allow: true; /** The path to look up (the token removed). */ uri: string }
  | { allow: false; reason: string };

/**
 * The rule the CDN and the local origin both apply to a request path
 * (`/…`, as CloudFront's `event.request.uri`):
 * - `/t/<token>/<rest>`: `<rest>` must be a private stream's media path and the
 *   token valid for that stream now; then `<rest>` is served.
 * - any other path with a `_private` segment (also percent-encoded): refused.
 * - anything else (public streams): unchanged.
 */
export function authorizeMediaPath(uri: string, secretOf: (keyId: string) => string | undefined, nowMs = Date.now()): MediaPathDecision {
  const tokenPrefix = `/${TOKEN_SEGMENT}/`;
  if (uri.startsWith(tokenPrefix)) {
    const slash = uri.indexOf('/', tokenPrefix.length);
    if (slash < 0) return { allow: false, reason: 'no path after the token' };
    const token = uri.slice(tokenPrefix.length, slash);
    const rest = uri.slice(slash);
    const path = PRIVATE_PATH.exec(rest);
    if (!path) return { allow: false, reason: 'a token is only for a private stream\'s media' };
    const namespace = path[2] ?? '';
    const name = path[4] ?? '';
    const check = verifyPlaybackToken(token, { namespace, name }, secretOf, nowMs);
    if (!check.ok) return { allow: false, reason: `token ${check.reason}` };
    return { allow: true, uri: rest };
  }
  if (mentionsPrivate(uri)) return { allow: false, reason: 'a private stream needs a playback token' };
  return { allow: true, uri };
}

/** Any `_private` path segment, also percent-encoded or behind an encoded slash; undecodable paths count as private. */
function mentionsPrivate(uri: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(uri);
  } catch {
    return true;
  }
  return decoded.split(/[/\\]/).some((segment) => segment === PRIVATE_SEGMENT);
}

/** The object key root of a stream's media: `_private` for private streams, nothing for public ones. */
export function accessRoot(access: PlaybackAccess): string {
  return access === 'private' ? PRIVATE_SEGMENT : '';
}

/** `https://cdn/x/_private/ns/name/index.m3u8` → `https://cdn/t/<token>/x/_private/ns/name/index.m3u8` (the token right after the base URL). */
export function tokenizedUrl(baseUrl: string, keyPath: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${TOKEN_SEGMENT}/${token}/${keyPath.replace(/^\/+/, '')}`;
}
