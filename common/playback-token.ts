// Playback tokens for private streams: one module that mints and verifies
// them, and decides which media paths need one. The gateway mints tokens
// (POST /v1/streams/:namespace/:name/playback-token) and its local origin
// enforces them; a backend may mint its own with the same shared secret.
// The CloudFront Function in manifests/aws/playback-token-function.js is the
// same rule in the CloudFront Functions JavaScript dialect; a test runs both
// on the same cases and requires them to agree.
//
// Token (v2): `<kid>.<expires>.<signature>`
//   kid        which secret signed it: 1–16 of [A-Za-z0-9_-]
//   expires    Unix time in seconds (decimal, no sign, no leading zero)
//   signature  lowercase hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of
//              "tteok-playback-v2\n<kid>\n<expires>\n<prefix>/_private/<namespace>/<name>"
//              (no prefix: "_private/<namespace>/<name>")
//
// The stream is not written in the token: it is taken from the path the
// token travels with, and the signature covers all of that path the rule
// checks (the prefix too, so a token of one installation does not open
// another's objects in a shared bucket). Editing the expiry, the key id or
// the path breaks the signature, so a token cannot be widened.
//
// Where it travels: `<cdn>/_t/<token>/<prefix>/_private/<namespace>/<name>/index.m3u8`.
// A private stream's objects live under `_private/` and the token marker is
// `_t`: neither is a valid namespace (a DNS label has no `_`), so neither
// collides with a public stream's path. A request for anything under
// `_private/` needs a valid token for that stream, and the `_t/<token>` part
// is removed before the cache lookup, so every viewer shares one cached copy.
// Relative segment URIs in the playlist inherit the token.
//
// v1 (before issue 17) signed only `<namespace>/<name>` and travelled under
// `/t/`; v1 tokens are not accepted (README, "Private streams").
import { createHmac, timingSafeEqual } from 'node:crypto';
import { joinKey } from './object-layout.ts';
import { RENDITION_FOLDER_PATTERN, RENDITION_NAME_PATTERN, THUMBNAIL_FILE } from './renditions.ts';

export type PlaybackAccess = 'public' | 'private';

/** The path segment under which private streams' objects live, after the prefix. */
export const PRIVATE_SEGMENT = '_private';
/** The first path segment of a tokenized URL: `/_t/<token>/…`; not a DNS label, so never a namespace. */
export const TOKEN_SEGMENT = '_t';
const SIGNING_CONTEXT = 'tteok-playback-v2';

/** A minted token's default lifetime: a long event with margin (TTEOK_PLAYBACK_TOKEN_TTL_SECONDS). */
export const DEFAULT_TOKEN_TTL_SECONDS = 4 * 3600;
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,16}$/;
/** A shared secret: at least 32 characters (HMAC-SHA256 wants ≥ 256 bits of key). */
export const SECRET_MIN_LENGTH = 32;
const TOKEN_PATTERN = /^([A-Za-z0-9_-]{1,16})\.([1-9][0-9]{0,11})\.([0-9a-f]{64})$/;

// A private path: the prefix's segments, `_private`, the DNS-1123 namespace
// and name, then the media layout's file names (common/object-layout.ts,
// common/renditions.ts): the playlist, a rendition's playlist by a rendition
// name, the thumbnail, or a run folder with an init or media segment,
// directly (the source) or in a rendition's folder. Nothing else (no `..`,
// no `%`).
const PREFIX_SEGMENT = '[A-Za-z0-9][A-Za-z0-9_.-]{0,127}';
const NAMESPACE = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const NAME = '[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?';
/** A file of a stream's folder (no capturing groups): what the CDN rule and the local origin serve. */
export const STREAM_FILE_PATTERN =
  `(?:index\\.m3u8|${THUMBNAIL_FILE.replace('.', '\\.')}|${RENDITION_NAME_PATTERN}\\.m3u8` +
  `|[A-Za-z0-9][A-Za-z0-9_-]{0,127}/(?:${RENDITION_FOLDER_PATTERN}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\\.(?:mp4|m4s))`;
const FILE = `(${STREAM_FILE_PATTERN})`;
const PRIVATE_PATH = new RegExp(`^/((?:${PREFIX_SEGMENT}/)*)${PRIVATE_SEGMENT}/(${NAMESPACE})/(${NAME})/${FILE}$`);

/** Whether a key prefix (TTEOK_S3_PREFIX) can carry private streams: segments the token rule accepts. */
export function isTokenPrefix(prefix: string): boolean {
  return new RegExp(`^(${PREFIX_SEGMENT}(/${PREFIX_SEGMENT})*)?$`).test(prefix.replace(/^\/+|\/+$/g, ''));
}

/** What a token is for: one stream under one key prefix (the CDN's; '' for none and for the local origin). */
export interface TokenScope {
  prefix: string;
  namespace: string;
  name: string;
}

/** The signed text's path: `<prefix>/_private/<namespace>/<name>`, exactly as it stands in the URL. */
export function privateStreamPath(scope: TokenScope): string {
  return joinKey(scope.prefix, PRIVATE_SEGMENT, scope.namespace, scope.name);
}

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
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)) {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const secret = colon < 0 ? '' : entry.slice(colon + 1);
    if (!KEY_ID_PATTERN.test(id)) throw new Error(`each key must be <id>:<secret> with an id of 1-16 of A-Z a-z 0-9 _ - (entry ${keys.length + 1})`);
    if (secret.length < SECRET_MIN_LENGTH || /[\s,]/.test(secret))
      throw new Error(`key "${id}": the secret must be at least ${SECRET_MIN_LENGTH} characters, without blanks or commas`);
    if (keys.some((k) => k.id === id)) throw new Error(`key id "${id}" appears twice`);
    keys.push({ id, secret });
  }
  const [signing] = keys;
  if (!signing) throw new Error('no keys given');
  return { signing, all: keys };
}

export function signatureOf(secret: string, keyId: string, expires: number, scope: TokenScope): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${SIGNING_CONTEXT}\n${keyId}\n${expires}\n${privateStreamPath(scope)}`)
    .digest('hex');
}

export interface MintedToken {
  token: string;
  /** Unix seconds. */
  expires: number;
}

export function mintPlaybackToken(key: PlaybackKey, scope: TokenScope, ttlSeconds: number, nowMs = Date.now()): MintedToken {
  const expires = Math.floor(nowMs / 1000) + Math.max(1, Math.floor(ttlSeconds));
  return { token: `${key.id}.${expires}.${signatureOf(key.secret, key.id, expires, scope)}`, expires };
}

export type TokenCheck = { ok: true; keyId: string; expires: number } | { ok: false; reason: 'malformed' | 'unknown-key' | 'expired' | 'bad-signature' };

/** Whether `token` is valid now for the stream under the prefix; a lookup of the secret by key id, then a constant-time compare. */
export function verifyPlaybackToken(token: string, scope: TokenScope, secretOf: (keyId: string) => string | undefined, nowMs = Date.now()): TokenCheck {
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, keyId = '', expiresText = '', signature = ''] = match;
  const expires = Number(expiresText);
  if (expires * 1000 <= nowMs) return { ok: false, reason: 'expired' };
  const secret = secretOf(keyId);
  if (secret === undefined) return { ok: false, reason: 'unknown-key' };
  const expected = Buffer.from(signatureOf(secret, keyId, expires, scope), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, keyId, expires };
}

export function keyringLookup(keyring: PlaybackKeyring | undefined): (keyId: string) => string | undefined {
  return (keyId) => keyring?.all.find((k) => k.id === keyId)?.secret;
}

export type MediaPathDecision = { allow: true /** The path to look up (the token removed). */; uri: string } | { allow: false; reason: string };

/**
 * The rule the CDN and the local origin both apply to a request path
 * (`/…`, as CloudFront's `event.request.uri`):
 * - `/_t/<token>/<rest>`: `<rest>` must be a private stream's media path and the
 *   token valid now for that stream under that prefix; then `<rest>` is served.
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
    if (!path) return { allow: false, reason: "a token is only for a private stream's media" };
    const prefix = path[1] ?? '';
    const namespace = path[2] ?? '';
    const name = path[4] ?? '';
    const check = verifyPlaybackToken(token, { prefix, namespace, name }, secretOf, nowMs);
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

/** `https://cdn/x/_private/ns/name/index.m3u8` → `https://cdn/_t/<token>/x/_private/ns/name/index.m3u8` (the token right after the base URL). */
export function tokenizedUrl(baseUrl: string, keyPath: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${TOKEN_SEGMENT}/${token}/${keyPath.replace(/^\/+/, '')}`;
}
