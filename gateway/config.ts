// The gateway's configuration, from environment variables. README.md lists
// every one with its default ("Gateway" table); keep the two in step.
import { isIP } from 'node:net';
import { ConfigError, envInt, envList, envVar, readEnv, type Env, type EnvTable } from '../common/env-config.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, isTokenPrefix, parseKeyring, type PlaybackKeyring } from '../common/playback-token.ts';
import type { GatewayOptions } from './gateway.ts';

export type ViewKind = 'local' | 'kubernetes';

/**
 * How long the gateway waits for a client, in ms. Without them Node and
 * Fastify hold idle and half-sent connections for minutes, which lets a few
 * hundred silent sockets pin the process (issue 9).
 */
export interface GatewayTimeouts {
  /** The whole request (headers and body) must arrive within this (Fastify `requestTimeout`). */
  requestMs: number;
  /** The request's headers must arrive within this (Node `headersTimeout`); at most `requestMs`. */
  headersMs: number;
  /** An idle keep-alive connection is closed after this (Fastify `keepAliveTimeout`). */
  keepAliveMs: number;
  /** A connection with no traffic either way during a request is closed after this (Fastify `connectionTimeout`). */
  connectionMs: number;
}

export const DEFAULT_TIMEOUTS: GatewayTimeouts = { requestMs: 30_000, headersMs: 10_000, keepAliveMs: 5_000, connectionMs: 30_000 };

/** Live-state events (`GET /v1/streams/events`, plugins/events.ts). */
export interface EventStreamConfig {
  /** A comment line this often on every open event stream; below the connection timeout, which it keeps from cutting the stream. */
  heartbeatMs: number;
  /** Open event streams per gateway; one more is answered 503. */
  maxConnections: number;
  /** Open event streams per client address (IPv6: per /64); one more is answered 429. Meaningful below maxConnections. */
  maxConnectionsPerAddress: number;
  /** Recent events kept for `Last-Event-ID` resume. */
  bufferSize: number;
}

export const DEFAULT_EVENT_STREAMS: EventStreamConfig = { heartbeatMs: 15_000, maxConnections: 1000, maxConnectionsPerAddress: 20, bufferSize: 1000 };

/** The heartbeat unless set: 15 s, or half the connection timeout when that is shorter (it must stay below it). */
export function defaultHeartbeatMs(connectionTimeoutMs: number): number {
  return Math.min(DEFAULT_EVENT_STREAMS.heartbeatMs, Math.max(50, Math.floor(connectionTimeoutMs / 2)));
}

export interface GatewayConfig {
  host: string;
  port: number;
  /**
   * Proxies whose X-Forwarded-For the gateway believes (TTEOK_GATEWAY_TRUSTED_PROXIES):
   * addresses, CIDR ranges, or `loopback`, `linklocal`, `uniquelocal`. Empty:
   * none, the client address is the connection's peer.
   */
  trustedProxies: string[];
  /**
   * Where viewers fetch media: the CDN in front of the bucket (CloudFront in
   * production). Undefined when the gateway serves the local origin itself
   * (TTEOK_STORAGE=local); playback URLs then point at its own /origin/.
   */
  playbackBaseUrl: string | undefined;
  /** Object key prefix (TTEOK_S3_PREFIX), part of every playback URL on the CDN. */
  prefix: string;
  corsOrigins: string[];
  /**
   * Origins besides its own whose playlists the player page plays with
   * `?src=`; undefined means the default, the playback base URL's origin.
   */
  playerSrcOrigins: string[] | undefined;
  followIntervalMs: number;
  metricsMaxStreams: number;
  view: ViewKind;
  keysFile: string;
  /** With TTEOK_STORAGE=local: the directory the ingest stores into, served under /origin/. */
  localOriginDir: string | undefined;
  playlistMaxAgeSeconds: number | undefined;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  connectionTimeoutMs: number;
  /** Private streams (common/playback-token.ts); see playbackTokensFrom. */
  playbackTokens: PlaybackTokenConfig;
  events: EventStreamConfig;
  lowLatency: LowLatencyConfig;
}

/** The LL origin (plugins/low-latency.ts). */
export interface LowLatencyConfig {
  /** TTEOK_LL_ORIGIN: serve live streams' LL-HLS from their ingest under /origin/ (Kubernetes view, or the one-machine mode). */
  enabled: boolean;
  /** TTEOK_LL_UPSTREAM_TIMEOUT_MS: the longest a request to the holding ingest may take (a blocking one included). */
  upstreamTimeoutMs: number;
  /** TTEOK_ORIGIN_SECRET: what the CDN sends in x-tteok-origin-secret; such a request needs no token for `_private/`. */
  originSecret: string | undefined;
}

export const ORIGIN_SECRET_MIN_LENGTH = 32;

export interface PlaybackTokenConfig {
  /** TTEOK_PLAYBACK_TOKEN_KEYS: the first signs, all verify. Undefined: no tokens, private streams play nowhere. */
  keyring: PlaybackKeyring | undefined;
  /** TTEOK_PLAYBACK_TOKEN_TTL_SECONDS: lifetime of a minted token unless the request asks for less. */
  ttlSeconds: number;
  /** TTEOK_PLAYBACK_API_KEY: the bearer key of POST …/playback-token. Undefined: minting over HTTP is off. */
  apiKey: string | undefined;
}

export const PLAYBACK_API_KEY_MIN_LENGTH = 32;

export function loadPlaybackTokenConfig(env: Env): PlaybackTokenConfig {
  const { tokenKeys, tokenTtlSeconds, apiKey } = readEnv(PLAYBACK_TOKEN_ENV, env);
  let keyring: PlaybackKeyring | undefined;
  if (tokenKeys !== undefined) {
    try {
      keyring = parseKeyring(tokenKeys);
    } catch (error) {
      throw new ConfigError(`TTEOK_PLAYBACK_TOKEN_KEYS: ${(error as Error).message}`);
    }
  }
  if (apiKey !== undefined && apiKey.length < PLAYBACK_API_KEY_MIN_LENGTH) {
    throw new ConfigError(`TTEOK_PLAYBACK_API_KEY must be at least ${PLAYBACK_API_KEY_MIN_LENGTH} characters`);
  }
  if (apiKey !== undefined && !keyring)
    throw new ConfigError('TTEOK_PLAYBACK_API_KEY is set but TTEOK_PLAYBACK_TOKEN_KEYS is not: there is nothing to sign tokens with');
  return { keyring, apiKey, ttlSeconds: tokenTtlSeconds };
}

/** Private streams' rows (read by loadPlaybackTokenConfig). */
export const PLAYBACK_TOKEN_ENV = {
  tokenKeys: envVar.optional('TTEOK_PLAYBACK_TOKEN_KEYS', 'private streams: token secrets kid:secret[,kid:secret]; the first signs, all verify', {
    defaultText: '(unset: private streams play nowhere)',
  }),
  tokenTtlSeconds: envVar.int(
    'TTEOK_PLAYBACK_TOKEN_TTL_SECONDS',
    DEFAULT_TOKEN_TTL_SECONDS,
    60,
    7 * 86_400,
    'lifetime of a minted token; also the most a mint request may ask for',
  ),
  apiKey: envVar.optional(
    'TTEOK_PLAYBACK_API_KEY',
    `bearer key of POST /v1/streams/<namespace>/<name>/playback-token (≥ ${PLAYBACK_API_KEY_MIN_LENGTH} characters)`,
    { defaultText: '(unset: minting over HTTP is off)' },
  ),
} satisfies EnvTable;

/**
 * Every variable the gateway reads, one row each: `tteok gateway --help`
 * prints these rows and loadGatewayConfig reads through them. To add a
 * setting, add a row here (and to README's Gateway table) and use it below.
 */
export const GATEWAY_ENV = {
  storage: envVar.choice('TTEOK_STORAGE', 's3', ['s3', 'local'], 'local: serve TTEOK_LOCAL_ORIGIN_DIR under /origin/'),
  view: envVar.choice('TTEOK_VIEW', 'local', ['local', 'kubernetes'], 'where the gateway learns about streams: the key file, or LiveStreams'),
  playbackBaseUrl: envVar.optional('TTEOK_PLAYBACK_BASE_URL', 'where viewers fetch media: the CDN in front of the bucket', {
    defaultText: '(required with s3; the own /origin with local)',
  }),
  host: envVar.string('TTEOK_GATEWAY_HOST', '0.0.0.0', 'HTTP listen address'),
  trustedProxies: envVar.list(
    'TTEOK_GATEWAY_TRUSTED_PROXIES',
    [],
    'proxies whose X-Forwarded-For names the client: addresses, CIDR ranges, or loopback, linklocal, uniquelocal',
    { defaultText: '(empty: none)' },
  ),
  port: envVar.int('TTEOK_GATEWAY_PORT', 8080, 0, 65535, 'HTTP listen port'),
  prefix: envVar.string('TTEOK_S3_PREFIX', '', "the bucket's key prefix, part of every CDN playback URL"),
  localOriginDir: envVar.string('TTEOK_LOCAL_ORIGIN_DIR', '.tteok/origin', 'with TTEOK_STORAGE=local: the directory the ingest stores into'),
  playlistMaxAgeSeconds: envVar.optionalNumber('TTEOK_PLAYLIST_MAX_AGE_SECONDS', 0, 3600, 'with local: playlist Cache-Control max-age', {
    defaultText: 'half the target duration',
  }),
  corsOrigins: envVar.list('TTEOK_CORS_ORIGINS', ['*'], 'origins allowed to call the gateway from a browser (GET and HEAD)'),
  playerSrcOrigins: envVar.optional('TTEOK_PLAYER_SRC_ORIGINS', "origins besides its own the player page's ?src= may play from; none: its own only", {
    defaultText: 'the origin of TTEOK_PLAYBACK_BASE_URL',
    rangeText: 'none, or comma-separated origins',
  }),
  // No timeout can be turned off (0): that is the defect they exist for.
  requestTimeoutMs: envVar.int(
    'TTEOK_GATEWAY_REQUEST_TIMEOUT_MS',
    DEFAULT_TIMEOUTS.requestMs,
    100,
    3_600_000,
    'a request (headers and body) must arrive within this',
  ),
  headersTimeoutMs: envVar.int(
    'TTEOK_GATEWAY_HEADERS_TIMEOUT_MS',
    DEFAULT_TIMEOUTS.headersMs,
    100,
    3_600_000,
    "a request's headers must arrive within this (at most the request timeout)",
  ),
  keepAliveTimeoutMs: envVar.int(
    'TTEOK_GATEWAY_KEEP_ALIVE_TIMEOUT_MS',
    DEFAULT_TIMEOUTS.keepAliveMs,
    100,
    3_600_000,
    'an idle keep-alive connection is closed after this',
  ),
  connectionTimeoutMs: envVar.int(
    'TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS',
    DEFAULT_TIMEOUTS.connectionMs,
    100,
    3_600_000,
    'a connection with no traffic either way during a request is closed after this',
  ),
  heartbeatMs: envVar.int(
    'TTEOK_EVENTS_HEARTBEAT_MS',
    (env) => defaultHeartbeatMs(envInt(env, 'TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS', DEFAULT_TIMEOUTS.connectionMs, 100, 3_600_000)),
    100,
    3_600_000,
    'a comment line this often on every open event stream (below the connection timeout)',
    { defaultText: '15000 (half the connection timeout if that is below 30 s)' },
  ),
  eventsMaxConnections: envVar.int(
    'TTEOK_EVENTS_MAX_CONNECTIONS',
    DEFAULT_EVENT_STREAMS.maxConnections,
    0,
    1_000_000,
    'open event streams per gateway; one more is answered 503 (0: off)',
  ),
  eventsMaxConnectionsPerAddress: envVar.int(
    'TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS',
    DEFAULT_EVENT_STREAMS.maxConnectionsPerAddress,
    1,
    1_000_000,
    'open event streams per client address (IPv6: per /64); one more is answered 429',
  ),
  eventsBufferSize: envVar.int('TTEOK_EVENTS_BUFFER_SIZE', DEFAULT_EVENT_STREAMS.bufferSize, 1, 1_000_000, 'recent events kept for Last-Event-ID resume'),
  followIntervalMs: envVar.int(
    'TTEOK_FOLLOW_INTERVAL_MS',
    500,
    0,
    60_000,
    "how often each live stream's playlist is fetched for the latency metrics and the lookup's renditions (0: off)",
  ),
  metricsMaxStreams: envVar.int('TTEOK_METRICS_MAX_STREAMS', 100, 0, 100_000, 'streams with their own metric labels; the rest are aggregated under _other'),
  keysFile: envVar.string('TTEOK_KEYS_FILE', 'tteok-keys.yaml', 'with TTEOK_VIEW=local: the key file (names, titles, enabled, access)'),
  ...PLAYBACK_TOKEN_ENV,
  llOrigin: envVar.bool(
    'TTEOK_LL_ORIGIN',
    true,
    "serve live streams' LL-HLS playlists and parts from their ingest under /origin/ (Kubernetes view, local mode)",
  ),
  llUpstreamTimeoutMs: envVar.int(
    'TTEOK_LL_UPSTREAM_TIMEOUT_MS',
    20_000,
    100,
    120_000,
    'the longest a request to the ingest holding a stream may take, a blocking playlist request included',
  ),
  originSecret: envVar.optional(
    'TTEOK_ORIGIN_SECRET',
    `what the CDN sends in x-tteok-origin-secret (≥ ${ORIGIN_SECRET_MIN_LENGTH} characters); such a request may reach _private/ without a token`,
    { defaultText: '(unset: every private path needs its token)' },
  ),
} satisfies EnvTable;

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const e = readEnv(GATEWAY_ENV, env);
  const base = e.playbackBaseUrl;
  if (base !== undefined) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an absolute http(s) URL, got "${base}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an http(s) URL, got "${base}"`);
  } else if (e.storage === 's3') {
    throw new ConfigError(
      'TTEOK_PLAYBACK_BASE_URL is required (the CDN URL in front of the bucket, e.g. https://d123.cloudfront.net) unless TTEOK_STORAGE=local',
    );
  }
  if (!isTokenPrefix(e.prefix)) {
    // Private streams' URLs carry the prefix, and the playback-token rule (CDN and local origin) accepts only these parts.
    throw new ConfigError(
      `TTEOK_S3_PREFIX must be parts separated by "/", each a letter or digit then letters, digits, _ . - (e.g. "live"), got "${e.prefix}"`,
    );
  }
  for (const origin of e.corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(`TTEOK_CORS_ORIGINS must be "*" or a comma list of origins like https://example.com (no path), got "${origin}"`);
    }
  }
  // `none`: the page plays ?src= from its own origin only.
  const srcList = e.playerSrcOrigins;
  const playerSrcOrigins = srcList === undefined ? undefined : srcList === 'none' ? [] : envList(env, 'TTEOK_PLAYER_SRC_ORIGINS', []);
  for (const origin of playerSrcOrigins ?? []) {
    // No "*": allowing any origin is the content spoofing this setting exists to prevent.
    if (!isOrigin(origin)) {
      throw new ConfigError(
        `TTEOK_PLAYER_SRC_ORIGINS must be "none" or a comma list of origins like https://cdn.example.com (no path, no "*"), got "${origin}"`,
      );
    }
  }
  if (e.headersTimeoutMs > e.requestTimeoutMs) {
    throw new ConfigError(
      `TTEOK_GATEWAY_HEADERS_TIMEOUT_MS (${e.headersTimeoutMs}) must not be above TTEOK_GATEWAY_REQUEST_TIMEOUT_MS (${e.requestTimeoutMs}): the headers are part of the request`,
    );
  }
  if (e.heartbeatMs >= e.connectionTimeoutMs) {
    // Heartbeats are the traffic that keeps the connection timeout from cutting an idle event stream.
    throw new ConfigError(
      `TTEOK_EVENTS_HEARTBEAT_MS (${e.heartbeatMs}) must be below TTEOK_GATEWAY_CONNECTION_TIMEOUT_MS (${e.connectionTimeoutMs}), or quiet event streams are cut`,
    );
  }
  if (e.originSecret !== undefined && (e.originSecret.length < ORIGIN_SECRET_MIN_LENGTH || /\s/.test(e.originSecret))) {
    throw new ConfigError(`TTEOK_ORIGIN_SECRET must be at least ${ORIGIN_SECRET_MIN_LENGTH} characters, without blanks`);
  }
  for (const entry of e.trustedProxies) {
    if (!isProxyEntry(entry)) {
      throw new ConfigError(
        `TTEOK_GATEWAY_TRUSTED_PROXIES must be a comma list of addresses, CIDR ranges (10.0.0.0/8, fd00::/8) or loopback, linklocal, uniquelocal; got "${entry}"`,
      );
    }
  }
  return {
    host: e.host,
    trustedProxies: e.trustedProxies,
    port: e.port,
    playbackBaseUrl: base,
    prefix: e.prefix,
    corsOrigins: e.corsOrigins,
    playerSrcOrigins,
    followIntervalMs: e.followIntervalMs,
    metricsMaxStreams: e.metricsMaxStreams,
    view: e.view,
    keysFile: e.keysFile,
    localOriginDir: e.storage === 'local' ? e.localOriginDir : undefined,
    playlistMaxAgeSeconds: e.playlistMaxAgeSeconds,
    requestTimeoutMs: e.requestTimeoutMs,
    headersTimeoutMs: e.headersTimeoutMs,
    keepAliveTimeoutMs: e.keepAliveTimeoutMs,
    connectionTimeoutMs: e.connectionTimeoutMs,
    playbackTokens: loadPlaybackTokenConfig(env),
    events: {
      heartbeatMs: e.heartbeatMs,
      maxConnections: e.eventsMaxConnections,
      maxConnectionsPerAddress: e.eventsMaxConnectionsPerAddress,
      bufferSize: e.eventsBufferSize,
    },
    lowLatency: { enabled: e.llOrigin, upstreamTimeoutMs: e.llUpstreamTimeoutMs, originSecret: e.originSecret },
  };
}

/** An address, a CIDR range, or one of proxy-addr's names (what Fastify's trustProxy takes). */
function isProxyEntry(text: string): boolean {
  if (text === 'loopback' || text === 'linklocal' || text === 'uniquelocal') return true;
  const [address = '', bits, ...rest] = text.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * An origin exactly as a browser writes it (scheme, lower-case host, port
 * only when not the default), since the page compares it with URL.origin.
 */
function isOrigin(text: string): boolean {
  if (!/^https?:\/\/[^/\s]+$/.test(text)) return false;
  try {
    return new URL(text).origin === text;
  } catch {
    return false;
  }
}

/** startGateway's options from the configuration; the caller adds the view and the logger. */
export function gatewayOptionsFrom(config: GatewayConfig): Omit<GatewayOptions, 'view' | 'log'> & { host: string; port: number } {
  return {
    host: config.host,
    port: config.port,
    trustedProxies: config.trustedProxies,
    playbackBaseUrl: config.playbackBaseUrl,
    prefix: config.prefix,
    corsOrigins: config.corsOrigins,
    playerSrcOrigins: config.playerSrcOrigins,
    originDir: config.localOriginDir,
    playlistMaxAgeSeconds: config.playlistMaxAgeSeconds,
    followIntervalMs: config.followIntervalMs,
    metricsMaxStreams: config.metricsMaxStreams,
    timeouts: {
      requestMs: config.requestTimeoutMs,
      headersMs: config.headersTimeoutMs,
      keepAliveMs: config.keepAliveTimeoutMs,
      connectionMs: config.connectionTimeoutMs,
    },
    playbackTokens: config.playbackTokens,
    events: config.events,
  };
}
