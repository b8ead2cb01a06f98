// The ingest's environment configuration: documented defaults, and a
// ConfigError naming the variable for anything it cannot use.
import t from 'tap';
import { ConfigError } from '../../common/env-config.ts';
import { loadIngestConfig, type IngestConfig } from '../../ingest/config.ts';

/** Loads `env`, which must be refused: returns the ConfigError's message. */
function refused(env: Record<string, string>): string {
  try {
    loadIngestConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return '(accepted)';
}

t.test('defaults', async (t) => {
  const config = loadIngestConfig({ TTEOK_S3_BUCKET: 'media' });
  const expected: IngestConfig = {
    rtmpHost: '0.0.0.0',
    rtmpPort: 1935,
    rtmpApp: 'live',
    httpHost: '0.0.0.0',
    httpPort: 9935,
    mediaDir: '/var/lib/tteok/media',
    keySource: 'file',
    keysFile: 'tteok-keys.yaml',
    storage: 's3',
    localOriginDir: '.tteok/origin',
    s3: { bucket: 'media', prefix: '', region: 'us-east-1', endpoint: undefined, forcePathStyle: false, requestTimeoutMs: 5000 },
    playlistMaxAgeSeconds: undefined,
    reconnectGraceMs: 10_000,
    publisherIdleMs: 5000,
    takeoverSilenceMs: 1000,
    deleteDelayMs: 60_000,
    uploadConcurrency: 8,
    backlogWarnSegments: 30,
    uploadMemoryBytes: 64 * 1024 * 1024,
    shutdownTimeoutMs: 25_000,
    rtmp: { publishDeadlineMs: 10_000, maxMessageBytes: 8 * 1024 * 1024, maxConnections: 500, maxConnectionsPerAddress: 10, keepaliveMs: 15_000 },
    rtmps: undefined,
    mediaHighWaterPercent: 85,
    mediaFullPercent: 95,
    mediaVolumeBytes: undefined,
    publishLimits: { maxGopSeconds: 12, maxFragmentBytes: 64 * 1024 * 1024, maxAheadSegments: 3 },
    defaultRenditions: [],
    renditions: { transcoder: 'off', transcoderUrl: undefined, thumbnailMs: 10_000, ffmpeg: 'ffmpeg' },
    llPartSeconds: 0.333,
  };
  t.same(config, expected);
  t.same(loadIngestConfig({ TTEOK_S3_BUCKET: 'media', TTEOK_RTMP_PORT: '', TTEOK_S3_FORCE_PATH_STYLE: '' }), expected, 'an empty variable means the default');
  t.equal(loadIngestConfig({ TTEOK_STORAGE: 'local' }).storage, 'local', 'local storage needs no bucket');
});

t.test('renditions: off by default; local, or remote with an http:// URL; thumbnails every TTEOK_THUMBNAIL_SECONDS', async (t) => {
  t.same(loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_TRANSCODER: 'local', TTEOK_THUMBNAIL_SECONDS: '0', TTEOK_FFMPEG: '/opt/ffmpeg' }).renditions, {
    transcoder: 'local',
    transcoderUrl: undefined,
    thumbnailMs: 0,
    ffmpeg: '/opt/ffmpeg',
  });
  t.equal(
    loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_TRANSCODER: 'remote', TTEOK_TRANSCODER_URL: 'http://tteok-transcoder:9938' }).renditions.transcoderUrl,
    'http://tteok-transcoder:9938',
  );
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_TRANSCODER: 'remote' }), /TTEOK_TRANSCODER_URL is required when TTEOK_TRANSCODER is "remote"/);
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_TRANSCODER: 'remote', TTEOK_TRANSCODER_URL: 'ftp://x' }), /TTEOK_TRANSCODER_URL must be an http:\/\/ URL/);
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_TRANSCODER: 'yes' }), /TTEOK_TRANSCODER must be "off" or "local" or "remote"/);
});

t.test('the publish limits are read, and refused outside their ranges', async (t) => {
  const config = loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_MAX_GOP_SECONDS: '20', TTEOK_MAX_FRAGMENT_MIB: '128', TTEOK_MAX_AHEAD_SEGMENTS: '5' });
  t.same(config.publishLimits, { maxGopSeconds: 20, maxFragmentBytes: 128 * 1024 * 1024, maxAheadSegments: 5 });
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_MAX_GOP_SECONDS: '5' }), /TTEOK_MAX_GOP_SECONDS/, 'a GOP bound below the longest segment target');
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_MAX_FRAGMENT_MIB: '1' }), /TTEOK_MAX_FRAGMENT_MIB/, 'a fragment bound below one large keyframe');
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_MAX_AHEAD_SEGMENTS: '0' }), /TTEOK_MAX_AHEAD_SEGMENTS/);
  t.match(
    refused({ TTEOK_STORAGE: 'local', TTEOK_MAX_FRAGMENT_MIB: '16', TTEOK_RTMP_MAX_MESSAGE_BYTES: String(16 * 1024 * 1024 - 1) }),
    /TTEOK_MAX_FRAGMENT_MIB \(16\) must be at least twice TTEOK_RTMP_MAX_MESSAGE_BYTES/,
    'a fragment bound that two of the largest messages do not fit in',
  );
});

t.test('TTEOK_DEFAULT_RENDITIONS: a comma list of presets, refused with what to fix', async (t) => {
  t.same(loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_DEFAULT_RENDITIONS: '480p, 360p,audio' }).defaultRenditions, ['480p', '360p', 'audio']);
  t.same(loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_DEFAULT_RENDITIONS: '' }).defaultRenditions, [], 'empty: none');
  t.match(
    refused({ TTEOK_STORAGE: 'local', TTEOK_DEFAULT_RENDITIONS: '480p,4k' }),
    /^TTEOK_DEFAULT_RENDITIONS: "4k" is not a preset; use one of 1080p, 720p, 480p, 360p, 160p, audio$/,
  );
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_DEFAULT_RENDITIONS: '480p,480p' }), /^TTEOK_DEFAULT_RENDITIONS names 480p twice$/);
  t.match(
    refused({ TTEOK_STORAGE: 'local', TTEOK_DEFAULT_RENDITIONS: '1080p,720p,480p,360p,160p,audio' }),
    /^TTEOK_DEFAULT_RENDITIONS may name at most 5 renditions$/,
  );
});

t.test('values are read and converted', async (t) => {
  const config = loadIngestConfig({
    TTEOK_STORAGE: 's3',
    TTEOK_S3_BUCKET: 'b',
    TTEOK_S3_ENDPOINT: 'http://127.0.0.1:8333',
    TTEOK_S3_FORCE_PATH_STYLE: 'yes',
    AWS_REGION: 'eu-west-3',
    TTEOK_RTMP_PORT: '19350',
    TTEOK_KEY_SOURCE: 'kubernetes',
    TTEOK_RECONNECT_GRACE_SECONDS: '2.5',
    TTEOK_PLAYLIST_MAX_AGE_SECONDS: '0',
    TTEOK_SHUTDOWN_TIMEOUT_SECONDS: '0',
  });
  t.equal(config.rtmpPort, 19350);
  t.equal(config.keySource, 'kubernetes');
  t.equal(config.s3.endpoint, 'http://127.0.0.1:8333');
  t.equal(config.s3.forcePathStyle, true);
  t.equal(config.s3.region, 'eu-west-3', 'AWS_REGION is the fallback region');
  t.equal(loadIngestConfig({ TTEOK_S3_BUCKET: 'b', AWS_REGION: 'eu-west-3', TTEOK_S3_REGION: 'ap-south-1' }).s3.region, 'ap-south-1', 'TTEOK_S3_REGION wins');
  t.equal(config.reconnectGraceMs, 2500, 'seconds become milliseconds');
  t.equal(config.playlistMaxAgeSeconds, 0, 'an explicit 0 is kept, not taken as unset');
  t.equal(config.shutdownTimeoutMs, 0);
  for (const [raw, value] of [
    ['1', true],
    ['TRUE', true],
    ['on', true],
    ['0', false],
    ['No', false],
    ['off', false],
  ] as const) {
    t.equal(loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_S3_FORCE_PATH_STYLE: raw }).s3.forcePathStyle, value, `bool "${raw}"`);
  }
});

t.test('a bad integer names the variable', async (t) => {
  const bad: Array<[string, string]> = [
    ['TTEOK_RTMP_PORT', 'abc'],
    ['TTEOK_RTMP_PORT', '1935.5'],
    ['TTEOK_RTMP_PORT', '70000'],
    ['TTEOK_RTMP_PORT', '-1'],
    ['TTEOK_HTTP_PORT', '99999'],
    ['TTEOK_UPLOAD_CONCURRENCY', '0'],
    ['TTEOK_UPLOAD_CONCURRENCY', '8 workers'],
    ['TTEOK_S3_REQUEST_TIMEOUT_MS', '50'],
    ['TTEOK_BACKLOG_WARN_SEGMENTS', 'many'],
    ['TTEOK_RECONNECT_GRACE_SECONDS', 'ten'],
    ['TTEOK_RECONNECT_GRACE_SECONDS', '601'],
    ['TTEOK_PLAYLIST_MAX_AGE_SECONDS', '-5'],
    ['TTEOK_DELETE_DELAY_SECONDS', 'NaN'],
    ['TTEOK_SHUTDOWN_TIMEOUT_SECONDS', 'Infinity'],
    ['TTEOK_PUBLISHER_IDLE_SECONDS', '0'],
    ['TTEOK_PUBLISHER_IDLE_SECONDS', 'soon'],
    ['TTEOK_TAKEOVER_SILENCE_SECONDS', '0.1'],
    ['TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS', '0'],
    ['TTEOK_RTMP_MAX_MESSAGE_BYTES', '16777216'],
    ['TTEOK_RTMP_MAX_MESSAGE_BYTES', '1024'],
    ['TTEOK_RTMP_MAX_CONNECTIONS', '0'],
    ['TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS', 'ten'],
    ['TTEOK_RTMP_KEEPALIVE_SECONDS', '0'],
    ['TTEOK_RTMPS_PORT', 'https'],
    ['TTEOK_RTMPS_RELOAD_SECONDS', '0'],
    ['TTEOK_RTMPS_HANDSHAKE_TIMEOUT_SECONDS', '0'],
    ['TTEOK_RTMPS_HANDSHAKE_TIMEOUT_SECONDS', '61'],
  ];
  for (const [name, raw] of bad) {
    const message = refused({ TTEOK_STORAGE: 'local', [name]: raw });
    t.match(message, new RegExp(`^${name} must be`), `${name}="${raw}" is refused, naming the variable`);
    t.match(message, raw, 'and quoting the value');
  }
});

t.test('RTMPS needs its certificate and key files', async (t) => {
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_RTMPS_PORT: '443' }), /^TTEOK_RTMPS_CERT_FILE and TTEOK_RTMPS_KEY_FILE are required/);
  const config = loadIngestConfig({
    TTEOK_STORAGE: 'local',
    TTEOK_RTMP_HOST: '10.0.0.1',
    TTEOK_RTMPS_PORT: '443',
    TTEOK_RTMPS_CERT_FILE: '/tls/tls.crt',
    TTEOK_RTMPS_KEY_FILE: '/tls/tls.key',
  });
  t.same(
    config.rtmps,
    { host: '10.0.0.1', port: 443, certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', reloadMs: 10_000, handshakeTimeoutMs: 5000 },
    'listens where RTMP does unless TTEOK_RTMPS_HOST says otherwise',
  );
});

t.test('a bad bool names the variable', async (t) => {
  for (const raw of ['maybe', '2', 'enabled']) {
    const message = refused({ TTEOK_STORAGE: 'local', TTEOK_S3_FORCE_PATH_STYLE: raw });
    t.match(message, /^TTEOK_S3_FORCE_PATH_STYLE must be true or false/, `"${raw}"`);
  }
});

t.test('a blank integer is not silently zero', async (t) => {
  // A variable set to spaces (a templating slip) must not become port 0, which
  // would make the ingest listen on a random port: either the default applies
  // or the value is refused.
  for (const name of ['TTEOK_RTMP_PORT', 'TTEOK_HTTP_PORT']) {
    let outcome: string;
    try {
      const config = loadIngestConfig({ TTEOK_STORAGE: 'local', [name]: ' ' });
      outcome = String(name === 'TTEOK_RTMP_PORT' ? config.rtmpPort : config.httpPort);
    } catch (error) {
      outcome = error instanceof ConfigError && error.message.startsWith(name) ? 'ConfigError' : `other error: ${String(error)}`;
    }
    t.ok(outcome === 'ConfigError' || outcome === (name === 'TTEOK_RTMP_PORT' ? '1935' : '9935'), `${name}=" " gives ${outcome}`);
  }
});

t.test('S3 storage without a bucket, and unknown choices, are refused', async (t) => {
  t.match(refused({}), /^TTEOK_S3_BUCKET is required/, 'S3 is the default storage, so the bucket is required');
  t.match(refused({ TTEOK_STORAGE: 's3' }), /TTEOK_S3_BUCKET/);
  t.match(refused({ TTEOK_STORAGE: 's3', TTEOK_S3_BUCKET: '' }), /TTEOK_S3_BUCKET/, 'an empty bucket is no bucket');
  t.match(refused({ TTEOK_STORAGE: 'gcs', TTEOK_S3_BUCKET: 'b' }), /^TTEOK_STORAGE must be "s3" or "local", got "gcs"/);
  t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_KEY_SOURCE: 'vault' }), /^TTEOK_KEY_SOURCE must be/);
  t.equal(new ConfigError('x').name, 'ConfigError');
});

t.test('the takeover threshold must be shorter than the idle timeout', async (t) => {
  const config = loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_PUBLISHER_IDLE_SECONDS: '3', TTEOK_TAKEOVER_SILENCE_SECONDS: '1.5' });
  t.equal(config.publisherIdleMs, 3000);
  t.equal(config.takeoverSilenceMs, 1500);
  t.match(
    refused({ TTEOK_STORAGE: 'local', TTEOK_PUBLISHER_IDLE_SECONDS: '2', TTEOK_TAKEOVER_SILENCE_SECONDS: '2' }),
    /^TTEOK_TAKEOVER_SILENCE_SECONDS \(2\) must be less than TTEOK_PUBLISHER_IDLE_SECONDS \(2\)/,
  );
});

t.test('the media volume thresholds are percentages, and the backlog bound is not below the high-water mark', async (t) => {
  const config = loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_MEDIA_HIGH_WATER_PERCENT: '70', TTEOK_MEDIA_FULL_PERCENT: '90' });
  t.equal(config.mediaHighWaterPercent, 70);
  t.equal(config.mediaFullPercent, 90);
  for (const [name, raw] of [
    ['TTEOK_MEDIA_HIGH_WATER_PERCENT', '0'],
    ['TTEOK_MEDIA_HIGH_WATER_PERCENT', '101'],
    ['TTEOK_MEDIA_FULL_PERCENT', 'full'],
  ] as const) {
    t.match(refused({ TTEOK_STORAGE: 'local', [name]: raw }), new RegExp(`^${name} must be`), `${name}="${raw}" is refused`);
  }
  t.match(
    refused({ TTEOK_STORAGE: 'local', TTEOK_MEDIA_HIGH_WATER_PERCENT: '90', TTEOK_MEDIA_FULL_PERCENT: '80' }),
    /^TTEOK_MEDIA_FULL_PERCENT \(80\) must not be below TTEOK_MEDIA_HIGH_WATER_PERCENT \(90\)/,
  );
});

t.test('the media volume size takes a Kubernetes quantity, as the emptyDir sizeLimit is written', async (t) => {
  const size = (v: string) => loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_MEDIA_VOLUME_BYTES: v }).mediaVolumeBytes;
  t.equal(size('2Gi'), 2 * 2 ** 30);
  t.equal(size('500M'), 500e6);
  t.equal(size('1.5Gi'), 1.5 * 2 ** 30);
  t.equal(size('10485760'), 10485760);
  for (const raw of ['2 GB', '-1Gi', '2Gb', '100', 'lots']) {
    t.match(refused({ TTEOK_STORAGE: 'local', TTEOK_MEDIA_VOLUME_BYTES: raw }), /^TTEOK_MEDIA_VOLUME_BYTES must be a byte count/, `"${raw}" is refused`);
  }
});

t.test('LL-HLS parts: 0 turns them off, else 0.1 to 1 s', async (t) => {
  const part = (v: string) => loadIngestConfig({ TTEOK_STORAGE: 'local', TTEOK_LL_PART_SECONDS: v }).llPartSeconds;
  t.equal(part('0'), 0);
  t.equal(part('0.25'), 0.25);
  t.equal(part('1'), 1);
  for (const raw of ['0.05', '1.5', '-0.3', 'fast', '1e-1']) {
    t.match(
      refused({ TTEOK_STORAGE: 'local', TTEOK_LL_PART_SECONDS: raw }),
      /^TTEOK_LL_PART_SECONDS must be 0 \(off\) or a number of seconds from 0.1 to 1/,
      `"${raw}" is refused`,
    );
  }
});
