// The transcoder role (`tteok transcoder`): an HTTP server the ingest sends
// source segments to, answering with their renditions (and thumbnails),
// encoded by ffmpeg child processes (common/transcode/rendition-encoding.ts).
// It decodes media that publishers sent, so it is built to be hit by it:
// ffmpeg reads only its stdin and writes only its pipes (no file or network
// protocol, no environment), nothing is written to disk, a job has a time
// limit and an input bound, and ffmpeg failing or crashing answers that one
// request 422 with a sentence; the process goes on serving. It needs no
// Kubernetes API access and no credentials.
//
//   POST /v1/renditions?presets=720p,480p[&sourceHeight=1080]   body and answer: common/transcode/wire.ts
//   POST /v1/thumbnail                                          answer: image/jpeg
//   GET  /healthz, /readyz, /metrics
//
// At most TTEOK_TRANSCODER_MAX_JOBS jobs run at once; a request beyond is
// answered 503 before its body is read, so the ingest counts a missing
// segment instead of queueing behind a saturated pod.
import { STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createLogger, type Logger } from '../common/log.ts';
import { presetNamed, RENDITION_PRESET_NAMES } from '../common/renditions.ts';
import { FfmpegError } from '../common/transcode/ffmpeg-process.ts';
import { encodeRenditions, type EncodingLimits, makeThumbnail, UnusableMediaError } from '../common/transcode/rendition-encoding.ts';
import { decodeSegmentBody, encodeRenditionsBody, RENDITIONS_CONTENT_TYPE, SEGMENT_CONTENT_TYPE, WireError } from '../common/transcode/wire.ts';
import type { TranscoderConfig } from './config.ts';
import { TranscoderMetrics } from './metrics.ts';

export interface TranscoderDeps {
  log?: Logger;
  metrics?: TranscoderMetrics;
}

export interface RunningTranscoder {
  app: FastifyInstance;
  port: number;
  metrics: TranscoderMetrics;
  close(): Promise<void>;
}

type JobKind = 'renditions' | 'thumbnail';

function sendError(reply: FastifyReply, statusCode: number, message: string): FastifyReply {
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message });
}

/** The presets a request names, or a sentence saying what is wrong with them. */
function parsePresets(value: unknown): string[] | string {
  if (typeof value !== 'string' || value.trim() === '')
    return `name the presets to encode: ?presets=<comma-separated list of ${RENDITION_PRESET_NAMES.join(', ')}>`;
  const names = value.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => presetNamed(n) === undefined);
  if (unknown.length > 0)
    return `${unknown.map((n) => JSON.stringify(n)).join(', ')} ${unknown.length === 1 ? 'is not a preset' : 'are not presets'}; use ${RENDITION_PRESET_NAMES.join(', ')}`;
  return names;
}

export async function createTranscoder(config: TranscoderConfig, deps: TranscoderDeps = {}): Promise<{ app: FastifyInstance; metrics: TranscoderMetrics }> {
  const log = deps.log ?? createLogger('transcoder');
  const metrics = deps.metrics ?? new TranscoderMetrics();
  const limits: EncodingLimits = { ffmpeg: config.ffmpeg, timeoutMs: config.jobTimeoutMs, maxInputBytes: config.maxInputBytes };
  let running = 0;
  let closing = false;
  const app = Fastify({
    bodyLimit: config.maxInputBytes + 4,
    // The body of one segment arrives within this; a client that trickles it is cut off.
    requestTimeout: 30_000,
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (logger) => logger,
  });

  app.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status === 415) return sendError(reply, 415, `send the segment as ${SEGMENT_CONTENT_TYPE} (see common/transcode/wire.ts)`);
    if (status === 413) return sendError(reply, 413, `the body is larger than the limit of ${config.maxInputBytes + 4} bytes (TTEOK_TRANSCODER_MAX_INPUT_MIB)`);
    if (status >= 500) {
      request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
      return sendError(reply, status, STATUS_CODES[status] ?? 'Internal Server Error');
    }
    return sendError(reply, status, error.message);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, `Route ${request.method}:${request.url.split('?')[0]} not found`));
  // Segments only: a JSON or text body is answered 415 by Fastify, not parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(SEGMENT_CONTENT_TYPE, { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  // A slot is taken before the body is read (a full transcoder answers 503 at once) and given back when the answer is done or the client gone.
  const takeSlot = (kind: JobKind) => async (_request: FastifyRequest, reply: FastifyReply) => {
    if (running >= config.maxJobs || closing) {
      metrics.requests.inc({ kind, outcome: 'busy' });
      reply.header('retry-after', '1');
      return sendError(
        reply,
        503,
        closing
          ? 'the transcoder is shutting down'
          : `the transcoder is running its maximum of ${config.maxJobs} jobs (TTEOK_TRANSCODER_MAX_JOBS); this one is not taken`,
      );
    }
    running++;
    metrics.jobsInFlight.set(running);
    reply.raw.once('close', () => {
      running--;
      metrics.jobsInFlight.set(running);
    });
  };

  /** Runs one job for a request: the answer, or the error status and sentence it gets. */
  const job = async (kind: JobKind, request: FastifyRequest, reply: FastifyReply, work: (signal: AbortSignal) => Promise<void>) => {
    const cancel = new AbortController();
    // A client that went away (the ingest gave up) does not keep ffmpeg running.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) cancel.abort();
    });
    const started = performance.now();
    const done = (outcome: string) => {
      metrics.requests.inc({ kind, outcome });
      metrics.jobDuration.observe({ kind, outcome }, (performance.now() - started) / 1000);
    };
    try {
      await work(cancel.signal);
      done('ok');
    } catch (error) {
      if (error instanceof WireError) {
        done('refused');
        return sendError(reply, 400, error.message);
      }
      if (error instanceof UnusableMediaError) {
        done('refused');
        request.log.warn({ kind, reason: error.message }, 'job refused: unusable media');
        return sendError(reply, 422, error.message);
      }
      if (error instanceof FfmpegError && error.reason === 'timeout') {
        done('timeout');
        request.log.warn({ kind, reason: error.message }, 'job killed: time limit');
        return sendError(reply, 504, error.message);
      }
      if (error instanceof FfmpegError && error.reason === 'aborted') {
        done('cancelled');
        return reply;
      }
      done('error');
      request.log.error({ err: error, kind }, 'job failed');
      return sendError(reply, 500, error instanceof FfmpegError ? error.message : 'the job failed on the transcoder side');
    }
    return reply;
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (closing) return reply.code(503).send({ status: 'not ready', reason: 'shutting down' });
    return { status: 'ready', jobs: running, maxJobs: config.maxJobs };
  });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  app.post<{ Querystring: { presets?: string; sourceHeight?: string } }>('/v1/renditions', { onRequest: takeSlot('renditions') }, async (request, reply) => {
    const presets = parsePresets(request.query.presets);
    if (typeof presets === 'string') {
      metrics.requests.inc({ kind: 'renditions', outcome: 'refused' });
      return sendError(reply, 400, presets);
    }
    const heightText = request.query.sourceHeight;
    const sourceHeight = heightText === undefined ? undefined : Number(heightText);
    if (sourceHeight !== undefined && !(Number.isInteger(sourceHeight) && sourceHeight > 0 && sourceHeight <= 8640)) {
      metrics.requests.inc({ kind: 'renditions', outcome: 'refused' });
      return sendError(reply, 400, `sourceHeight must be a whole number of pixels from 1 to 8640, got "${heightText}"`);
    }
    return job('renditions', request, reply, async (signal) => {
      const input = decodeSegmentBody(bodyOf(request));
      const out = await encodeRenditions({ ...input, presets, sourceHeight }, limits, signal);
      await reply.type(RENDITIONS_CONTENT_TYPE).send(Buffer.from(encodeRenditionsBody(out)));
    });
  });

  app.post('/v1/thumbnail', { onRequest: takeSlot('thumbnail') }, async (request, reply) =>
    job('thumbnail', request, reply, async (signal) => {
      const jpeg = await makeThumbnail(decodeSegmentBody(bodyOf(request)), limits, signal);
      await reply.type('image/jpeg').send(Buffer.from(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength));
    }),
  );

  app.addHook('onClose', async () => {
    closing = true;
  });
  return { app, metrics };
}

function bodyOf(request: FastifyRequest): Uint8Array {
  if (!(request.body instanceof Buffer)) throw new WireError(`send the segment as ${SEGMENT_CONTENT_TYPE} (see common/transcode/wire.ts)`);
  return request.body;
}

export async function startTranscoder(config: TranscoderConfig, deps: TranscoderDeps = {}): Promise<RunningTranscoder> {
  const { app, metrics } = await createTranscoder(config, deps);
  await app.listen({ host: config.host, port: config.port });
  const port = (app.server.address() as AddressInfo).port;
  app.log.info({ host: config.host, port, maxJobs: config.maxJobs, ffmpeg: config.ffmpeg }, 'transcoder ready');
  return { app, port, metrics, close: () => app.close() };
}
