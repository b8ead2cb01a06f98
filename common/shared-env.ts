// Configuration rows more than one role reads (see envVar in env-config.ts):
// the log level, the S3 store (ingest, controller) and the Kubernetes identity
// and informers (ingest with TTEOK_KEY_SOURCE=kubernetes, gateway with
// TTEOK_VIEW=kubernetes, controller). Declared once here so every role parses
// and documents them alike.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError, envList, envString, envVar, type Env } from './env-config.ts';
import { MAX_TRANSCODED_RENDITIONS, RENDITION_PRESET_NAMES, renditionProblems } from './renditions.ts';

export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export const LOG_ENV = {
  logLevel: envVar.choice('TTEOK_LOG_LEVEL', 'info', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'log level'),
};

/** The rows every role reads, whatever its configuration. */
export const PROCESS_ENV = {
  ...LOG_ENV,
  envFile: envVar.optional('TTEOK_ENV_FILE', 'a file of NAME=value lines loaded before anything else (as --env-file); the environment wins over it'),
};

export const S3_ENV = {
  bucket: envVar.string('TTEOK_S3_BUCKET', '', 'bucket (required with TTEOK_STORAGE=s3)'),
  prefix: envVar.string('TTEOK_S3_PREFIX', '', 'key prefix for everything tteok stores'),
  region: envVar.string('TTEOK_S3_REGION', (env) => envString(env, 'AWS_REGION', 'us-east-1'), 'region', { defaultText: '$AWS_REGION, else us-east-1' }),
  endpoint: envVar.optional('TTEOK_S3_ENDPOINT', 'endpoint of an S3-compatible server (SeaweedFS, MinIO, R2, …)', { defaultText: '(AWS)' }),
  forcePathStyle: envVar.bool('TTEOK_S3_FORCE_PATH_STYLE', false, 'path-style addressing (most S3-compatible servers need true)'),
  requestTimeoutMs: envVar.int('TTEOK_S3_REQUEST_TIMEOUT_MS', 5000, 100, Infinity, 'per-request timeout; a timed-out request is retried'),
};

/** The namespace this process runs in: $TTEOK_POD_NAMESPACE, the service account's, else "default". */
export function podNamespace(env: Env = process.env): string {
  const fromEnv = env.TTEOK_POD_NAMESPACE;
  if (fromEnv) return fromEnv;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

export const POD_ENV = {
  podName: envVar.string('TTEOK_POD_NAME', () => hostname(), "this pod's name (set it from metadata.name)", { defaultText: 'the host name' }),
  podNamespace: envVar.custom('TTEOK_POD_NAMESPACE', podNamespace, 'the namespace this process runs in', {
    defaultText: "the service account's namespace, else default",
    rangeText: '',
  }),
};

/** Every role that reads LiveStreams: the ingest (TTEOK_KEY_SOURCE=kubernetes), the gateway (TTEOK_VIEW=kubernetes) and the controller. */
export const KUBE_VIEW_ENV = {
  watchNamespace: envVar.optional('TTEOK_WATCH_NAMESPACE', 'only streams in this namespace', { defaultText: '(all namespaces)' }),
  relistIdleSeconds: envVar.number('TTEOK_KUBE_RELIST_IDLE_SECONDS', 300, 1, 86_400, 'an informer whose watch delivered nothing for this long re-lists'),
};

/** Stream claims on Leases: the ingest with TTEOK_KEY_SOURCE=kubernetes, and the controller that reads them. */
export const CLAIM_ENV = {
  claimLeaseSeconds: envVar.int('TTEOK_CLAIM_LEASE_SECONDS', 15, 2, 3600, "how long a stream claim outlives its ingest pod's last renewal"),
};

/**
 * The renditions of LiveStreams that name none (no `spec.renditions`): the
 * ingest has them encoded, the controller reports them in status.renditions.
 * The chart sets both from one value.
 */
export const RENDITIONS_ENV = {
  defaultRenditions: envVar.custom(
    'TTEOK_DEFAULT_RENDITIONS',
    (env) => {
      const list = envList(env, 'TTEOK_DEFAULT_RENDITIONS', []);
      const problems = renditionProblems(list, 'TTEOK_DEFAULT_RENDITIONS');
      if (problems.length > 0) throw new ConfigError(problems.join('; '));
      return list;
    },
    'renditions the transcoder encodes for LiveStreams without spec.renditions (spec.renditions: [] means none)',
    { defaultText: '(empty: none)', rangeText: `comma-separated, at most ${MAX_TRANSCODED_RENDITIONS} of ${RENDITION_PRESET_NAMES.join(' ')}` },
  ),
};

/** Names tteok's own tooling (tests, benchmarks, make) sets, which no role reads: never reported as unknown. */
export const TOOLING_NAMES = ['TTEOK_TEST_VERBOSE', 'TTEOK_TOOLS_CACHE', 'TTEOK_CHROMIUM', 'TTEOK_FUZZ_SEED', 'TTEOK_FUZZ_CASES'];
