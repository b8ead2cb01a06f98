// Structured JSON logs for every part of tteok. One pino logger per process,
// children per component. A person at a terminal (`make run`) gets the same
// lines pretty-printed in colour by pino-pretty instead; anything else (a pod,
// a pipe, a file) gets JSON. Stream keys are secrets: callers never pass them in,
// and the redaction list below is a second line of defence for fields that
// could carry one by mistake.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import { LOG_ENV } from './shared-env.ts';

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

export function createLogger(component: string, level = LOG_ENV.logLevel.read(process.env), destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino({ ...options, formatters: JSON_LEVEL }, destination);
  if (process.stdout.isTTY) return pino(options, prettyStream());
  return pino({ ...options, formatters: JSON_LEVEL });
}

/** JSON lines carry the level's name ("info"), not pino's number. */
const JSON_LEVEL = { level: (label: string) => ({ level: label }) };

/**
 * Pretty, coloured lines for a terminal. Synchronous and in this thread (not
 * a transport worker), so the last lines before process.exit are not lost.
 */
function prettyStream(): DestinationStream {
  return pretty({
    colorize: true,
    sync: true,
    destination: 1,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component',
    messageFormat: '{if component}{component}: {end}{msg}',
  });
}
