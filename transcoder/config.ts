// The transcoder's configuration, from environment variables (README.md,
// "Transcoder": keep the two in step).
import { envVar, readEnv, type Env, type EnvTable } from '../common/env-config.ts';
import { FFMPEG_ENV } from '../common/transcode/encoding-env.ts';

export const TRANSCODER_ENV = {
  host: envVar.string('TTEOK_TRANSCODER_HTTP_HOST', '0.0.0.0', 'listen address for the encoding API, /metrics, /healthz, /readyz'),
  port: envVar.int('TTEOK_TRANSCODER_HTTP_PORT', 9938, 0, 65535, 'port for the same'),
  maxJobs: envVar.int(
    'TTEOK_TRANSCODER_MAX_JOBS',
    2,
    1,
    256,
    'ffmpeg jobs at once; one request more is answered 503 at once (about one per core: a 1080p → 720p/480p/360p ladder takes 1.5 cores)',
  ),
  jobTimeoutSeconds: envVar.number('TTEOK_TRANSCODER_JOB_TIMEOUT_SECONDS', 30, 0.1, 600, 'a job still running after this is killed (answered 504)'),
  maxInputMiB: envVar.int('TTEOK_TRANSCODER_MAX_INPUT_MIB', 64, 1, 1024, 'largest request body (init + media segment); larger is answered 413'),
  ...FFMPEG_ENV,
} satisfies EnvTable;

export interface TranscoderConfig {
  host: string;
  port: number;
  maxJobs: number;
  jobTimeoutMs: number;
  maxInputBytes: number;
  ffmpeg: string;
}

export function loadTranscoderConfig(env: Env = process.env): TranscoderConfig {
  const v = readEnv(TRANSCODER_ENV, env);
  return {
    host: v.host,
    port: v.port,
    maxJobs: v.maxJobs,
    jobTimeoutMs: Math.round(v.jobTimeoutSeconds * 1000),
    maxInputBytes: v.maxInputMiB * 1024 * 1024,
    ffmpeg: v.ffmpeg,
  };
}
