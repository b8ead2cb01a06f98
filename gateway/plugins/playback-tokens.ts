// Private streams on the gateway: the playback tokens (common/playback-token.ts)
// as a decorator the other routes use (the lookup's ?token=, the local
// origin's rule, the follower's own fetches), and the endpoint an app's
// backend calls to mint one:
//
//   POST /v1/streams/:namespace/:name/playback-token
//   Authorization: Bearer <TTEOK_PLAYBACK_API_KEY>
//   { "ttlSeconds": 3600 }                        (optional, at most the configured TTL)
//   → 200 { "token", "expiresAt", "playbackUrl" } (playbackUrl carries the token)
//
// The API key is compared in constant time (SHA-256 of both, then
// timingSafeEqual, so not even its length leaks). It is never the stream key:
// this endpoint can only mint viewing rights.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { StreamRef } from '../../common/livestream.ts';
import {
  authorizeMediaPath,
  keyringLookup,
  mintPlaybackToken,
  verifyPlaybackToken,
  type MediaPathDecision,
  type MintedToken,
  type PlaybackAccess,
  type TokenCheck,
  type TokenScope,
} from '../../common/playback-token.ts';
import type { PlaybackTokenConfig } from '../config.ts';
import { errorSchema, httpError, noQuerystring, streamParamsSchema } from '../schemas.ts';

export interface PlaybackTokens {
  /** Whether tokens can be minted and verified here (TTEOK_PLAYBACK_TOKEN_KEYS set). */
  readonly enabled: boolean;
  /** A token for the stream under this gateway's media prefix, valid for ttlSeconds (default and cap: the configured TTL); undefined without keys. */
  mint(ref: StreamRef, ttlSeconds?: number): MintedToken | undefined;
  check(token: string, ref: StreamRef): TokenCheck;
  /** The CDN's rule for a media path (`/…`), as the CloudFront Function applies it. */
  authorizeMediaPath(uri: string): MediaPathDecision;
}

declare module 'fastify' {
  interface FastifyInstance {
    playbackTokens: PlaybackTokens;
    /** The playlist URL of a stream with this access, with the token in its path when given. */
    mediaUrl(ref: StreamRef, access: PlaybackAccess, token?: string): string;
  }
}

export interface PlaybackTokensOptions {
  config: PlaybackTokenConfig;
  mediaUrl: (ref: StreamRef, access: PlaybackAccess, token?: string) => string;
  /** The key prefix in playback URLs ('' on the local origin): tokens are signed for the stream under it. */
  mediaPrefix: string;
}

const tokenResponse = {
  type: 'object',
  required: ['token', 'expiresAt', 'playbackUrl'],
  properties: {
    token: { type: 'string' },
    expiresAt: { type: 'string', format: 'date-time' },
    playbackUrl: { type: 'string', format: 'uri' },
  },
  additionalProperties: false,
} as const;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

const playbackTokens: FastifyPluginAsync<PlaybackTokensOptions> = async (app, options) => {
  const { keyring, ttlSeconds, apiKey } = options.config;
  const secretOf = keyringLookup(keyring);
  const scopeOf = (ref: StreamRef): TokenScope => ({ prefix: options.mediaPrefix, namespace: ref.namespace, name: ref.name });
  const tokens: PlaybackTokens = {
    enabled: keyring !== undefined,
    mint: (ref, ttl) => (keyring ? mintPlaybackToken(keyring.signing, scopeOf(ref), Math.min(ttl ?? ttlSeconds, ttlSeconds)) : undefined),
    check: (token, ref) => verifyPlaybackToken(token, scopeOf(ref), secretOf),
    authorizeMediaPath: (uri) => authorizeMediaPath(uri, secretOf),
  };
  app.decorate('playbackTokens', tokens);
  app.decorate('mediaUrl', options.mediaUrl);
  const apiKeyDigest = apiKey === undefined ? undefined : digest(apiKey);

  app.withTypeProvider<JsonSchemaToTsProvider>().post(
    '/v1/streams/:namespace/:name/playback-token',
    {
      schema: {
        tags: ['playback tokens'],
        operationId: 'mintPlaybackToken',
        summary: 'A playback token for a private stream, for your backend to hand to a viewer',
        description: 'Needs TTEOK_PLAYBACK_API_KEY as a bearer key (401 without it, 503 when not configured). 409 for a public stream. The body is optional.',
        security: [{ apiKey: [] }],
        params: streamParamsSchema,
        querystring: noQuerystring,
        body: {
          type: ['object', 'null'],
          properties: { ttlSeconds: { type: 'integer', minimum: 60, maximum: ttlSeconds } },
          additionalProperties: false,
        },
        response: { 200: tokenResponse, 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 500: errorSchema, 503: errorSchema },
      },
    },
    async (request, reply) => {
      if (!apiKeyDigest || !keyring) {
        throw httpError(503, 'minting playback tokens is not configured on this gateway (TTEOK_PLAYBACK_API_KEY and TTEOK_PLAYBACK_TOKEN_KEYS)');
      }
      const header = request.headers.authorization ?? '';
      const presented = /^Bearer (\S+)$/.exec(header)?.[1] ?? '';
      if (!timingSafeEqual(digest(presented), apiKeyDigest)) {
        reply.header('www-authenticate', 'Bearer realm="tteok"');
        throw httpError(401, 'a valid API key is required: Authorization: Bearer <TTEOK_PLAYBACK_API_KEY>');
      }
      const { namespace, name } = request.params;
      const state = app.streamView.get({ namespace, name });
      if (!state) throw httpError(404, `stream ${namespace}/${name} not found`);
      if ((state.access ?? 'public') !== 'private') {
        throw httpError(409, `stream ${namespace}/${name} is public: its playbackUrl needs no token`);
      }
      const minted = tokens.mint({ namespace, name }, request.body?.ttlSeconds)!;
      reply.header('cache-control', 'no-store');
      return {
        token: minted.token,
        expiresAt: new Date(minted.expires * 1000).toISOString(),
        playbackUrl: options.mediaUrl({ namespace, name }, 'private', minted.token),
      };
    },
  );
};

export default fp(playbackTokens, { name: 'tteok-playback-tokens', fastify: '5.x', dependencies: ['tteok-context'] });
