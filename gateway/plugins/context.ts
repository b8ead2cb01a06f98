// What every route of the gateway shares, as typed decorators on the root
// instance (hence fastify-plugin): the stream view the answers come from, and
// how a stream's playback URL is made.
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { StreamRef } from '../../common/livestream.ts';
import type { StreamView } from '../../common/stream-view.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The watch-backed, in-memory view of every LiveStream; never a backend call. */
    streamView: StreamView;
    /** The stream's stable playlist URL as viewers fetch it. */
    playbackUrl(ref: StreamRef): string;
  }
}

export interface ContextOptions {
  view: StreamView;
  playbackUrl: (ref: StreamRef) => string;
}

const context: FastifyPluginAsync<ContextOptions> = async (app, options) => {
  app.decorate('streamView', options.view);
  app.decorate('playbackUrl', options.playbackUrl);
};

export default fp(context, { name: 'tteok-context', fastify: '5.x' });
