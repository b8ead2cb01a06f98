// The gateway: frontends ask it where to play a stream, operators scrape its
// metrics, and in the one-machine mode it is also the origin and serves the
// player page. One Fastify plugin per concern:
//
//   errors   (fastify-plugin) JSON errors everywhere, 404 for unknown routes
//   cors     (fastify-plugin) allowed origins, GET and HEAD, preflight
//   openapi  (fastify-plugin) /openapi.json, the OpenAPI 3.1 document of the routes below
//   context  (fastify-plugin) decorators: streamView, playbackUrl
//   playback-tokens (fastify-plugin) private streams: playbackTokens, mediaUrl, POST …/playback-token
//   metrics  (fastify-plugin) /metrics, request timing hook, playlist follower
//   health                    /healthz, /readyz
//   streams  (prefix /v1)     /v1/streams, /v1/streams/:namespace/:name
//     events                  /v1/streams/events, /v1/streams/:namespace/:name/events (SSE)
//   origin   (prefix /origin) the local origin directory (one-machine mode), live streams' LL-HLS first
//   low-latency (prefix /origin) without a directory: the LL origin behind the CDN (Kubernetes)
//   player                    /, the player page and hls.js
//
// createGateway takes any StreamView: the local one (key file + live events)
// today, an informer on LiveStreams in Kubernetes.
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { createLogger, type Logger } from '../common/log.ts';
import { packageVersion } from '../common/package-version.ts';
import type { StreamRef } from '../common/livestream.ts';
import { joinKey, playlistKey } from '../common/object-layout.ts';
import { accessRoot, DEFAULT_TOKEN_TTL_SECONDS, isTokenPrefix, tokenizedUrl, type PlaybackAccess } from '../common/playback-token.ts';
import type { StreamView } from '../common/stream-view.ts';
import context from './plugins/context.ts';
import cors from './plugins/cors.ts';
import errors from './plugins/errors.ts';
import health from './plugins/health.ts';
import metrics from './plugins/metrics.ts';
import openapi from './plugins/openapi.ts';
import lowLatency, { LowLatencyOrigin } from './plugins/low-latency.ts';
import origin from './plugins/origin.ts';
import playbackTokens from './plugins/playback-tokens.ts';
import player from './plugins/player.ts';
import streams from './plugins/streams.ts';
import {
  DEFAULT_EVENT_STREAMS,
  DEFAULT_TIMEOUTS,
  defaultHeartbeatMs,
  type EventStreamConfig,
  type GatewayTimeouts,
  type PlaybackTokenConfig,
} from './config.ts';
import { schemaFormats } from './schemas.ts';
import { StreamLadders } from './stream-ladders.ts';
import type { HolderResolver } from './low-latency/holders.ts';

export interface GatewayOptions {
  view: StreamView;
  /**
   * Proxies whose X-Forwarded-For names the client (Fastify's trustProxy:
   * addresses, CIDR ranges, proxy-addr's names). Default none: the client is
   * the connection's peer, and a forwarded header is not believed.
   */
  trustedProxies?: string[];
  /**
   * Base URL viewers fetch media from (the CDN). Omit it when the gateway
   * serves the local origin (`originDir`): playback URLs then point at the
   * gateway's own /origin/, on `publicHost` and the port it listens on.
   */
  playbackBaseUrl?: string | undefined;
  /** Object key prefix (TTEOK_S3_PREFIX) in CDN playback URLs. */
  prefix?: string;
  /** Allowed CORS origins; ['*'] (the default) allows any. */
  corsOrigins?: string[];
  /**
   * Origins besides the page's own that the player's `?src=` may play from
   * (TTEOK_PLAYER_SRC_ORIGINS). Default: the origin of `playbackBaseUrl`, the
   * CDN every stream already plays from; none without one.
   */
  playerSrcOrigins?: string[] | undefined;
  /** Serve this directory (the local object store) under /origin/. */
  originDir?: string | undefined;
  playlistMaxAgeSeconds?: number | undefined;
  /** Host in playback URLs of the local origin; default 127.0.0.1. */
  publicHost?: string;
  /** Live playlist polling for the segment latency metric; 0 turns it off. Default 500. */
  followIntervalMs?: number;
  /** Streams with their own metric labels (TTEOK_METRICS_MAX_STREAMS). Default 100. */
  metricsMaxStreams?: number;
  /** Client timeouts; DEFAULT_TIMEOUTS (the documented defaults) when omitted. */
  timeouts?: GatewayTimeouts;
  /** Serve the player page at `/`. Default true. */
  player?: boolean;
  /** Private streams' tokens; default: none (private streams play nowhere). */
  playbackTokens?: PlaybackTokenConfig;
  /** Live-state events (heartbeat, connection cap, resume buffer); DEFAULT_EVENT_STREAMS (heartbeat below the connection timeout) when omitted. */
  events?: EventStreamConfig;
  /** The LL origin under /origin/: live streams' LL-HLS from their holders. Default: none. */
  lowLatency?: LowLatencyOptions | undefined;
  log?: Logger;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The LL origin under /origin/, when configured. */
    lowLatencyOrigin: LowLatencyOrigin | undefined;
  }
}

export interface LowLatencyOptions {
  holders: HolderResolver;
  upstreamTimeoutMs: number;
  /** TTEOK_ORIGIN_SECRET (see plugins/low-latency.ts). */
  originSecret?: string | undefined;
}

export async function createGateway(options: GatewayOptions): Promise<FastifyInstance> {
  const log = options.log ?? createLogger('gateway');
  if (!options.playbackBaseUrl && !options.originDir) throw new Error('createGateway needs playbackBaseUrl, or originDir to serve the local origin');
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const eventStreams = options.events ?? { ...DEFAULT_EVENT_STREAMS, heartbeatMs: defaultHeartbeatMs(timeouts.connectionMs) };
  // Heartbeats are what keeps the connection timeout from cutting a quiet event stream.
  if (eventStreams.heartbeatMs >= timeouts.connectionMs)
    throw new Error(`the event heartbeat (${eventStreams.heartbeatMs} ms) must be below the connection timeout (${timeouts.connectionMs} ms)`);
  const trustedProxies = options.trustedProxies ?? [];
  const app = Fastify({
    // request.ip (the per-address cap on event streams): the peer, or the client a trusted proxy names.
    trustProxy: trustedProxies.length > 0 ? trustedProxies : false,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionTimeout: timeouts.connectionMs,
    http: {
      headersTimeout: timeouts.headersMs,
      // Node checks the headers and request deadlines on this interval (30 s
      // by default), so a slow client would otherwise keep its socket for up
      // to that long past its deadline.
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(timeouts.headersMs / 4))),
    },
    // pino's Logger is a FastifyBaseLogger; typed as one so the instance is the default FastifyInstance.
    loggerInstance: log as FastifyBaseLogger,
    // No log line per request: players poll playlists several times a second.
    logController: new LogController({ disableRequestLogging: true }),
    // Nor a child logger per request (Fastify's default, which with pino's
    // redaction costs about as much as a lookup): requests log only failures,
    // and those name their route.
    childLoggerFactory: (logger) => logger,
    ajv: { customOptions: { formats: schemaFormats } },
  });

  const publicHost = options.publicHost ?? '127.0.0.1';
  const localBase = () => {
    const address = app.server.address() as AddressInfo | null;
    const host = publicHost.includes(':') ? `[${publicHost}]` : publicHost;
    return `http://${host}:${address?.port ?? 0}/origin`;
  };
  /** Where media is fetched from: the CDN's origin, or the gateway's own as playback URLs name it. */
  const playbackOrigin = (): string => new URL(options.playbackBaseUrl ?? localBase()).origin;
  // The local store has no prefix; the bucket behind the CDN may. Tokens are signed for it.
  const mediaPrefix = options.playbackBaseUrl ? (options.prefix ?? '') : '';
  if (!isTokenPrefix(mediaPrefix))
    throw new Error(
      `the key prefix "${mediaPrefix}" has a part the playback-token rule does not accept (each part: a letter or digit, then letters, digits, _ . -)`,
    );
  const mediaUrl = (ref: StreamRef, access: PlaybackAccess, token?: string): string => {
    const base = options.playbackBaseUrl ?? localBase();
    const key = playlistKey(ref, joinKey(mediaPrefix, accessRoot(access)));
    return token ? tokenizedUrl(base, key, token) : `${base.replace(/\/+$/, '')}/${key}`;
  };
  // The gateway's own fetches (the follower) and the start-up banner: a
  // private stream's URL carries a fresh token. Answers to clients never use it
  // for a private stream (see plugins/streams.ts).
  const playbackUrl = (ref: StreamRef): string => {
    if (options.view.get(ref)?.access !== 'private') return mediaUrl(ref, 'public');
    return mediaUrl(ref, 'private', app.playbackTokens.mint(ref)?.token);
  };

  await app.register(errors);
  await app.register(cors, {
    origins: options.corsOrigins ?? ['*'],
    methods: ['GET', 'HEAD'],
    exposedHeaders: ['Content-Length', 'Content-Range', 'Accept-Ranges'],
    maxAgeSeconds: 600,
  });
  // Before every route it documents.
  await app.register(openapi, { version: packageVersion() });
  await app.register(context, { view: options.view, playbackUrl, ladders: new StreamLadders() });
  await app.register(playbackTokens, {
    config: options.playbackTokens ?? { keyring: undefined, ttlSeconds: DEFAULT_TOKEN_TTL_SECONDS, apiKey: undefined },
    mediaUrl,
    mediaPrefix,
  });
  await app.register(metrics, {
    maxStreams: options.metricsMaxStreams ?? 100,
    followIntervalMs: options.followIntervalMs ?? 500,
    log,
  });
  await app.register(health);
  await app.register(streams, { prefix: '/v1', events: eventStreams });
  const ll = options.lowLatency;
  const live = ll
    ? new LowLatencyOrigin({
        holders: ll.holders,
        mediaPrefix,
        upstreamTimeoutMs: ll.upstreamTimeoutMs,
        observe: (event) => {
          if (event === 'timeout' || event === 'unreachable') app.gatewayMetrics.llUpstreamFailures.inc({ reason: event });
          else app.gatewayMetrics.llRequests.inc({ outcome: event });
        },
        accessOf: (ref) => {
          const state = options.view.get(ref);
          return state ? (state.access ?? 'public') : undefined;
        },
      })
    : undefined;
  app.decorate('lowLatencyOrigin', live);
  if (options.originDir) {
    await app.register(origin, {
      prefix: '/origin',
      root: options.originDir,
      playlistMaxAgeSeconds: options.playlistMaxAgeSeconds,
      authorize: (uri) => app.playbackTokens.authorizeMediaPath(uri),
      live,
    });
  } else if (live) {
    await app.register(lowLatency, {
      prefix: '/origin',
      origin: live,
      authorize: (uri) => app.playbackTokens.authorizeMediaPath(uri),
      originSecret: ll?.originSecret,
    });
  }
  if (options.player ?? true) {
    const srcOrigins = options.playerSrcOrigins ?? (options.playbackBaseUrl ? [new URL(options.playbackBaseUrl).origin] : []);
    await app.register(player, { srcOrigins, playbackOrigin });
  }
  return app;
}

export interface RunningGateway {
  app: FastifyInstance;
  port: number;
  /** http://<host>:<port>, what a browser on this machine opens. */
  url: string;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions & { host: string; port: number }): Promise<RunningGateway> {
  const publicHost = options.publicHost ?? (options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host);
  const app = await createGateway({ ...options, publicHost });
  await app.listen({ host: options.host, port: options.port });
  const port = (app.server.address() as AddressInfo).port;
  const host = publicHost.includes(':') ? `[${publicHost}]` : publicHost;
  app.log.info({ host: options.host, port }, 'gateway ready');
  return { app, port, url: `http://${host}:${port}`, close: () => app.close() };
}
