// The playback lookup: where (and whether) a stream can be watched. Answers
// come from the in-memory stream view. The response schemas list every field
// a response may carry, so nothing else (a stream key above all) can be
// serialized into one by mistake. A private stream's playbackUrl is null
// unless the lookup carries a valid playback token (?token=), and then it
// carries that token. While a stream is live the answer also names its
// thumbnail (beside the playlist, signed alike) and the renditions of its
// ladder, which the playlist follower reads from the stored multivariant
// playlist (stream-ladders.ts).
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { THUMBNAIL_FILE } from '../../common/renditions.ts';
import type { StreamState } from '../../common/stream-view.ts';
import type { EventStreamConfig } from '../config.ts';
import events from './events.ts';
import { errorResponses, errorSchema, httpError, namespaceSchema, noParams, streamParamsSchema } from '../schemas.ts';

const renditionSchema = {
  type: 'object',
  description: "One rendition of a stream's ladder: a variant of its multivariant playlist.",
  required: ['name', 'bandwidth', 'codecs'],
  properties: {
    name: {
      type: 'string',
      description:
        "`source` (what the publisher sends), `track<N>` (a multitrack publish's other tracks) or a preset (`720p`, `480p`, `360p`, `160p`, `audio`).",
    },
    bandwidth: { type: 'number', description: 'Peak segment bit rate, bit/s (BANDWIDTH).' },
    codecs: { type: 'array', items: { type: 'string' }, description: 'RFC 6381 codec strings of its tracks, e.g. ["avc1.64001f", "mp4a.40.2"].' },
    averageBandwidth: { type: 'number', description: 'Average segment bit rate, bit/s (AVERAGE-BANDWIDTH).' },
    resolution: {
      type: 'object',
      description: 'Picture size in pixels; absent for audio only.',
      required: ['width', 'height'],
      properties: { width: { type: 'integer' }, height: { type: 'integer' } },
      additionalProperties: false,
    },
    frameRate: { type: 'number', description: 'Frames per second (FRAME-RATE).' },
  },
  additionalProperties: false,
} as const;

const streamSchema = {
  type: 'object',
  description: 'A stream as a frontend sees it: whether it is live and where to play it.',
  required: ['name', 'namespace', 'title', 'phase', 'live', 'liveSince', 'access', 'playbackUrl', 'thumbnailUrl', 'renditions'],
  properties: {
    name: { type: 'string' },
    namespace: { type: 'string' },
    title: { type: 'string' },
    phase: { type: 'string', enum: ['Pending', 'Ready', 'Live', 'Disabled', 'Error'] },
    live: { type: 'boolean' },
    liveSince: { type: ['string', 'null'], format: 'date-time', description: 'When the current run began; null when not live.' },
    access: { type: 'string', enum: ['public', 'private'] },
    playbackUrl: {
      type: ['string', 'null'],
      format: 'uri',
      description: "The HLS playlist to play. A private stream's is null unless the lookup carries a valid ?token=, and then it carries that token.",
    },
    thumbnailUrl: {
      type: ['string', 'null'],
      format: 'uri',
      description:
        "A JPEG poster of the live stream, beside its playlist and refreshed about every 10 s (it may not exist yet, or at all when thumbnails are off). Null when not live; a private stream's is null unless the lookup carries a valid ?token=, like playbackUrl.",
    },
    renditions: {
      type: 'array',
      description:
        "The renditions of the live stream's adaptive ladder, as its stored multivariant playlist lists them (source first, then highest bandwidth first); empty when the stream has no ladder or is not live.",
      items: renditionSchema,
    },
  },
  additionalProperties: false,
} as const;

/** The lookup's answer, typed from its own schema (json-schema-to-ts): the schema is the one definition. */
export type StreamResource = FromSchema<typeof streamSchema>;

const streamListSchema = {
  type: 'object',
  required: ['streams'],
  properties: { streams: { type: 'array', items: streamSchema } },
  additionalProperties: false,
} as const;

const JSON_TYPE = 'application/json; charset=utf-8';

export interface StreamsOptions {
  /** Live-state events (plugins/events.ts), served under the same prefix. */
  events: EventStreamConfig;
}

const streams: FastifyPluginAsync<StreamsOptions> = async (plain, options) => {
  // Request types come from the route schemas (json-schema-to-ts), not from interfaces beside them.
  const app = plain.withTypeProvider<JsonSchemaToTsProvider>();
  /** `token`: a playback token already checked for this stream. */
  const toResource = (s: StreamState, token?: string): StreamResource => {
    const ref = { namespace: s.namespace, name: s.name };
    const access = s.access ?? 'public';
    const playbackUrl = access === 'public' ? app.mediaUrl(ref, 'public') : token ? app.mediaUrl(ref, 'private', token) : null;
    return {
      name: s.name,
      namespace: s.namespace,
      title: s.title,
      phase: s.phase,
      live: s.live,
      liveSince: s.live ? (s.liveSince ?? null) : null,
      access,
      playbackUrl,
      thumbnailUrl: s.live && playbackUrl ? new URL(THUMBNAIL_FILE, playbackUrl).href : null,
      renditions: s.live ? [...app.streamLadders.get(ref)] : [],
    };
  };

  app.get(
    '/streams',
    {
      schema: {
        tags: ['streams'],
        operationId: 'listStreams',
        summary: 'Every stream, optionally only one namespace or only the live ones',
        params: noParams,
        querystring: {
          type: 'object',
          properties: { namespace: namespaceSchema, live: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: { 200: streamListSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { namespace, live } = request.query;
      const list = app.streamView
        .list()
        .filter((s) => (namespace === undefined || s.namespace === namespace) && (live === undefined || s.live === live))
        .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
      return { streams: list.map((s) => toResource(s)) };
    },
  );

  // Each stream's lookup body, serialized once per change rather than per
  // request (issue 11: lookups are the hot path, and a stream changes a few
  // times a run). Keyed by the view's state object, which a change replaces;
  // also dropped at every change event, and when the gateway starts
  // listening, since local playback URLs carry the port.
  let serialized = new WeakMap<StreamState, string>();
  app.streamView.onChange(() => {
    serialized = new WeakMap();
  });
  // The ladder a stream's state object does not carry (the follower reads it).
  app.streamLadders.onChange(() => {
    serialized = new WeakMap();
  });
  app.addHook('onListen', async () => {
    serialized = new WeakMap();
  });

  app.get(
    '/streams/:namespace/:name',
    {
      schema: {
        tags: ['streams'],
        operationId: 'getStream',
        summary: 'The playback lookup: whether a stream is live and where to play it',
        description: 'Answered from memory, serialized once per change of the stream. 403 when the ?token= given does not verify for this stream.',
        params: streamParamsSchema,
        // ?token=<playback token>: a private stream's answer then carries a playable URL.
        querystring: { type: 'object', properties: { token: { type: 'string', maxLength: 200 } }, additionalProperties: false },
        response: { 200: streamSchema, 403: errorSchema, ...errorResponses },
      },
    },
    (request, reply) => {
      const { namespace, name } = request.params;
      const state = app.streamView.get({ namespace, name });
      if (!state) throw httpError(404, `stream ${namespace}/${name} not found`);
      const { token } = request.query;
      if (token !== undefined && state.access === 'private') {
        // A token-specific answer: checked and serialized for this request only.
        const check = app.playbackTokens.check(token, { namespace, name });
        if (!check.ok) throw httpError(403, `playback token refused: ${check.reason}`);
        reply.send(toResource(state, token));
        return;
      }
      let body = serialized.get(state);
      if (body === undefined) {
        // The route's own response serializer, so the schema still decides
        // what a response may carry (never a stream key).
        const serialize = reply.getSerializationFunction('200');
        if (!serialize) throw new Error('the lookup route has no 200 response serializer');
        body = serialize(toResource(state));
        serialized.set(state, body);
      }
      // A string with a JSON content type is sent as it is, not serialized
      // again. The type provider types the object form only; this string is
      // that object, serialized by the route's own serializer above.
      reply.type(JSON_TYPE).send(body as unknown as StreamResource);
    },
  );

  // Events carry the lookup's body. toResource builds exactly the schema's
  // fields in the schema's order, so JSON.stringify gives the same bytes as
  // the route's serializer (test/gateway/events-kube.test.ts compares them).
  await app.register(events, { config: options.events, lookupBody: (s) => JSON.stringify(toResource(s)) });
};

export default streams;
