// Every error is JSON, `{ statusCode, error, message }`: schema violations
// (400), unknown routes and resources (404), and failures (500, without
// internals). Breaks encapsulation so it applies to every route.
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyPluginAsync, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';

export function sendError(reply: FastifyReply, statusCode: number, message: string): FastifyReply {
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message });
}

const errors: FastifyPluginAsync = async (app) => {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
      return sendError(reply, status, STATUS_CODES[status] ?? 'Internal Server Error');
    }
    return sendError(reply, status, error.message);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, `Route ${request.method}:${request.url.split('?')[0]} not found`));
};

export default fp(errors, { name: 'tteok-errors', fastify: '5.x' });
