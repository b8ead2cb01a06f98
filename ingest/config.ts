// The ingest's configuration, from environment variables. README.md lists
// every one with its default; keep the two in step.
import { ConfigError, envOptional, envString, envVar, readEnv, type Env, type EnvTable } from '../common/env-config.ts';
import { RENDITIONS_ENV, S3_ENV } from '../common/shared-env.ts';
import type { RtmpLimits } from './rtmp/rtmp-server.ts';
import { DEFAULT_PUBLISH_LIMITS, type PublishLimitSettings } from './packager/publish-limits.ts';
import { readRenditionConfig, RENDITION_ENV, type RenditionConfig } from './renditions/config.ts';

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
  /** What one admitted publish may hold and produce: GOP length, open fragment bytes, pace (publish-limits.ts). */
  publishLimits: PublishLimitSettings;
  /** Renditions of LiveStreams without spec.renditions (TTEOK_DEFAULT_RENDITIONS). */
  defaultRenditions: string[];
  /** Renditions and thumbnails: who encodes them (renditions/config.ts). */
  renditions: RenditionConfig;
  /** LL-HLS part duration in seconds (TTEOK_LL_PART_SECONDS); 0: no parts, no LL playlists. */
  llPartSeconds: number;
}

/** What hls.js and the spec's examples use: about three parts a second. */
export const DEFAULT_LL_PART_SECONDS = 0.333;

/**
 * Every variable the ingest reads, one row each: `tteok ingest --help` prints
 * these rows and loadIngestConfig reads through them. To add a setting, add a
 * row here (and to README's Ingest table) and use it in the loader.
 */
export const INGEST_ENV = {
  storage: envVar.choice('TTEOK_STORAGE', 's3', ['s3', 'local'], 'object store: s3, or local (a directory)'),
  keySource: envVar.choice('TTEOK_KEY_SOURCE', 'file', ['file', 'kubernetes'], 'where stream keys come from'),
  rtmpHost: envVar.string('TTEOK_RTMP_HOST', '0.0.0.0', 'RTMP listen address'),
  rtmpPort: envVar.int('TTEOK_RTMP_PORT', 1935, 0, 65535, 'RTMP listen port'),
  rtmpApp: envVar.string('TTEOK_RTMP_APP', 'live', 'RTMP application publishers use (rtmp://host/live/<key>)'),
  publishDeadlineSeconds: envVar.number(
    'TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS',
    10,
    1,
    300,
    'a connection must have its publish admitted this long after connecting',
  ),
  // A message length field has 3 bytes: 16 MiB - 1 is the protocol's own ceiling.
  maxMessageBytes: envVar.int('TTEOK_RTMP_MAX_MESSAGE_BYTES', 8 * 1024 * 1024, 64 * 1024, 0xffffff, 'largest RTMP message once a publish is admitted'),
  maxConnections: envVar.int('TTEOK_RTMP_MAX_CONNECTIONS', 500, 1, 100_000, 'open RTMP connections per ingest pod'),
  maxConnectionsPerAddress: envVar.int('TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS', 10, 1, 100_000, 'open RTMP connections per client address (IPv6: per /64)'),
  keepaliveSeconds: envVar.number('TTEOK_RTMP_KEEPALIVE_SECONDS', 15, 1, 3600, 'idle time before TCP keepalive probes start on an RTMP connection'),
  rtmpsPort: envVar.optionalInt('TTEOK_RTMPS_PORT', 0, 65535, 'port of the RTMPS listener; needs the certificate and key files', {
    defaultText: '(unset: no RTMPS)',
  }),
  rtmpsHost: envVar.string('TTEOK_RTMPS_HOST', (env) => envString(env, 'TTEOK_RTMP_HOST', '0.0.0.0'), 'RTMPS listen address', {
    defaultText: '$TTEOK_RTMP_HOST',
  }),
  rtmpsCertFile: envVar.optional('TTEOK_RTMPS_CERT_FILE', 'PEM certificate chain (required with RTMPS)'),
  rtmpsKeyFile: envVar.optional('TTEOK_RTMPS_KEY_FILE', 'PEM private key (required with RTMPS)'),
  rtmpsReloadSeconds: envVar.number('TTEOK_RTMPS_RELOAD_SECONDS', 10, 1, 3600, 'how often the certificate and key files are re-read'),
  rtmpsHandshakeTimeoutSeconds: envVar.number(
    'TTEOK_RTMPS_HANDSHAKE_TIMEOUT_SECONDS',
    5,
    1,
    60,
    'a connection to the RTMPS port must finish its TLS handshake this long after connecting',
  ),
  httpHost: envVar.string('TTEOK_HTTP_HOST', '0.0.0.0', 'listen address for /metrics, /healthz, /readyz'),
  httpPort: envVar.int('TTEOK_HTTP_PORT', 9935, 0, 65535, 'port for /metrics, /healthz, /readyz'),
  mediaDir: envVar.string('TTEOK_MEDIA_DIR', '/var/lib/tteok/media', 'the media volume: packaged segments wait here until stored'),
  keysFile: envVar.string('TTEOK_KEYS_FILE', 'tteok-keys.yaml', 'with TTEOK_KEY_SOURCE=file: the key file, reloaded on change'),
  localOriginDir: envVar.string('TTEOK_LOCAL_ORIGIN_DIR', '.tteok/origin', 'with TTEOK_STORAGE=local: the directory objects go to'),
  ...S3_ENV,
  playlistMaxAgeSeconds: envVar.optionalNumber('TTEOK_PLAYLIST_MAX_AGE_SECONDS', 0, 3600, 'playlist Cache-Control max-age', {
    defaultText: 'half the target duration',
  }),
  reconnectGraceSeconds: envVar.number('TTEOK_RECONNECT_GRACE_SECONDS', 10, 0, 600, 'how long a dropped publisher may take to come back and continue'),
  publisherIdleSeconds: envVar.number('TTEOK_PUBLISHER_IDLE_SECONDS', 5, 0.5, 600, 'a publisher that sends no media this long is treated as dropped'),
  takeoverSilenceSeconds: envVar.number(
    'TTEOK_TAKEOVER_SILENCE_SECONDS',
    1,
    0.2,
    600,
    'a publish with the same key takes over from a publisher silent this long (below the idle time)',
  ),
  deleteDelaySeconds: envVar.number('TTEOK_DELETE_DELAY_SECONDS', 60, 0, 86400, "how long an ended stream's media stays before deletion (when not retained)"),
  uploadConcurrency: envVar.int('TTEOK_UPLOAD_CONCURRENCY', 8, 1, 256, 'uploads in flight at once, across streams'),
  backlogWarnSegments: envVar.int('TTEOK_BACKLOG_WARN_SEGMENTS', 30, 1, Infinity, 'upload backlog above which a warning is logged'),
  uploadMemoryMib: envVar.number('TTEOK_UPLOAD_MEMORY_MIB', 64, 0, 65536, 'MiB of waiting segments kept in memory; past it they are read back from the volume'),
  shutdownTimeoutSeconds: envVar.number('TTEOK_SHUTDOWN_TIMEOUT_SECONDS', 25, 0, 3600, 'on SIGTERM, how long to wait for uploads before exiting'),
  mediaHighWaterPercent: envVar.number('TTEOK_MEDIA_HIGH_WATER_PERCENT', 85, 1, 100, 'media volume use at which new publishes are refused and /readyz is 503'),
  mediaFullPercent: envVar.number(
    'TTEOK_MEDIA_FULL_PERCENT',
    95,
    1,
    100,
    'media volume use at which live streams skip new segments (not below the high-water mark)',
  ),
  mediaVolumeBytes: envVar.custom(
    'TTEOK_MEDIA_VOLUME_BYTES',
    (env) => envQuantity(env, 'TTEOK_MEDIA_VOLUME_BYTES'),
    "the media volume's size when the filesystem cannot tell (e.g. an emptyDir's sizeLimit)",
    { defaultText: "(the filesystem's size)", rangeText: '≥ 1Mi; bytes or a quantity (2Gi, 500M)' },
  ),
  // At least the longest segment target (10 s): a GOP may span a whole segment.
  maxGopSeconds: envVar.number(
    'TTEOK_MAX_GOP_SECONDS',
    DEFAULT_PUBLISH_LIMITS.maxGopSeconds,
    10,
    600,
    'longest media time from one video keyframe to the next; past it the publish ends',
  ),
  maxFragmentMib: envVar.number(
    'TTEOK_MAX_FRAGMENT_MIB',
    DEFAULT_PUBLISH_LIMITS.maxFragmentBytes / 2 ** 20,
    8,
    4096,
    'most MiB of media held for the segment not yet cut; past it the publish ends',
  ),
  maxAheadSegments: envVar.number(
    'TTEOK_MAX_AHEAD_SEGMENTS',
    DEFAULT_PUBLISH_LIMITS.maxAheadSegments,
    1,
    100,
    "target durations the stream's media time may run ahead of the wall clock; past it the publish ends",
  ),
  llPartSeconds: envVar.custom(
    'TTEOK_LL_PART_SECONDS',
    (env) => envPartSeconds(env, 'TTEOK_LL_PART_SECONDS'),
    'LL-HLS part duration: parts and blocking playlists served from memory on the HTTP port (/ll/…); 0 turns LL-HLS off',
    { defaultText: String(DEFAULT_LL_PART_SECONDS), rangeText: '0, or 0.1–1' },
  ),
  ...RENDITIONS_ENV,
  ...RENDITION_ENV,
} satisfies EnvTable;

/** With TTEOK_KEY_SOURCE=kubernetes: where the gateway reaches this pod for its streams' LL-HLS (the claim's tteok.dev/ll-origin). */
export const INGEST_POD_ENV = {
  podIp: envVar.optional('TTEOK_POD_IP', "this pod's IP (set it from status.podIP): claims then name http://<it>:<TTEOK_HTTP_PORT> as the LL origin", {
    defaultText: '(unset: claims name no LL origin)',
  }),
} satisfies EnvTable;

export function loadIngestConfig(env: Env = process.env): IngestConfig {
  const e = readEnv(INGEST_ENV, env);
  if (e.storage === 's3' && e.bucket === '') throw new ConfigError('TTEOK_S3_BUCKET is required when TTEOK_STORAGE is "s3" (or set TTEOK_STORAGE=local)');
  const publisherIdleMs = e.publisherIdleSeconds * 1000;
  const takeoverSilenceMs = e.takeoverSilenceSeconds * 1000;
  // Past the idle timeout the publisher is already dropped: a takeover threshold beyond it could never apply.
  if (takeoverSilenceMs >= publisherIdleMs) {
    throw new ConfigError(
      `TTEOK_TAKEOVER_SILENCE_SECONDS (${takeoverSilenceMs / 1000}) must be less than TTEOK_PUBLISHER_IDLE_SECONDS (${publisherIdleMs / 1000})`,
    );
  }
  if (e.rtmpsPort !== undefined && (!e.rtmpsCertFile || !e.rtmpsKeyFile))
    throw new ConfigError('TTEOK_RTMPS_CERT_FILE and TTEOK_RTMPS_KEY_FILE are required when TTEOK_RTMPS_PORT is set');
  if (e.mediaFullPercent < e.mediaHighWaterPercent) {
    throw new ConfigError(`TTEOK_MEDIA_FULL_PERCENT (${e.mediaFullPercent}) must not be below TTEOK_MEDIA_HIGH_WATER_PERCENT (${e.mediaHighWaterPercent})`);
  }
  const maxFragmentBytes = Math.round(e.maxFragmentMib * 2 ** 20);
  // A segment holds at least a keyframe and what follows it: a bound below two of the largest messages would end real publishes.
  if (maxFragmentBytes < 2 * e.maxMessageBytes) {
    throw new ConfigError(
      `TTEOK_MAX_FRAGMENT_MIB (${maxFragmentBytes / 2 ** 20}) must be at least twice TTEOK_RTMP_MAX_MESSAGE_BYTES (${e.maxMessageBytes} bytes)`,
    );
  }
  return {
    rtmpHost: e.rtmpHost,
    rtmpPort: e.rtmpPort,
    rtmpApp: e.rtmpApp,
    httpHost: e.httpHost,
    httpPort: e.httpPort,
    mediaDir: e.mediaDir,
    keySource: e.keySource,
    keysFile: e.keysFile,
    storage: e.storage,
    localOriginDir: e.localOriginDir,
    s3: { bucket: e.bucket, prefix: e.prefix, region: e.region, endpoint: e.endpoint, forcePathStyle: e.forcePathStyle, requestTimeoutMs: e.requestTimeoutMs },
    playlistMaxAgeSeconds: e.playlistMaxAgeSeconds,
    reconnectGraceMs: e.reconnectGraceSeconds * 1000,
    publisherIdleMs,
    takeoverSilenceMs,
    deleteDelayMs: e.deleteDelaySeconds * 1000,
    uploadConcurrency: e.uploadConcurrency,
    backlogWarnSegments: e.backlogWarnSegments,
    uploadMemoryBytes: Math.round(e.uploadMemoryMib * 1024 * 1024),
    shutdownTimeoutMs: e.shutdownTimeoutSeconds * 1000,
    rtmp: {
      publishDeadlineMs: e.publishDeadlineSeconds * 1000,
      maxMessageBytes: e.maxMessageBytes,
      maxConnections: e.maxConnections,
      maxConnectionsPerAddress: e.maxConnectionsPerAddress,
      keepaliveMs: e.keepaliveSeconds * 1000,
    },
    rtmps:
      e.rtmpsPort === undefined || !e.rtmpsCertFile || !e.rtmpsKeyFile
        ? undefined
        : {
            host: e.rtmpsHost,
            port: e.rtmpsPort,
            certFile: e.rtmpsCertFile,
            keyFile: e.rtmpsKeyFile,
            reloadMs: e.rtmpsReloadSeconds * 1000,
            handshakeTimeoutMs: e.rtmpsHandshakeTimeoutSeconds * 1000,
          },
    mediaHighWaterPercent: e.mediaHighWaterPercent,
    mediaFullPercent: e.mediaFullPercent,
    mediaVolumeBytes: e.mediaVolumeBytes,
    publishLimits: { maxGopSeconds: e.maxGopSeconds, maxFragmentBytes, maxAheadSegments: e.maxAheadSegments },
    defaultRenditions: e.defaultRenditions,
    renditions: readRenditionConfig(env),
    llPartSeconds: e.llPartSeconds,
  };
}

/** 0 (off), or a part duration from 0.1 to 1 s: shorter parts cost more requests than they save; longer ones gain little over segments. */
function envPartSeconds(env: Env, name: string): number {
  const text = envOptional(env, name);
  if (text === undefined) return DEFAULT_LL_PART_SECONDS;
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value === 0 || (value >= 0.1 && value <= 1))) {
    throw new ConfigError(`${name} must be 0 (off) or a number of seconds from 0.1 to 1, got "${text}"`);
  }
  return value;
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
