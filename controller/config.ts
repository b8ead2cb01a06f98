// The controller's configuration, from environment variables. README.md's
// "Controller" table lists every one with its default; keep the two in step.
import { ConfigError, envVar, readEnv, type Env, type EnvTable, type EnvValues } from '../common/env-config.ts';
import { CLAIM_ENV, KUBE_VIEW_ENV, podNamespace, POD_ENV, RENDITIONS_ENV, S3_ENV } from '../common/shared-env.ts';
import { CLAIM_LEASE_PREFIX } from '../common/kube/contract.ts';
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
  /** Renditions of LiveStreams without spec.renditions, as the ingest applies them (reported in status.renditions). */
  defaultRenditions: string[];
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

function cidrList(name: string, list: string[]): string[] {
  return list.map((c) => {
    if (!parseCidr(c)) throw new ConfigError(`${name}: "${c}" is not an address range (e.g. 10.20.0.0/16, fd00:1::/64 or one address)`);
    return c;
  });
}

/** Signing keys shorter than this are refused: HMAC with a guessable key proves nothing. */
export const MIN_WEBHOOK_SECRET_LENGTH = 16;

/**
 * Every variable the controller reads, one row each: `tteok controller --help`
 * prints these rows and loadControllerConfig reads through them. To add a
 * setting, add a row here (and to README's Controller table) and use it below.
 */
export const CONTROLLER_ENV = {
  ...POD_ENV,
  watchNamespace: envVar.optional('TTEOK_WATCH_NAMESPACE', 'only LiveStreams (and key Secrets) in this namespace', { defaultText: '(all namespaces)' }),
  httpHost: envVar.string('TTEOK_CONTROLLER_HTTP_HOST', '0.0.0.0', 'listen address for /metrics, /healthz, /readyz'),
  httpPort: envVar.int('TTEOK_CONTROLLER_HTTP_PORT', 9937, 0, 65535, 'port for /metrics, /healthz, /readyz'),
  workers: envVar.int('TTEOK_CONTROLLER_WORKERS', 4, 1, 64, 'LiveStreams reconciled at once'),
  resyncSeconds: envVar.number('TTEOK_CONTROLLER_RESYNC_SECONDS', 600, 0, 86_400, 'every LiveStream is reconciled this often even without a change (0: never)'),
  ingestNamespace: envVar.string('TTEOK_INGEST_NAMESPACE', (env) => podNamespace(env), "the ingest's namespace: its StatefulSet and claim Leases", {
    defaultText: '$TTEOK_POD_NAMESPACE',
  }),
  ingestStatefulSet: envVar.string('TTEOK_INGEST_STATEFULSET', '', 'the ingest StatefulSet whose replicas the controller sets', {
    defaultText: '(empty: capacity not managed)',
  }),
  streamsPerIngest: envVar.int('TTEOK_STREAMS_PER_INGEST', 10, 1, 100_000, 'enabled LiveStreams one ingest pod is sized for'),
  minReplicas: envVar.int('TTEOK_INGEST_MIN_REPLICAS', 1, 0, 10_000, 'fewest ingest pods'),
  maxReplicas: envVar.int('TTEOK_INGEST_MAX_REPLICAS', 10, 0, 10_000, 'most ingest pods'),
  scaleDownDelaySeconds: envVar.number('TTEOK_SCALE_DOWN_DELAY_SECONDS', 300, 0, 86_400, 'lower demand must last this long before the ingest is scaled down'),
  ingestPublicUrl: envVar.optional('TTEOK_INGEST_PUBLIC_URL', 'the rtmp(s):// URL publishers use, without the key; reported as status.ingestUrl', {
    defaultText: '(unset: not reported)',
  }),
  playbackBaseUrl: envVar.optional('TTEOK_PLAYBACK_BASE_URL', 'the CDN URL in front of the bucket; reported in status.playbackUrl', {
    defaultText: '(unset: not reported)',
  }),
  ...RENDITIONS_ENV,
  ...CLAIM_ENV,
  ...S3_ENV,
  bucket: envVar.string('TTEOK_S3_BUCKET', '', 'bucket whose media is deleted when a LiveStream is deleted', { defaultText: '(empty: media not deleted)' }),
  leaderElection: envVar.bool('TTEOK_LEADER_ELECTION', true, 'elect one active replica; false runs this replica as the only one'),
  leaseName: envVar.string('TTEOK_LEADER_ELECTION_LEASE', 'tteok-controller', 'name of the leader-election Lease'),
  leaseNamespace: envVar.string('TTEOK_LEADER_ELECTION_NAMESPACE', (env) => podNamespace(env), 'namespace of that Lease', {
    defaultText: '$TTEOK_POD_NAMESPACE',
  }),
  leaderLeaseSeconds: envVar.number('TTEOK_LEADER_LEASE_SECONDS', 15, 1, 3600, "a standby takes over this long after the leader's last renewal"),
  leaderRenewDeadlineSeconds: envVar.number('TTEOK_LEADER_RENEW_DEADLINE_SECONDS', 10, 0.5, 3600, 'a leader that could not renew this long stops acting'),
  leaderRetrySeconds: envVar.number('TTEOK_LEADER_RETRY_SECONDS', 2, 0.1, 600, 'how often the Lease is renewed or tried'),
  relistIdleSeconds: KUBE_VIEW_ENV.relistIdleSeconds,
  // The webhooks' rows (read by loadWebhookConfig).
  webhookUrl: envVar.optional('TTEOK_WEBHOOK_URL', "the global webhook: every LiveStream's events are POSTed here too", { defaultText: '(unset: none)' }),
  webhookSecret: envVar.optional('TTEOK_WEBHOOK_SECRET', `the global webhook's signing key (≥ ${MIN_WEBHOOK_SECRET_LENGTH} characters; required with the URL)`),
  webhookEvents: envVar.list('TTEOK_WEBHOOK_EVENTS', [...WEBHOOK_EVENT_TYPES], 'the events the global webhook gets'),
  webhookTimeoutSeconds: envVar.number('TTEOK_WEBHOOK_TIMEOUT_SECONDS', 10, 0.1, 300, 'how long one delivery attempt may take'),
  webhookRetryInitialSeconds: envVar.number(
    'TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS',
    5,
    0.01,
    3600,
    'first retry delay; it doubles (with jitter) on each failure',
  ),
  webhookRetryMaxSeconds: envVar.number('TTEOK_WEBHOOK_RETRY_MAX_SECONDS', 600, 0.01, 86_400, 'longest retry delay'),
  webhookMaxAgeSeconds: envVar.number(
    'TTEOK_WEBHOOK_MAX_AGE_SECONDS',
    86_400,
    1,
    30 * 86_400,
    'an event not acknowledged this long after it happened is given up',
  ),
  webhookMaxPending: envVar.int('TTEOK_WEBHOOK_MAX_PENDING', 50, 1, 1000, "undelivered events one LiveStream's status holds at most"),
  webhookConcurrency: envVar.int('TTEOK_WEBHOOK_CONCURRENCY', 16, 1, 1000, 'delivery attempts in flight at once, across streams'),
  webhookAllowedCidrs: envVar.list(
    'TTEOK_WEBHOOK_ALLOWED_CIDRS',
    [],
    'address ranges a spec.webhooks URL may connect to although the address policy refuses them',
    { defaultText: '(empty)' },
  ),
  webhookBlockedCidrs: envVar.list(
    'TTEOK_WEBHOOK_BLOCKED_CIDRS',
    [],
    "more ranges the address policy refuses (the cluster's pod and service ranges when not private)",
    { defaultText: '(empty)' },
  ),
  webhookAllowedUrlPrefixes: envVar.list('TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES', [], 'http(s) URL prefixes ending in "/" a spec.webhooks URL must start with', {
    defaultText: '(empty: any URL)',
  }),
} satisfies EnvTable;

type ControllerEnv = EnvValues<typeof CONTROLLER_ENV>;

function loadWebhookConfig(e: ControllerEnv): WebhookConfig {
  const url = e.webhookUrl;
  const secret = e.webhookSecret;
  let global: WebhookConfig['global'];
  if (url) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:'))
      throw new ConfigError(`TTEOK_WEBHOOK_URL must be an http(s) URL, got "${url}"`);
    const problem = webhookUrlProblem(url);
    if (problem) throw new ConfigError(`TTEOK_WEBHOOK_URL "${url}" is refused: ${problem}`);
    if (!secret || secret.length < MIN_WEBHOOK_SECRET_LENGTH)
      throw new ConfigError(
        `TTEOK_WEBHOOK_SECRET must be set to a signing key of at least ${MIN_WEBHOOK_SECRET_LENGTH} characters when TTEOK_WEBHOOK_URL is set`,
      );
    const events = e.webhookEvents;
    for (const event of events) {
      if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(event))
        throw new ConfigError(`TTEOK_WEBHOOK_EVENTS: unknown event "${event}" (known: ${WEBHOOK_EVENT_TYPES.join(', ')})`);
    }
    global = { url, secret, events: events as WebhookEventType[] };
  }
  const prefixes = e.webhookAllowedUrlPrefixes;
  const allowedUrlPrefixes = prefixes.map((p) => {
    let href: string | undefined;
    try {
      const u = new URL(p);
      if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href;
    } catch {
      href = undefined;
    }
    // A prefix without a path boundary would let https://api.example.com.evil.net through.
    if (!href || !href.endsWith('/'))
      throw new ConfigError(`TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "${p}" must be an http(s) URL ending in "/", e.g. https://api.example.com/`);
    const problem = webhookUrlProblem(p);
    if (problem) throw new ConfigError(`TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES: "${p}" is refused: ${problem}`);
    return href;
  });
  const retryInitialMs = e.webhookRetryInitialSeconds * 1000;
  const retryMaxMs = e.webhookRetryMaxSeconds * 1000;
  if (retryMaxMs < retryInitialMs) throw new ConfigError('TTEOK_WEBHOOK_RETRY_MAX_SECONDS must be at least TTEOK_WEBHOOK_RETRY_INITIAL_SECONDS');
  return {
    global,
    timeoutMs: e.webhookTimeoutSeconds * 1000,
    retryInitialMs,
    retryMaxMs,
    maxAgeMs: e.webhookMaxAgeSeconds * 1000,
    maxPending: e.webhookMaxPending,
    concurrency: e.webhookConcurrency,
    allowedUrlPrefixes: allowedUrlPrefixes.length > 0 ? allowedUrlPrefixes : undefined,
    addressPolicy: {
      allowedCidrs: cidrList('TTEOK_WEBHOOK_ALLOWED_CIDRS', e.webhookAllowedCidrs),
      blockedCidrs: cidrList('TTEOK_WEBHOOK_BLOCKED_CIDRS', e.webhookBlockedCidrs),
    },
  };
}

export function loadControllerConfig(env: Env = process.env): ControllerConfig {
  const e = readEnv(CONTROLLER_ENV, env);
  if (e.maxReplicas < e.minReplicas)
    throw new ConfigError(`TTEOK_INGEST_MAX_REPLICAS (${e.maxReplicas}) must be at least TTEOK_INGEST_MIN_REPLICAS (${e.minReplicas})`);
  const leaseDurationMs = e.leaderLeaseSeconds * 1000;
  const renewDeadlineMs = e.leaderRenewDeadlineSeconds * 1000;
  const retryPeriodMs = e.leaderRetrySeconds * 1000;
  if (renewDeadlineMs >= leaseDurationMs) throw new ConfigError('TTEOK_LEADER_RENEW_DEADLINE_SECONDS must be less than TTEOK_LEADER_LEASE_SECONDS');
  if (retryPeriodMs >= renewDeadlineMs) throw new ConfigError('TTEOK_LEADER_RETRY_SECONDS must be less than TTEOK_LEADER_RENEW_DEADLINE_SECONDS');
  // The chart's admission policy lets the ingest write Leases named claim.*: the leader Lease must never be one.
  if (e.leaseName.startsWith(CLAIM_LEASE_PREFIX))
    throw new ConfigError(
      `TTEOK_LEADER_ELECTION_LEASE must not start with "${CLAIM_LEASE_PREFIX}" (the ingest's claim Leases are named so), got "${e.leaseName}"`,
    );
  const publicUrl = e.ingestPublicUrl;
  if (publicUrl && !/^rtmps?:\/\/[^/]+/.test(publicUrl))
    throw new ConfigError(`TTEOK_INGEST_PUBLIC_URL must be an rtmp:// or rtmps:// URL, got "${publicUrl}"`);
  const playbackBaseUrl = e.playbackBaseUrl;
  if (playbackBaseUrl && !/^https?:\/\//.test(playbackBaseUrl))
    throw new ConfigError(`TTEOK_PLAYBACK_BASE_URL must be an http(s) URL, got "${playbackBaseUrl}"`);
  return {
    podName: e.podName,
    podNamespace: e.podNamespace,
    watchNamespace: e.watchNamespace,
    httpHost: e.httpHost,
    httpPort: e.httpPort,
    workers: e.workers,
    ingest: {
      namespace: e.ingestNamespace,
      statefulSet: e.ingestStatefulSet,
      streamsPerPod: e.streamsPerIngest,
      minReplicas: e.minReplicas,
      maxReplicas: e.maxReplicas,
      scaleDownDelayMs: e.scaleDownDelaySeconds * 1000,
      publicUrl: publicUrl?.replace(/\/+$/, ''),
    },
    playbackBaseUrl: playbackBaseUrl?.replace(/\/+$/, ''),
    defaultRenditions: e.defaultRenditions,
    claimLeaseSeconds: e.claimLeaseSeconds,
    s3: { bucket: e.bucket, prefix: e.prefix, region: e.region, endpoint: e.endpoint, forcePathStyle: e.forcePathStyle, requestTimeoutMs: e.requestTimeoutMs },
    leaderElection: {
      enabled: e.leaderElection,
      leaseName: e.leaseName,
      namespace: e.leaseNamespace,
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    },
    informerIdleRelistMs: e.relistIdleSeconds * 1000,
    resyncMs: e.resyncSeconds * 1000,
    webhooks: loadWebhookConfig(e),
  };
}
