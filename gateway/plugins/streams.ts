// The playback lookup: where (and whether) a stream can be watched. Answers
// come from the in-memory stream view. The response schemas list every field
// a response may carry, so nothing else (a stream key above all) can be
// serialized into one by mistake.
import type { FastifyPluginAsync } from 'fastify';
import type { StreamState } from '../../common/stream-view.ts';
import { errorResponses, httpError, nameSchema, namespaceSchema, noParams, noQuerystring } from '../schemas.ts';

export interface StreamResource {
  name: string;
  namespace: string;
  title: string;
  phase: StreamState['phase'];
  live: boolean;
  liveSince: string | null;
  playbackUrl: string;
}

const streamSchema = {
  type: 'object',
  required: ['name', 'namespace', 'title', 'phase', 'live', 'liveSince', 'playbackUrl'],
  properties: {
    name: { type: 'string' },
    namespace: { type: 'string' },
    title: { type: 'string' },
    phase: { type: 'string', enum: ['Pending', 'Ready', 'Live', 'Disabled', 'Error'] },
    live: { type: 'boolean' },
    liveSince: { type: ['string', 'null'], format: 'date-time' },
    playbackUrl: { type: 'string', format: 'uri' },
  },
  additionalProperties: false,
} as const;

const streamListSchema = {
  type: 'object',
  required: ['streams'],
  properties: { streams: { type: 'array', items: streamSchema } },
  additionalProperties: false,
} as const;

interface ListQuery {
  namespace?: string;
  live?: boolean;
}

interface StreamParams {
  namespace: string;
  name: string;
}

const streams: FastifyPluginAsync = async (app) => {
  const toResource = (s: StreamState): StreamResource => ({
    name: s.name,
    namespace: s.namespace,
    title: s.title,
    phase: s.phase,
    live: s.live,
    liveSince: s.live ? (s.liveSince ?? null) : null,
    playbackUrl: app.playbackUrl({ namespace: s.namespace, name: s.name }),
  });

  app.get<{ Querystring: ListQuery }>('/streams', {
    schema: {
      params: noParams,
      querystring: {
        type: 'object',
        properties: { namespace: namespaceSchema, live: { type: 'boolean' } },
        additionalProperties: false,
      },
      response: { 200: streamListSchema, ...errorResponses },
    },
  }, async (request) => {
    const { namespace, live } = request.query;
    const list = app.streamView
      .list()
      .filter((s) => (namespace === undefined || s.namespace === namespace) && (live === undefined || s.live === live))
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    return { streams: list.map(toResource) };
  });

  app.get<{ Params: StreamParams }>('/streams/:namespace/:name', {
    schema: {
      params: {
        type: 'object',
        required: ['namespace', 'name'],
        properties: { namespace: namespaceSchema, name: nameSchema },
        additionalProperties: false,
      },
      querystring: noQuerystring,
      response: { 200: streamSchema, ...errorResponses },
    },
  }, async (request) => {
    const { namespace, name } = request.params;
    const state = app.streamView.get({ namespace, name });
    if (!state) throw httpError(404, `stream ${namespace}/${name} not found`);
    return toResource(state);
  });
};

export default streams;
