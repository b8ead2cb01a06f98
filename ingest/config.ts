// The ingest's configuration, from environment variables. README.md lists
// every one with its default; keep the two in step.
import { ConfigError, envBool, envInt, envNumber, envOptional, envString, type Env } from '../common/env-config.ts';
import type { RtmpLimits } from './rtmp/rtmp-server.ts';

export interface IngestConfig {
  rtmpHost: string;
  rtmpPort: number;
  rtmpApp: string;
  httpHost: string;
  httpPort: number;
  mediaDir: string;
  keySource: 'file' | 'kubernetes';
  keysFile: string;
  storage: 's3' | 'local';
  localOriginDir: string;
  s3: { bucket: string; prefix: string; region: string; endpoint?: string; forcePathStyle: boolean; requestTimeoutMs: number };
  playlistMaxAgeSeconds: number | undefined;
  reconnectGraceMs: number;
  /** A publisher that sends no media for this long is treated as dropped. */
  publisherIdleMs: number;
  /** A second publish with the same key takes over from a publisher that sent no media for this long. */
  takeoverSilenceMs: number;
  deleteDelayMs: number;
  uploadConcurrency: number;
  backlogWarnSegments: number;
  /** Bytes of waiting segments the uploader keeps in memory, across streams (past it they are read back from the volume). */
  uploadMemoryBytes: number;
  shutdownTimeoutMs: number;
  rtmp: RtmpLimits;
  /** RTMPS listener; undefined when TTEOK_RTMPS_PORT is not set. */
  rtmps: { host: string; port: number; certFile: string; keyFile: string; reloadMs: number; handshakeTimeoutMs: number } | undefined;
  /** Media volume use (percent) above which new publishes are refused and /readyz is not ready. */
  mediaHighWaterPercent: number;
  /** Media volume use (percent) above which live streams' new segments are skipped: the backlog bound. */
  mediaFullPercent: number;
  /**
   * The media volume's size when the filesystem cannot tell (an emptyDir on
   * the node's disk with a sizeLimit): use is then the bytes under the media
   * directory. Undefined: the filesystem's own size and use (statfs).
   */
  mediaVolumeBytes: number | undefined;
}

export function loadIngestConfig(env: Env = process.env): IngestConfig {
  const storage = envString(env, 'TTEOK_STORAGE', 's3');
  if (storage !== 's3' && storage !== 'local') throw new ConfigError(`TTEOK_STORAGE must be "s3" or "local", got "${storage}"`);
  const keySource = envString(env, 'TTEOK_KEY_SOURCE', 'file');
  if (keySource !== 'file' && keySource !== 'kubernetes') throw new ConfigError(`TTEOK_KEY_SOURCE must be "file" or "kubernetes", got "${keySource}"`);
  const bucket = envString(env, 'TTEOK_S3_BUCKET', '');
  if (storage === 's3' && bucket === '') throw new ConfigError('TTEOK_S3_BUCKET is required when TTEOK_STORAGE is "s3" (or set TTEOK_STORAGE=local)');
  const maxAge = envOptional(env, 'TTEOK_PLAYLIST_MAX_AGE_SECONDS');
  const publisherIdleMs = envNumber(env, 'TTEOK_PUBLISHER_IDLE_SECONDS', 5, 0.5, 600) * 1000;
  const takeoverSilenceMs = envNumber(env, 'TTEOK_TAKEOVER_SILENCE_SECONDS', 1, 0.2, 600) * 1000;
  // Past the idle timeout the publisher is already dropped: a takeover threshold beyond it could never apply.
  if (takeoverSilenceMs >= publisherIdleMs) {
    throw new ConfigError(`TTEOK_TAKEOVER_SILENCE_SECONDS (${takeoverSilenceMs / 1000}) must be less than TTEOK_PUBLISHER_IDLE_SECONDS (${publisherIdleMs / 1000})`);
  }
  const rtmpsPort = envOptional(env, 'TTEOK_RTMPS_PORT') === undefined ? undefined : envInt(env, 'TTEOK_RTMPS_PORT', 0, 0, 65535);
  const rtmpsCert = envOptional(env, 'TTEOK_RTMPS_CERT_FILE');
  const rtmpsKey = envOptional(env, 'TTEOK_RTMPS_KEY_FILE');
  const rtmpsReloadMs = envNumber(env, 'TTEOK_RTMPS_RELOAD_SECONDS', 10, 1, 3600) * 1000;
  const rtmpsHandshakeTimeoutMs = envNumber(env, 'TTEOK_RTMPS_HANDSHAKE_TIMEOUT_SECONDS', 5, 1, 60) * 1000;
  if (rtmpsPort !== undefined && (!rtmpsCert || !rtmpsKey)) throw new ConfigError('TTEOK_RTMPS_CERT_FILE and TTEOK_RTMPS_KEY_FILE are required when TTEOK_RTMPS_PORT is set');
  const mediaHighWaterPercent = envNumber(env, 'TTEOK_MEDIA_HIGH_WATER_PERCENT', 85, 1, 100);
  const mediaFullPercent = envNumber(env, 'TTEOK_MEDIA_FULL_PERCENT', 95, 1, 100);
  if (mediaFullPercent < mediaHighWaterPercent) {
    throw new ConfigError(`TTEOK_MEDIA_FULL_PERCENT (${mediaFullPercent}) must not be below TTEOK_MEDIA_HIGH_WATER_PERCENT (${mediaHighWaterPercent})`);
  }
  return {
    rtmpHost: envString(env, 'TTEOK_RTMP_HOST', '0.0.0.0'),
    rtmpPort: envInt(env, 'TTEOK_RTMP_PORT', 1935, 0, 65535),
    rtmpApp: envString(env, 'TTEOK_RTMP_APP', 'live'),
    httpHost: envString(env, 'TTEOK_HTTP_HOST', '0.0.0.0'),
    httpPort: envInt(env, 'TTEOK_HTTP_PORT', 9935, 0, 65535),
    mediaDir: envString(env, 'TTEOK_MEDIA_DIR', '/var/lib/tteok/media'),
    keySource,
    keysFile: envString(env, 'TTEOK_KEYS_FILE', 'tteok-keys.yaml'),
    storage,
    localOriginDir: envString(env, 'TTEOK_LOCAL_ORIGIN_DIR', '.tteok/origin'),
    s3: {
      bucket,
      prefix: envString(env, 'TTEOK_S3_PREFIX', ''),
      region: envString(env, 'TTEOK_S3_REGION', envString(env, 'AWS_REGION', 'us-east-1')),
      endpoint: envOptional(env, 'TTEOK_S3_ENDPOINT'),
      forcePathStyle: envBool(env, 'TTEOK_S3_FORCE_PATH_STYLE', false),
      requestTimeoutMs: envInt(env, 'TTEOK_S3_REQUEST_TIMEOUT_MS', 5000, 100),
    },
    playlistMaxAgeSeconds: maxAge === undefined ? undefined : envNumber(env, 'TTEOK_PLAYLIST_MAX_AGE_SECONDS', 0, 0, 3600),
    reconnectGraceMs: envNumber(env, 'TTEOK_RECONNECT_GRACE_SECONDS', 10, 0, 600) * 1000,
    publisherIdleMs,
    takeoverSilenceMs,
    deleteDelayMs: envNumber(env, 'TTEOK_DELETE_DELAY_SECONDS', 60, 0, 86400) * 1000,
    uploadConcurrency: envInt(env, 'TTEOK_UPLOAD_CONCURRENCY', 8, 1, 256),
    backlogWarnSegments: envInt(env, 'TTEOK_BACKLOG_WARN_SEGMENTS', 30, 1),
    uploadMemoryBytes: Math.round(envNumber(env, 'TTEOK_UPLOAD_MEMORY_MIB', 64, 0, 65536) * 1024 * 1024),
    shutdownTimeoutMs: envNumber(env, 'TTEOK_SHUTDOWN_TIMEOUT_SECONDS', 25, 0, 3600) * 1000,
    rtmp: {
      publishDeadlineMs: envNumber(env, 'TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS', 10, 1, 300) * 1000,
      // A message length field has 3 bytes: 16 MiB - 1 is the protocol's own ceiling.
      maxMessageBytes: envInt(env, 'TTEOK_RTMP_MAX_MESSAGE_BYTES', 8 * 1024 * 1024, 64 * 1024, 0xffffff),
      maxConnections: envInt(env, 'TTEOK_RTMP_MAX_CONNECTIONS', 500, 1, 100_000),
      maxConnectionsPerAddress: envInt(env, 'TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS', 10, 1, 100_000),
      keepaliveMs: envNumber(env, 'TTEOK_RTMP_KEEPALIVE_SECONDS', 15, 1, 3600) * 1000,
    },
    rtmps:
      rtmpsPort === undefined || !rtmpsCert || !rtmpsKey
        ? undefined
        : {
            host: envString(env, 'TTEOK_RTMPS_HOST', envString(env, 'TTEOK_RTMP_HOST', '0.0.0.0')),
            port: rtmpsPort,
            certFile: rtmpsCert,
            keyFile: rtmpsKey,
            reloadMs: rtmpsReloadMs,
            handshakeTimeoutMs: rtmpsHandshakeTimeoutMs,
          },
    mediaHighWaterPercent,
    mediaFullPercent,
    mediaVolumeBytes: envQuantity(env, 'TTEOK_MEDIA_VOLUME_BYTES'),
  };
}

const QUANTITY_SUFFIXES: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A byte count, plain or as a Kubernetes quantity ("2Gi", "500M"), so the chart can pass the emptyDir's sizeLimit as it is. */
function envQuantity(env: Env, name: string): number | undefined {
  const text = envOptional(env, name);
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)([kKMGT]i?)?$/.exec(text);
  const value = match ? Math.floor(Number(match[1]) * (QUANTITY_SUFFIXES[match[2] ?? ''] ?? NaN)) : NaN;
  if (!Number.isFinite(value) || value < 1024 * 1024) {
    throw new ConfigError(`${name} must be a byte count of at least 1Mi, plain or with a suffix (Ki, Mi, Gi, Ti, k, M, G, T), got "${text}"`);
  }
  return value;
}
