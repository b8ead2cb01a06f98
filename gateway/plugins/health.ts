// Probes. /healthz: the process is up. /readyz: the stream view holds its
// first full load, so answers are complete (Kubernetes sends no traffic before).
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses, errorSchema, noParams, noQuerystring } from '../schemas.ts';
import { sendError } from './errors.ts';

const statusSchema = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' } },
  additionalProperties: false,
} as const;

const health: FastifyPluginAsync = async (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'healthz',
        summary: 'Liveness: the process answers',
        params: noParams,
        querystring: noQuerystring,
        response: { 200: statusSchema, ...errorResponses },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'readyz',
        summary: 'Readiness: the stream view is synced (503 until then)',
        params: noParams,
        querystring: noQuerystring,
        response: { 200: statusSchema, 503: errorSchema, ...errorResponses },
      },
    },
    async (_request, reply) => {
      if (!app.streamView.synced) return sendError(reply, 503, 'the stream view is not synced yet');
      return { status: 'ready' };
    },
  );
};

export default health;
