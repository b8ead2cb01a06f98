// The gateway's configuration, from environment variables. README.md lists
// every one with its default ("Gateway" table); keep the two in step.
import { ConfigError, envInt, envList, envNumber, envOptional, envString, type Env } from '../common/env-config.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, parseKeyring, type PlaybackKeyring } from '../common/playback-token.ts';
import type { GatewayOptions } from './gateway.ts';

export type ViewKind = 'local' | 'kubernetes';

export interface GatewayConfig {
  host: string;
  port: number;
  /**
   * Where viewers fetch media: the CDN in front of the bucket (CloudFront in
   * production). Undefined when the gateway serves the local origin itself
   * (TTEOK_STORAGE=local); playback URLs then point at its own /origin/.
   */
  playbackBaseUrl: string | undefined;
  /** Object key prefix (TTEOK_S3_PREFIX), part of every playback URL on the CDN. */
  prefix: string;
  corsOrigins: string[];
  followIntervalMs: number;
  metricsMaxStreams: number;
  view: ViewKind;
  keysFile: string;
  /** With TTEOK_STORAGE=local: the directory the ingest stores into, served under /origin/. */
  localOriginDir: string | undefined;
  playlistMaxAgeSeconds: number | undefined;
  /** Private streams (common/playback-token.ts); see playbackTokensFrom. */
  playbackTokens: PlaybackTokenConfig;
}

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
  const keysText = envOptional(env, 'TTEOK_PLAYBACK_TOKEN_KEYS');
  let keyring: PlaybackKeyring | undefined;
  if (keysText !== undefined) {
    try {
      keyring = parseKeyring(keysText);
    } catch (error) {
      throw new ConfigError(`TTEOK_PLAYBACK_TOKEN_KEYS: ${(error as Error).message}`);
    }
  }
  const apiKey = envOptional(env, 'TTEOK_PLAYBACK_API_KEY');
  if (apiKey !== undefined && apiKey.length < PLAYBACK_API_KEY_MIN_LENGTH) {
    throw new ConfigError(`TTEOK_PLAYBACK_API_KEY must be at least ${PLAYBACK_API_KEY_MIN_LENGTH} characters`);
  }
  if (apiKey !== undefined && !keyring) throw new ConfigError('TTEOK_PLAYBACK_API_KEY is set but TTEOK_PLAYBACK_TOKEN_KEYS is not: there is nothing to sign tokens with');
  return { keyring, apiKey, ttlSeconds: envInt(env, 'TTEOK_PLAYBACK_TOKEN_TTL_SECONDS', DEFAULT_TOKEN_TTL_SECONDS, 60, 7 * 86_400) };
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const storage = envString(env, 'TTEOK_STORAGE', 's3');
  if (storage !== 's3' && storage !== 'local') throw new ConfigError(`TTEOK_STORAGE must be "s3" or "local", got "${storage}"`);
  const view = envString(env, 'TTEOK_VIEW', 'local');
  if (view !== 'local' && view !== 'kubernetes') throw new ConfigError(`TTEOK_VIEW must be "local" or "kubernetes", got "${view}"`);
  const base = envOptional(env, 'TTEOK_PLAYBACK_BASE_URL');
  if (base !== undefined) {
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an absolute http(s) URL, got "${base}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an http(s) URL, got "${base}"`);
  } else if (storage === 's3') {
    throw new ConfigError('TTEOK_PLAYBACK_BASE_URL is required (the CDN URL in front of the bucket, e.g. https://d123.cloudfront.net) unless TTEOK_STORAGE=local');
  }
  const maxAge = envOptional(env, 'TTEOK_PLAYLIST_MAX_AGE_SECONDS');
  const corsOrigins = envList(env, 'TTEOK_CORS_ORIGINS', ['*']);
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(`TTEOK_CORS_ORIGINS must be "*" or a comma list of origins like https://example.com (no path), got "${origin}"`);
    }
  }
  return {
    host: envString(env, 'TTEOK_GATEWAY_HOST', '0.0.0.0'),
    port: envInt(env, 'TTEOK_GATEWAY_PORT', 8080, 0, 65535),
    playbackBaseUrl: base,
    prefix: envString(env, 'TTEOK_S3_PREFIX', ''),
    corsOrigins,
    followIntervalMs: envInt(env, 'TTEOK_FOLLOW_INTERVAL_MS', 500, 0, 60_000),
    metricsMaxStreams: envInt(env, 'TTEOK_METRICS_MAX_STREAMS', 100, 0, 100_000),
    view,
    keysFile: envString(env, 'TTEOK_KEYS_FILE', 'tteok-keys.yaml'),
    localOriginDir: storage === 'local' ? envString(env, 'TTEOK_LOCAL_ORIGIN_DIR', '.tteok/origin') : undefined,
    playlistMaxAgeSeconds: maxAge === undefined ? undefined : envNumber(env, 'TTEOK_PLAYLIST_MAX_AGE_SECONDS', 0, 0, 3600),
    playbackTokens: loadPlaybackTokenConfig(env),
  };
}

/** startGateway's options from the configuration; the caller adds the view and the logger. */
export function gatewayOptionsFrom(config: GatewayConfig): Omit<GatewayOptions, 'view' | 'log'> & { host: string; port: number } {
  return {
    host: config.host,
    port: config.port,
    playbackBaseUrl: config.playbackBaseUrl,
    prefix: config.prefix,
    corsOrigins: config.corsOrigins,
    originDir: config.localOriginDir,
    playlistMaxAgeSeconds: config.playlistMaxAgeSeconds,
    followIntervalMs: config.followIntervalMs,
    metricsMaxStreams: config.metricsMaxStreams,
    playbackTokens: config.playbackTokens,
  };
}
