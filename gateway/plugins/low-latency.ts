// The LL origin: live streams' LL-HLS playlists (blocking, RFC 8216bis
// §6.2.5.2), parts, and recent segments and init segments, from the ingest
// that holds the stream (holders.ts), on the CDN's paths:
//
//   GET|HEAD /origin/[_t/<token>/][<prefix>/][_private/]<namespace>/<name>/<file>
//            ?_HLS_msn=&_HLS_part=&_HLS_skip=
//
// In Kubernetes this plugin is the gateway's /origin/ and CloudFront's origin
// for `*.m3u8` (S3 the failover), `*.part.m4s`, and the failover of `*.m4s`
// and `*.mp4` (manifests/aws/cloudformation.yaml); a 404 means no ingest holds
// the stream live. In the one-machine mode the local origin (origin.ts) asks
// LowLatencyOrigin first for playlists and parts, last for segments.
//
// Private streams: the CDN's token rule (common/playback-token.ts), or the
// origin secret header (TTEOK_ORIGIN_SECRET), which CloudFront adds after its
// function has checked and removed the token. The stream's access is the
// view's: a private stream is not served under its public path, nor a public
// one under `_private/` (as in the bucket).
//
// Identical requests in flight share one upstream request (collapse.ts); the
// upstream time is bounded, and a client that goes away stops its share.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { parseBlockingQuery, type BlockingQuery, type BlockingRequest, type LowLatencyResponse } from '../../common/low-latency.ts';
import { PRIVATE_SEGMENT, STREAM_FILE_PATTERN, type MediaPathDecision, type PlaybackAccess } from '../../common/playback-token.ts';
import { THUMBNAIL_FILE } from '../../common/renditions.ts';
import type { HolderResolver } from '../low-latency/holders.ts';
import { RequestCollapser, UpstreamTimeoutError } from '../low-latency/collapse.ts';
import { errorResponses, errorSchema, textBody } from '../schemas.ts';
import { sendError } from './errors.ts';

/** The header CloudFront adds to requests for the gateway (an origin custom header). */
export const ORIGIN_SECRET_HEADER = 'x-tteok-origin-secret';

/** The query of an origin request: the blocking parameters, as strings (parseBlockingQuery decides). */
export const blockingQuerystring = {
  type: 'object',
  properties: {
    _HLS_msn: { type: 'string', maxLength: 32 },
    _HLS_part: { type: 'string', maxLength: 32 },
    _HLS_skip: { type: 'string', maxLength: 8 },
  },
  additionalProperties: false,
} as const;

const NO_STORE = 'no-store';

/** A stream's file as a path names it. */
export interface StreamFile {
  ref: StreamRef;
  access: PlaybackAccess;
  file: string;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface LowLatencyOriginOptions {
  holders: HolderResolver;
  /** The key prefix paths carry (TTEOK_S3_PREFIX behind the CDN, '' on the local origin). */
  mediaPrefix: string;
  /** The stream's access as the view knows it; undefined for a stream it does not know. */
  accessOf: (ref: StreamRef) => PlaybackAccess | undefined;
  /** The longest an upstream request may take (TTEOK_LL_UPSTREAM_TIMEOUT_MS). */
  upstreamTimeoutMs: number;
  /** Counts what each request cost (the gateway's metrics). */
  observe?: (event: 'upstream' | 'collapsed' | 'no_holder' | 'timeout' | 'unreachable') => void;
}

export class LowLatencyOrigin {
  readonly collapser: RequestCollapser;
  private readonly pattern: RegExp;

  constructor(private readonly options: LowLatencyOriginOptions) {
    this.collapser = new RequestCollapser(options.upstreamTimeoutMs);
    const prefix = options.mediaPrefix.replace(/^\/+|\/+$/g, '');
    this.pattern = new RegExp(
      `^${prefix ? `${escapeRegExp(prefix)}/` : ''}(${PRIVATE_SEGMENT}/)?([a-z0-9][-a-z0-9]{0,62})/([a-z0-9][-a-z0-9.]{0,252})/(${STREAM_FILE_PATTERN})$`,
    );
  }

  /** `[<prefix>/][_private/]<namespace>/<name>/<file>` (a key: the token removed, no leading slash), or undefined. */
  streamFile(key: string): StreamFile | undefined {
    const m = this.pattern.exec(key);
    if (!m) return undefined;
    const [, isPrivate, namespace = '', name = '', file = ''] = m;
    // The thumbnail is the object store's alone.
    if (file === THUMBNAIL_FILE) return undefined;
    return { ref: { namespace, name }, access: isPrivate ? 'private' : 'public', file };
  }

  /** The holder's answer, or an error answer of the origin's own (404 no holder, 502 unreachable, 504 too slow). */
  async fetch(target: StreamFile, blocking: BlockingRequest, signal: AbortSignal): Promise<LowLatencyResponse> {
    const access = this.options.accessOf(target.ref);
    // A stream under the other access's path is not there, as in the bucket.
    if (access === undefined || access !== target.access) return errorAnswer(404, `${target.file} not found`);
    const holder = this.options.holders.holderOf(target.ref);
    const observe = this.options.observe ?? (() => undefined);
    if (!holder) {
      observe('no_holder');
      return errorAnswer(404, `no ingest holds ${streamId(target.ref)} live`);
    }
    const ask: BlockingRequest = target.file.endsWith('.m3u8') ? blocking : {};
    const key = [holder.id, streamId(target.ref), target.file, ask.msn ?? '', ask.part ?? '', ask.skip ?? ''].join('\n');
    observe(this.collapser.has(key) ? 'collapsed' : 'upstream');
    try {
      return await this.collapser.run(key, (upstream) => holder.source.serve({ ref: target.ref, file: target.file, blocking: ask }, upstream), signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof UpstreamTimeoutError) {
        observe('timeout');
        return errorAnswer(504, error.message);
      }
      observe('unreachable');
      return errorAnswer(502, `the ingest holding ${streamId(target.ref)} could not be reached`);
    }
  }

  /**
   * Serves `key` from its holder. Returns false, having sent nothing, when
   * the holder does not have it (404: not live here, or not an LL file), so
   * the caller may look elsewhere; true once the reply is sent.
   */
  async serve(request: FastifyRequest, reply: FastifyReply, key: string, blocking: BlockingRequest, orElse: 'fallback' | 'answer'): Promise<boolean> {
    const target = this.streamFile(key);
    if (!target) {
      if (orElse === 'fallback') return false;
      sendError(reply.header('cache-control', NO_STORE), 404, `${key} not found`);
      return true;
    }
    // The client going away (the socket closes before the answer) ends its share of the upstream request.
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client went away'));
    };
    reply.raw.once('close', onClose);
    let answer: LowLatencyResponse;
    try {
      answer = await this.fetch(target, blocking, gone.signal);
    } catch (error) {
      if (!gone.signal.aborted) throw error;
      // Nobody to answer: Fastify is told the response is dealt with.
      reply.hijack();
      return true;
    } finally {
      reply.raw.off('close', onClose);
    }
    if (answer.status === 404 && orElse === 'fallback') return false;
    sendAnswer(request, reply, answer);
    return true;
  }
}

function errorAnswer(status: number, message: string): LowLatencyResponse {
  return {
    status,
    contentType: 'application/json; charset=utf-8',
    cacheControl: NO_STORE,
    body: new TextEncoder().encode(JSON.stringify({ message })),
  };
}

/** The holder's error message when its body says one. */
function messageOf(answer: LowLatencyResponse): string {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(answer.body)) as { message?: unknown; error?: unknown };
    const text = parsed.message ?? parsed.error;
    if (typeof text === 'string' && text.length <= 500) return text;
  } catch {
    // not JSON: the status says it
  }
  return `the holder answered ${answer.status}`;
}

function sendAnswer(request: FastifyRequest, reply: FastifyReply, answer: LowLatencyResponse): void {
  if (answer.status !== 200) {
    // Errors are never cached (a 404 now may be a part a moment later).
    sendError(reply.header('cache-control', NO_STORE), answer.status >= 400 && answer.status < 600 ? answer.status : 502, messageOf(answer));
    return;
  }
  reply
    .code(200)
    .header('content-type', answer.contentType)
    .header('cache-control', answer.cacheControl)
    .header('x-content-type-options', 'nosniff')
    .header('content-length', String(answer.body.length));
  if (request.method === 'HEAD') reply.send();
  else reply.send(Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.length));
}

/** The blocking query, or a 400 sent at once (RFC 8216bis: bad values are the client's error, not a wait). */
export function blockingOr400(query: BlockingQuery, reply: FastifyReply): BlockingRequest | undefined {
  const parsed = parseBlockingQuery(query);
  if ('error' in parsed) {
    sendError(reply.header('cache-control', NO_STORE), 400, parsed.error);
    return undefined;
  }
  return parsed;
}

/** Errors of the origin's routes (schema violations too) are never cached by the CDN: a 404 now may be a part a moment later. */
export function noStoreErrors(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode >= 400) reply.header('cache-control', NO_STORE);
    return payload;
  });
}

/** Whether a request carries the origin secret (constant time: SHA-256 of both, then timingSafeEqual). */
export function originSecretCheck(secret: string | undefined): (header: string | string[] | undefined) => boolean {
  if (!secret) return () => false;
  const expected = createHash('sha256').update(secret, 'utf8').digest();
  return (header) => typeof header === 'string' && timingSafeEqual(createHash('sha256').update(header, 'utf8').digest(), expected);
}

export interface LowLatencyPluginOptions {
  origin: LowLatencyOrigin;
  /** The CDN's playback-token rule for a path (`/…`). */
  authorize: (uri: string) => MediaPathDecision;
  /** TTEOK_ORIGIN_SECRET: a request with it in ORIGIN_SECRET_HEADER may reach `_private/` without a token (the CDN checked it). */
  originSecret: string | undefined;
}

interface Params {
  '*': string;
}

/** The LL origin as the gateway's /origin/ when there is no local directory (Kubernetes). */
const lowLatency: FastifyPluginAsync<LowLatencyPluginOptions> = async (app, options) => {
  const fromCdn = originSecretCheck(options.originSecret);
  noStoreErrors(app);
  app.route<{ Params: Params; Querystring: BlockingQuery }>({
    method: ['GET', 'HEAD'],
    url: '/*',
    exposeHeadRoute: false,
    schema: {
      // Media for the CDN: not part of the API.
      hide: true,
      params: {
        type: 'object',
        required: ['*'],
        properties: { '*': { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_./-]{0,599}$', maxLength: 600 } },
        additionalProperties: false,
      },
      querystring: blockingQuerystring,
      response: { 200: textBody, 403: errorSchema, 502: errorSchema, 503: errorSchema, 504: errorSchema, ...errorResponses },
    },
    handler: async (request, reply) => {
      const path = `/${request.params['*']}`;
      const decision: MediaPathDecision =
        fromCdn(request.headers[ORIGIN_SECRET_HEADER]) && !path.startsWith('/_t/') ? { allow: true, uri: path } : options.authorize(path);
      if (!decision.allow) return sendError(reply.header('cache-control', NO_STORE), 403, decision.reason);
      const blocking = blockingOr400(request.query, reply);
      if (!blocking) return reply;
      await options.origin.serve(request, reply, decision.uri.slice(1), blocking, 'answer');
      return reply;
    },
  });
};

export default lowLatency;
