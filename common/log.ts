// Structured JSON logs for every part of tteok. One pino logger per process,
// children per component. Stream keys are secrets: callers never pass them in,
// and the redaction list below is a second line of defence for fields that
// could carry one by mistake.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, level = process.env.TTEOK_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['key', 'streamKey', '*.key', '*.streamKey', 'streamPath', '*.streamPath'], censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  });
}
