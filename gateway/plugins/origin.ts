// The local origin of the one-machine mode: the directory the ingest stores
// into (TTEOK_STORAGE=local), served the way S3 behind CloudFront serves the
// bucket: the same Content-Type and Cache-Control the ingest gives each
// object (common/object-layout.ts), HEAD and single byte ranges. Only the
// media layout's files are served (common/playback-token.ts
// STREAM_FILE_PATTERN): a stream's `index.m3u8`, its renditions' playlists
// (`<rendition>.m3u8`, rendition names only), `thumbnail.jpg`, and init
// (.mp4) and media (.m4s) segments in a run folder or a rendition's folder
// inside it, by names whose every part starts with a letter or digit, so no
// dot-file (the store's temporary files) and no `..`.
// Private streams (under `_private/`) follow the CDN's rule exactly
// (common/playback-token.ts): only as `_t/<token>/_private/…` with a valid token.
// With `live` (the ingest in this process), live streams' playlists and parts
// come from it first (LL-HLS, blocking), and a segment not yet in the
// directory from it last (plugins/low-latency.ts).
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { contentTypeFor, playlistCacheControl, SEGMENT_CACHE_CONTROL, THUMBNAIL_CACHE_CONTROL } from '../../common/object-layout.ts';
import { STREAM_FILE_PATTERN, TOKEN_SEGMENT, type MediaPathDecision } from '../../common/playback-token.ts';
import { parseMediaPlaylist } from '../../common/media-playlist.ts';
import { THUMBNAIL_FILE } from '../../common/renditions.ts';
import { PART_FILE_SUFFIX, type BlockingQuery } from '../../common/low-latency.ts';
import { errorResponses, errorSchema, textBody } from '../schemas.ts';
import { sendError } from './errors.ts';
import { blockingOr400, blockingQuerystring, noStoreErrors, type LowLatencyOrigin } from './low-latency.ts';

export interface OriginOptions {
  root: string;
  /** Fixed playlist max-age; undefined means half the playlist's target duration, like the ingest. */
  playlistMaxAgeSeconds: number | undefined;
  /** The CDN's playback-token rule for a path (`/…`). */
  authorize: (uri: string) => MediaPathDecision;
  /** Live streams' LL-HLS from their holder; the directory alone without it. */
  live?: LowLatencyOrigin | undefined;
}

const PART = '[A-Za-z0-9][A-Za-z0-9_.-]{0,127}';
/** `<namespace>/<name>/<a file of the stream's folder>`, private ones behind `_private/` and a token; nothing else. */
export const ORIGIN_PATH_PATTERN = `^(${TOKEN_SEGMENT}/[A-Za-z0-9_.-]{1,200}/)?(_private/)?${PART}/${PART}/${STREAM_FILE_PATTERN}$`;

interface OriginParams {
  '*': string;
}

const origin: FastifyPluginAsync<OriginOptions> = async (app, options) => {
  const root = resolve(options.root);

  const live = options.live;
  noStoreErrors(app);
  app.route<{ Params: OriginParams; Querystring: BlockingQuery }>({
    method: ['GET', 'HEAD'],
    url: '/*',
    exposeHeadRoute: false,
    schema: {
      // Media, as the CDN serves it in production (one-machine mode only): not part of the API.
      hide: true,
      params: {
        type: 'object',
        required: ['*'],
        properties: { '*': { type: 'string', pattern: ORIGIN_PATH_PATTERN, maxLength: 600 } },
        additionalProperties: false,
      },
      querystring: blockingQuerystring,
      response: { 200: textBody, 206: textBody, 403: errorSchema, 416: errorSchema, 502: errorSchema, 503: errorSchema, 504: errorSchema, ...errorResponses },
    },
    handler: async (request, reply) => {
      const decision = options.authorize(`/${request.params['*']}`);
      if (!decision.allow) return sendError(reply, 403, decision.reason);
      const key = decision.uri.slice(1);
      const blocking = blockingOr400(request.query, reply);
      if (!blocking) return reply;
      // A live stream's playlist and parts: the holder's (the directory has the plain playlist, never parts).
      const holderFirst = key.endsWith('.m3u8') || key.endsWith(PART_FILE_SUFFIX);
      if (live && holderFirst && (await live.serve(request, reply, key, blocking, 'fallback'))) return reply;
      const path = resolve(root, key);
      if (!path.startsWith(root + sep)) return sendError(reply, 404, 'not found');
      let handle: FileHandle;
      try {
        handle = await open(path, 'r');
      } catch {
        // A segment the ingest has cut but not yet stored here.
        if (live && !holderFirst && (await live.serve(request, reply, key, blocking, 'fallback'))) return reply;
        return sendError(reply, 404, `${key} not found`);
      }
      // From here the open handle is the file, even if it is replaced or deleted meanwhile.
      let handed = false;
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) return sendError(reply, 404, `${key} not found`);
        const isPlaylist = key.endsWith('.m3u8');
        // A playlist is small, and its target duration sets its cache lifetime.
        const body = isPlaylist ? await handle.readFile() : undefined;
        const size = body?.length ?? stat.size;
        const range = parseRange(request.headers.range, size);
        if (range === 'unsatisfiable') {
          reply.header('content-range', `bytes */${size}`);
          return sendError(reply, 416, `range not satisfiable for ${size} bytes`);
        }
        // A multivariant playlist has no target duration: the shortest lifetime, like a 1 s segment's playlist.
        const cacheControl = body
          ? playlistCacheControl(options.playlistMaxAgeSeconds ?? (parseMediaPlaylist(body.toString('utf8')).targetDuration ?? 1) / 2)
          : key.endsWith(`/${THUMBNAIL_FILE}`)
            ? THUMBNAIL_CACHE_CONTROL
            : SEGMENT_CACHE_CONTROL;
        const [start, end] = range ?? [0, size - 1];
        const length = size === 0 ? 0 : end - start + 1;
        reply
          .header('content-type', contentTypeFor(key))
          .header('cache-control', cacheControl)
          .header('accept-ranges', 'bytes')
          .header('x-content-type-options', 'nosniff')
          .header('content-length', String(length));
        if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
        if (request.method === 'HEAD' || length === 0) return reply.send();
        if (body) return reply.send(body.subarray(start, end + 1));
        handed = true;
        return reply.send(handle.createReadStream({ start, end }));
      } finally {
        if (!handed) await handle.close();
      }
    },
  });
};

/**
 * One byte range (RFC 9110): `bytes=a-b`, `bytes=a-`, `bytes=-n`. Anything
 * else (several ranges, other units, garbage) is ignored and the whole file
 * is sent, as the RFC allows.
 */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, a = '', b = ''] = match;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}

export default origin;
