// Structured JSON logs for every part of tteok. One pino logger per process,
// children per component. Stream keys are secrets: callers never pass them in,
// and the redaction list below is a second line of defence for fields that
// could carry one by mistake.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * The field names a stream key can travel under: ours (`streamKey`, also a
 * key Secret's `data.streamKey`), and node-media-server's session fields,
 * where the RTMP publish name is the key (`streamName`, `streamPath` =
 * /<app>/<key>). Only these: a plain `key` is an object key in the store
 * (the uploader's logs name the object that failed) and must stay visible.
 */
const STREAM_KEY_FIELDS = ['streamKey', 'stream_key', 'streamName', 'streamPath'];
export const REDACTED_PATHS = STREAM_KEY_FIELDS.flatMap((field) => [field, `*.${field}`]);

export function createLogger(component: string, level = process.env.TTEOK_LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
