// Prometheus metrics: the request duration of every route (by route pattern,
// never the URL, so cardinality stays bounded), and the playlist follower
// that measures segment latency as viewers get it, started when the server is
// ready and stopped when it closes. Breaks encapsulation: the timing hook has
// to see every route, and other plugins may read `gatewayMetrics`.
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from '../../common/log.ts';
import { PlaylistFollower } from '../follower.ts';
import { GatewayMetrics } from '../metrics.ts';
import { errorResponses, noParams, noQuerystring, textBody } from '../schemas.ts';

declare module 'fastify' {
  interface FastifyInstance {
    gatewayMetrics: GatewayMetrics;
  }
}

export interface MetricsOptions {
  maxStreams: number;
  /** How often live playlists are fetched; 0 turns following off. */
  followIntervalMs: number;
  log: Logger;
}

const metricsPlugin: FastifyPluginAsync<MetricsOptions> = async (app, options) => {
  const metrics = new GatewayMetrics(options.maxStreams);
  app.decorate('gatewayMetrics', metrics);

  // A callback hook, not an async one: no promise per request on the hot path.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.requestDuration.observe(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        params: noParams,
        querystring: noQuerystring,
        response: { 200: textBody, ...errorResponses },
      },
    },
    async (_request, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).header('cache-control', 'no-store').send(body);
    },
  );

  const follower = new PlaylistFollower({
    view: app.streamView,
    playbackUrl: (ref) => app.playbackUrl(ref),
    metrics,
    ladders: app.streamLadders,
    intervalMs: options.followIntervalMs,
    log: options.log,
  });
  app.addHook('onReady', async () => follower.start());
  app.addHook('onClose', async () => follower.stop());
};

export default fp(metricsPlugin, { name: 'tteok-metrics', fastify: '5.x', dependencies: ['tteok-context'] });
