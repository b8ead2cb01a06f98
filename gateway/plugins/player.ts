// The player page at `/`: static HTML, JS and CSS from gateway/player/ (no
// build step), and hls.js from node_modules. Loaded into memory once; the
// page talks to /v1/streams and plays a stream's playbackUrl, or with `?src=`
// a playlist URL on its own origin or an allowed one (TTEOK_PLAYER_SRC_ORIGINS).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, noParams, noQuerystring, textBody } from '../schemas.ts';

/**
 * The page's Content-Security-Policy. It may connect to (and play media from)
 * its own origin, the origin playback URLs point at (the CDN, or the gateway
 * itself as the local origin names it) and the `?src=` allow-list, nothing
 * else: even if the page's own check of `?src=` were bypassed, the browser
 * would not load a playlist from anywhere else.
 */
export function contentSecurityPolicy(mediaOrigins: string[]): string {
  const media = [...new Set(mediaOrigins)].join(' ');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    // Thumbnails come from where media does, fetched and shown as blob: URLs.
    `img-src 'self' data: blob: ${media}`.trimEnd(),
    `media-src 'self' blob: ${media}`.trimEnd(),
    "worker-src 'self' blob:",
    `connect-src 'self' ${media}`.trimEnd(),
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export interface PlayerOptions {
  /** Origins besides its own the page's `?src=` may play from. */
  srcOrigins: string[];
  /** The origin of playback URLs; known once the gateway listens (the local origin's port). */
  playbackOrigin: () => string;
}

/** The `?src=` allow-list, handed to player.js in a meta tag of the page (origins cannot hold a quote or `<`). */
const SRC_ORIGINS_META = '<meta name="tteok-src-origins" content="">';

/** gateway/player/, from the source tree or from a compiled dist/gateway/plugins/. */
export function playerDir(): string {
  const candidates = [join(import.meta.dirname, '..', 'player'), join(import.meta.dirname, '..', '..', '..', 'gateway', 'player')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`player page not found in ${candidates.join(' or ')}`);
  return found;
}

const pageQuerystring = {
  type: 'object',
  properties: {
    stream: { type: 'string', maxLength: 200 },
    target: { type: 'number', minimum: 1, maximum: 10 },
    src: { type: 'string', maxLength: 2000 },
    token: { type: 'string', maxLength: 200 },
  },
  additionalProperties: false,
} as const;

interface Asset {
  body: Buffer;
  type: string;
  cacheControl: string;
}

const player: FastifyPluginAsync<PlayerOptions> = async (app, options) => {
  const dir = playerDir();
  const local = (file: string, type: string): Asset => ({ body: readFileSync(join(dir, file)), type, cacheControl: 'no-cache' });
  const page = readFileSync(join(dir, 'index.html'), 'utf8');
  if (!page.includes(SRC_ORIGINS_META)) throw new Error(`the player page has no ${SRC_ORIGINS_META}`);
  const assets: Record<string, Asset> = {
    '/': {
      body: Buffer.from(page.replace(SRC_ORIGINS_META, SRC_ORIGINS_META.replace('content=""', `content="${options.srcOrigins.join(' ')}"`))),
      type: 'text/html; charset=utf-8',
      cacheControl: 'no-cache',
    },
    '/player.js': local('player.js', 'text/javascript; charset=utf-8'),
    '/edge-loader.js': local('edge-loader.js', 'text/javascript; charset=utf-8'),
    '/live-catch-up.js': local('live-catch-up.js', 'text/javascript; charset=utf-8'),
    '/player.css': local('player.css', 'text/css; charset=utf-8'),
    '/vendor/hls.min.js': {
      body: readFileSync(createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js')),
      type: 'text/javascript; charset=utf-8',
      cacheControl: 'public, max-age=3600',
    },
  };

  // Computed once the gateway listens: the local origin's playback URLs carry its port.
  let csp: string | undefined;
  const pagePolicy = (): string => {
    if (csp) return csp;
    const policy = contentSecurityPolicy([options.playbackOrigin(), ...options.srcOrigins]);
    if (app.server.listening) csp = policy;
    return policy;
  };

  for (const [url, asset] of Object.entries(assets)) {
    app.get(
      url,
      {
        schema: {
          // The player page and its assets are for people, not API clients.
          hide: true,
          params: noParams,
          // The page reads ?stream=<namespace>/<name>, ?target=<seconds> and ?token=<playback token> itself.
          querystring: url === '/' ? pageQuerystring : noQuerystring,
          response: { 200: textBody, ...errorResponses },
        },
      },
      async (_request, reply) => {
        reply.type(asset.type).header('cache-control', asset.cacheControl).header('x-content-type-options', 'nosniff');
        if (url === '/') reply.header('content-security-policy', pagePolicy()).header('referrer-policy', 'no-referrer');
        return reply.send(asset.body);
      },
    );
  }
};

export default player;
