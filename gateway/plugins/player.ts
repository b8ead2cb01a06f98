// The player page at `/`: static HTML, JS and CSS from gateway/player/ (no
// build step), and hls.js from node_modules. Loaded into memory once; the
// page talks to /v1/streams and plays a stream's playbackUrl.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, noParams, noQuerystring, textBody } from '../schemas.ts';

/** Playlists and segments may come from the CDN (any host); nothing else leaves the page's origin. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' http: https:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** gateway/player/, from the source tree or from a compiled dist/gateway/plugins/. */
export function playerDir(): string {
  const candidates = [join(import.meta.dirname, '..', 'player'), join(import.meta.dirname, '..', '..', '..', 'gateway', 'player')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`player page not found in ${candidates.join(' or ')}`);
  return found;
}

const pageQuerystring = {
  type: 'object',
  properties: { stream: { type: 'string', maxLength: 200 }, target: { type: 'number', minimum: 1, maximum: 10 }, token: { type: 'string', maxLength: 200 } },
  additionalProperties: false,
} as const;

interface Asset {
  body: Buffer;
  type: string;
  cacheControl: string;
}

const player: FastifyPluginAsync = async (app) => {
  const dir = playerDir();
  const local = (file: string, type: string): Asset => ({ body: readFileSync(join(dir, file)), type, cacheControl: 'no-cache' });
  const assets: Record<string, Asset> = {
    '/': local('index.html', 'text/html; charset=utf-8'),
    '/player.js': local('player.js', 'text/javascript; charset=utf-8'),
    '/player.css': local('player.css', 'text/css; charset=utf-8'),
    '/vendor/hls.min.js': {
      body: readFileSync(createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js')),
      type: 'text/javascript; charset=utf-8',
      cacheControl: 'public, max-age=3600',
    },
  };

  for (const [url, asset] of Object.entries(assets)) {
    app.get(url, {
      schema: {
        params: noParams,
        // The page reads ?stream=<namespace>/<name>, ?target=<seconds> and ?token=<playback token> itself.
        querystring: url === '/' ? pageQuerystring : noQuerystring,
        response: { 200: textBody, ...errorResponses },
      },
    }, async (_request, reply) => {
      reply
        .type(asset.type)
        .header('cache-control', asset.cacheControl)
        .header('x-content-type-options', 'nosniff');
      if (url === '/') reply.header('content-security-policy', CONTENT_SECURITY_POLICY).header('referrer-policy', 'no-referrer');
      return reply.send(asset.body);
    });
  }
};

export default player;
