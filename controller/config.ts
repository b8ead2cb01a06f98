// The controller's configuration, from environment variables. README.md's
// "Controller" table lists every one with its default; keep the two in step.
import { hostname } from 'node:os';
import { ConfigError, envBool, envInt, envList, envNumber, envOptional, envString, type Env } from '../common/env-config.ts';
import { podNamespace } from '../common/kube/client.ts';

/** What every claim Lease's name starts with (common/kube/contract.ts claimLeaseName). */
const CLAIM_LEASE_PREFIX = 'claim.';
import { parseCidr } from './webhook-address-policy.ts';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from './webhook-events.ts';
import { webhookUrlProblem } from './webhook-url.ts';

export interface ControllerConfig {
  podName: string;
  podNamespace: string;
  /** Only LiveStreams in this namespace; every namespace when undefined. */
  watchNamespace: string | undefined;
  httpHost: string;
  httpPort: number;
  workers: number;
  ingest: {
    namespace: string;
    /** Empty: capacity is not managed. */
    statefulSet: string;
    streamsPerPod: number;
    minReplicas: number;
    maxReplicas: number;
    scaleDownDelayMs: number;
    publicUrl: string | undefined;
  };
  playbackBaseUrl: string | undefined;
  claimLeaseSeconds: number;
  /** Empty bucket: stored media is not deleted by the controller. */
  s3: { bucket: string; prefix: string; region: string; endpoint?: string; forcePathStyle: boolean; requestTimeoutMs: number };
  leaderElection: {
    enabled: boolean;
    leaseName: string;
    namespace: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
  };
  informerIdleRelistMs: number;
  /** How often everything is reconciled even with no event (a safety net; 0 = never). */
  resyncMs: number;
  webhooks: WebhookConfig;
}

export interface WebhookConfig {
  /** The global webhook every LiveStream's events go to, besides its own spec.webhooks. */
  global: { url: string; secret: string; events: WebhookEventType[] } | undefined;
  timeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** An event not acknowledged this long after it happened is given up. */
  maxAgeMs: number;
  /** Events a LiveStream's status holds at most; the oldest is dropped beyond. */
  maxPending: number;
  /** Deliveries in flight at once, across streams. */
  concurrency: number;
  /** spec.webhooks URLs must start with one of these (normalized, each ending in "/"); undefined: any URL. */
  allowedUrlPrefixes: string[] | undefined;
  /** Where spec.webhooks may connect, besides the built-in blocked ranges (webhook-address-policy.ts). */
  addressPolicy: { allowedCidrs: string[]; blockedCidrs: string[] };
}

function cidrList(env: Env, name: string): string[] {
  return envList(env, name, []).map((c) => {
    if (!parseCidr(c)) throw new ConfigError(`${name}: "${c}" is not an address range (e.g. 10.20.0.0/16, fd00:1::/64 or one address)`);
    return c;
  });
}

/** Signing keys shorter than this are refused: HMAC with a guessable key proves nothing. */
export const MIN_WEBHOOK_SECRET_LENGTH = 16;

function loadWebhookConfig(env: Env): WebhookConfig {
  const url = envOptional(env, 'TTEOK_WEBHOOK_URL');
  const secret = envOptional(env, 'TTEOK_WEBHOOK_SECRET');
  let global: WebhookConfig['global'];
  if (url) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) throw new ConfigError(`TTEOK_WEBHOOK_URL must be an http(s) URL, got "${url}"`);
    const problem = webhookUrlProblem(url);
    if (problem) throw new ConfigError(`TTEOK_WEBHOOK_URL "${url}" is refused: ${problem}`);
    if (!secret || secret.length < MIN_WEBHOOK_SECRET_LENGTH) throw new ConfigError(`TTEOK_WEBHOOK_SECRET must be set to a signing key of at least ${MIN_WEBHOOK_SECRET_LENGTH} characters when TTEOK_WEBHOOK_URL is set`);
    const events = envList(env, 'TTEOK_WEBHOOK_EVENTS', [...WEBHOOK_EVENT_TYPES]);
    for (const e of events) {
      if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e)) throw new ConfigError(`TTEOK_WEBHOOK_EVENTS: unknown event "${e}" (known: ${WEBHOOK_EVENT_TYPES.join(', ')})`);
    }
    global = { url, secret, events: events as WebhookEventType[] };
  }
  const prefixes = envList(env, 'TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES', []);
  const allowedUrlPrefixes = prefixes.map((p) => {
    let href: string | undefined;
    try {
      const u = new URL(p);
      if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href;
    } catch {
      href = undefined;
    }
    // A prefix without a path boundary would let https://api.example.com.evil.net through.
    if (!href || !href.endsWith('/')) throw new ConfigError(`TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "${p}" must be an http(s) URL ending in "/", e.g. https://api.example.com/`);
    const problem = webhookUrlProblem(p);
    if (problem) throw new ConfigError(`TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "${p}" is refused: ${problem}`);
    return href;
  });
  const retryInitialMs = envNumber(env, 'TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS', 5, 0.01, 3600) * 1000;
  const retryMaxMs = envNumber(env, 'TTEOK_WEBHOOK_RETRY_MAX_SECONDS', 600, 0.01, 86_400) * 1000;
  if (retryMaxMs < retryInitialMs) throw new ConfigError('TTEOK_WEBHOOK_RETRY_MAX_SECONDS must be at least TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS');
  return {
    global,
    timeoutMs: envNumber(env, 'TTEOK_WEBHOOK_TIMEOUT_SECONDS', 10, 0.1, 300) * 1000,
    retryInitialMs,
    retryMaxMs,
    maxAgeMs: envNumber(env, 'TTEOK_WEBHOOK_MAX_AGE_SECONDS', 86_400, 1, 30 * 86_400) * 1000,
    maxPending: envInt(env, 'TTEOK_WEBHOOK_MAX_PENDING', 50, 1, 1000),
    concurrency: envInt(env, 'TTEOK_WEBHOOK_CONCURRENCY', 16, 1, 1000),
    allowedUrlPrefixes: allowedUrlPrefixes.length > 0 ? allowedUrlPrefixes : undefined,
    addressPolicy: { allowedCidrs: cidrList(env, 'TTEOK_WEBHOOK_ALLOWED_CIDRS'), blockedCidrs: cidrList(env, 'TTEOK_WEBHOOK_BLOCKED_CIDRS') },
  };
}

export function loadControllerConfig(env: Env = process.env): ControllerConfig {
  const ns = podNamespace(env);
  const minReplicas = envInt(env, 'TTEOK_INGEST_MIN_REPLICAS', 1, 0, 10_000);
  const maxReplicas = envInt(env, 'TTEOK_INGEST_MAX_REPLICAS', 10, 0, 10_000);
  if (maxReplicas < minReplicas) throw new ConfigError(`TTEOK_INGEST_MAX_REPLICAS (${maxReplicas}) must be at least TTEOK_INGEST_MIN_REPLICAS (${minReplicas})`);
  const leaseDurationMs = envNumber(env, 'TTEOK_LEADER_LEASE_SECONDS', 15, 1, 3600) * 1000;
  const renewDeadlineMs = envNumber(env, 'TTEOK_LEADER_RENEW_DEADLINE_SECONDS', 10, 0.5, 3600) * 1000;
  const retryPeriodMs = envNumber(env, 'TTEOK_LEADER_RETRY_SECONDS', 2, 0.1, 600) * 1000;
  if (renewDeadlineMs >= leaseDurationMs) throw new ConfigError('TTEOK_LEADER_RENEW_DEADLINE_SECONDS must be less than TTEOK_LEADER_LEASE_SECONDS');
  if (retryPeriodMs >= renewDeadlineMs) throw new ConfigError('TTEOK_LEADER_RETRY_SECONDS must be less than TTEOK_LEADER_RENEW_DEADLINE_SECONDS');
  const leaderLease = envString(env, 'TTEOK_LEADER_ELECTION_LEASE', 'tteok-controller');
  // The chart's admission policy lets the ingest write Leases named claim.*: the leader Lease must never be one.
  if (leaderLease.startsWith(CLAIM_LEASE_PREFIX)) throw new ConfigError(`TTEOK_LEADER_ELECTION_LEASE must not start with "${CLAIM_LEASE_PREFIX}" (the ingest's claim Leases are named so), got "${leaderLease}"`);
  const publicUrl = envOptional(env, 'TTEOK_INGEST_PUBLIC_URL');
  if (publicUrl && !/^rtmps?:\/\/[^/]+/.test(publicUrl)) throw new ConfigError(`TTEOK_INGEST_PUBLIC_URL must be an rtmp:// or rtmps:// URL, got "${publicUrl}"`);
  const playbackBaseUrl = envOptional(env, 'TTEOK_PLAYBACK_BASE_URL');
  if (playbackBaseUrl && !/^https?:\/\//.test(playbackBaseUrl)) throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an http(s) URL, got "${playbackBaseUrl}"`);
  return {
    podName: envString(env, 'TTEOK_POD_NAME', hostname()),
    podNamespace: ns,
    watchNamespace: envOptional(env, 'TTEOK_WATCH_NAMESPACE'),
    httpHost: envString(env, 'TTEOK_CONTROLLER_HTTP_HOST', '0.0.0.0'),
    httpPort: envInt(env, 'TTEOK_CONTROLLER_HTTP_PORT', 9937, 0, 65535),
    workers: envInt(env, 'TTEOK_CONTROLLER_WORKERS', 4, 1, 64),
    ingest: {
      namespace: envString(env, 'TTEOK_INGEST_NAMESPACE', ns),
      statefulSet: envString(env, 'TTEOK_INGEST_STATEFULSET', ''),
      streamsPerPod: envInt(env, 'TTEOK_STREAMS_PER_INGEST', 10, 1, 100_000),
      minReplicas,
      maxReplicas,
      scaleDownDelayMs: envNumber(env, 'TTEOK_SCALE_DOWN_DELAY_SECONDS', 300, 0, 86_400) * 1000,
      publicUrl: publicUrl?.replace(/\/+$/, ''),
    },
    playbackBaseUrl: playbackBaseUrl?.replace(/\/+$/, ''),
    claimLeaseSeconds: envInt(env, 'TTEOK_CLAIM_LEASE_SECONDS', 15, 2, 3600),
    s3: {
      bucket: envString(env, 'TTEOK_S3_BUCKET', ''),
      prefix: envString(env, 'TTEOK_S3_PREFIX', ''),
      region: envString(env, 'TTEOK_S3_REGION', envString(env, 'AWS_REGION', 'us-east-1')),
      endpoint: envOptional(env, 'TTEOK_S3_ENDPOINT'),
      forcePathStyle: envBool(env, 'TTEOK_S3_FORCE_PATH_STYLE', false),
      requestTimeoutMs: envInt(env, 'TTEOK_S3_REQUEST_TIMEOUT_MS', 5000, 100),
    },
    leaderElection: {
      enabled: envBool(env, 'TTEOK_LEADER_ELECTION', true),
      leaseName: leaderLease,
      namespace: envString(env, 'TTEOK_LEADER_ELECTION_NAMESPACE', ns),
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    },
    informerIdleRelistMs: envNumber(env, 'TTEOK_KUBE_RELIST_IDLE_SECONDS', 300, 1, 86_400) * 1000,
    resyncMs: envNumber(env, 'TTEOK_CONTROLLER_RESYNC_SECONDS', 600, 0, 86_400) * 1000,
    webhooks: loadWebhookConfig(env),
  };
}
