// What every route of the gateway shares, as typed decorators on the root
// instance (hence fastify-plugin): the stream view the answers come from, and
// how a stream's playback URL is made, and the renditions of each live
// stream's ladder (filled by the playlist follower, listed by the lookup).
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { StreamRef } from '../../common/livestream.ts';
import type { StreamView } from '../../common/stream-view.ts';
import type { StreamLadders } from '../stream-ladders.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The watch-backed, in-memory view of every LiveStream; never a backend call. */
    streamView: StreamView;
    /** The stream's stable playlist URL as viewers fetch it. */
    playbackUrl(ref: StreamRef): string;
    /** The renditions of each live stream's ladder, as the follower last read them. */
    streamLadders: StreamLadders;
  }
}

export interface ContextOptions {
  view: StreamView;
  playbackUrl: (ref: StreamRef) => string;
  ladders: StreamLadders;
}

const context: FastifyPluginAsync<ContextOptions> = async (app, options) => {
  app.decorate('streamView', options.view);
  app.decorate('playbackUrl', options.playbackUrl);
  app.decorate('streamLadders', options.ladders);
};

export default fp(context, { name: 'tteok-context', fastify: '5.x' });
