// Live-state events over Server-Sent Events:
//
//   GET /v1/streams/events[?namespace=<ns>]    every stream (of one namespace)
//   GET /v1/streams/:namespace/:name/events    one stream (404 if unknown)
//
// Each event is `id: <epoch>-<seq>`, `event: live|offline|changed|deleted`,
// `data: <the lookup's JSON body>` (live-state-events.ts). A new connection
// first gets a `reset` event and then the current state of every matching
// stream; one with a Last-Event-ID this gateway still has in its ring gets
// exactly the events after it instead, and one it cannot resume gets the
// `reset` and the current state, as a new one.
// A comment line every `heartbeatMs` keeps proxies and the gateway's own
// connection timeout from ending a quiet stream, and shows the client the
// stream is alive. Of the gateway's timeouts (config.ts), Node applies
// requestTimeout and headersTimeout only until the request is received and
// keepAliveTimeout only between requests; what cuts a long response is the
// socket's idle timeout (Fastify's connectionTimeout), which any write resets:
// hence the heartbeat below it (checked in config.ts and createGateway), and
// a client that stops reading is still cut once its socket stops taking data. At most `maxConnections` are open at
// once (503 JSON beyond). Open streams are ended when the gateway closes.
//
// Registered inside the streams plugin (so under /v1), which hands over the
// lookup's body.
import { PassThrough } from 'node:stream';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import type { StreamState } from '../../common/stream-view.ts';
import type { EventStreamConfig } from '../config.ts';
import { LiveStateEvents, matches, type EventFilter, type LiveStateEvent } from '../live-state-events.ts';
import { errorResponses, errorSchema, httpError, namespaceSchema, noQuerystring, streamParamsSchema } from '../schemas.ts';
import { sendError } from './errors.ts';

export interface EventsOptions {
  config: EventStreamConfig;
  /** A stream's body exactly as the unauthenticated lookup answers it. */
  lookupBody: (state: StreamState) => string;
}

/** How long a browser's EventSource waits before reconnecting (the SSE `retry:` field). */
const RETRY_MS = 2000;
/** A client that lets this much pile up unread is cut rather than held in memory. */
const MAX_UNSENT_BYTES = 1 << 20;

const EVENT_STREAM_TYPE = 'text/event-stream; charset=utf-8';

function frame(id: string, e: LiveStateEvent): string {
  // The data is one line of JSON (JSON.stringify escapes newlines), so one `data:` field.
  return `id: ${id}\nevent: ${e.event}\ndata: ${e.data}\n\n`;
}

const events: FastifyPluginAsync<EventsOptions> = async (app, options) => {
  const { heartbeatMs, maxConnections, bufferSize } = options.config;
  const hub = new LiveStateEvents(app.streamView, options.lookupBody, bufferSize);
  app.streamView.onChange(() => hub.update());
  app.addHook('onListen', async () => hub.rebaseline());

  const open = new Set<() => void>();
  let closing = false;
  const refused = new Counter({
    name: 'tteok_gateway_event_connections_refused_total',
    help: 'Event stream requests answered 503 because TTEOK_EVENTS_MAX_CONNECTIONS were open.',
    registers: [app.gatewayMetrics.registry],
  });
  new Gauge({
    name: 'tteok_gateway_event_connections',
    help: 'Open live-state event streams (GET /v1/streams/events, /v1/streams/:namespace/:name/events).',
    registers: [app.gatewayMetrics.registry],
    collect() {
      this.set(open.size);
    },
  });
  // Before the server stops accepting: end every open stream, so that closing
  // does not wait on them and their clients see a clean end.
  app.addHook('preClose', async () => {
    closing = true;
    for (const end of [...open]) end();
  });

  const serve = (request: FastifyRequest, reply: FastifyReply, filter: EventFilter): void => {
    if (closing) {
      sendError(reply, 503, 'the gateway is shutting down');
      return;
    }
    if (open.size >= maxConnections) {
      refused.inc();
      sendError(reply.header('retry-after', '10'), 503, `too many open event streams on this gateway (TTEOK_EVENTS_MAX_CONNECTIONS=${maxConnections}); retry later`);
      return;
    }
    const body = new PassThrough();
    // A write racing the connection's end is not this process's failure.
    body.on('error', () => undefined);
    const res = reply.raw;
    const write = (text: string): void => {
      if (body.destroyed || body.writableEnded) return;
      if (res.writableLength + body.writableLength + body.readableLength > MAX_UNSENT_BYTES) {
        // The client stopped reading; the connection timeout would cut it too, but not before this much is buffered.
        res.destroy();
        return;
      }
      body.write(text);
    };
    const lastEventId = request.headers['last-event-id'];
    const resumed = typeof lastEventId === 'string' ? hub.since(lastEventId, filter) : undefined;
    const backlog = resumed ?? hub.current(filter);
    // Subscribed in the same tick as the backlog is taken: no event falls between them.
    const unsubscribe = hub.subscribe((e) => {
      if (matches(filter, e)) write(frame(hub.idOf(e.seq), e));
    });
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), heartbeatMs);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      open.delete(end);
      clearInterval(heartbeat);
      unsubscribe();
      if (!body.destroyed && !body.writableEnded) body.end();
    };
    open.add(end);
    res.once('close', end);
    // The first bytes go out at once, so the client sees the stream open (and its headers) now.
    // Not a resume: `reset` tells the client to forget what it knew (a stream
    // deleted meanwhile has no event of its own), then the current state follows.
    const reset = resumed ? '' : `id: ${hub.headId}\nevent: reset\ndata: {}\n\n`;
    write(`retry: ${RETRY_MS}\n\n${reset}` + backlog.map((e) => frame(hub.idOf(e.seq), e)).join(''));
    reply
      .code(200)
      .type(EVENT_STREAM_TYPE)
      .header('cache-control', 'no-store')
      // nginx and other proxies buffer responses unless told not to.
      .header('x-accel-buffering', 'no')
      .send(body);
  };

  const api = app.withTypeProvider<JsonSchemaToTsProvider>();
  // For the OpenAPI document: the body is a stream, which Fastify sends as it is (no serializer runs).
  const eventStreamResponse = {
    description: 'The event stream',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  } as const;
  const eventStreamDescription =
    'A text/event-stream (Server-Sent Events): `reset`, then the current state of every matching stream, then one event per change ' +
    '(`live`, `offline`, `changed`: data is the lookup\'s body; `deleted`: data is { namespace, name }). ' +
    'A client sending Last-Event-ID resumes where it left off. 503 (with Retry-After) when too many are open.';
  api.get('/streams/events', {
    schema: {
      tags: ['events'],
      operationId: 'streamEvents',
      summary: 'Live state of every stream (or one namespace) as Server-Sent Events',
      description: eventStreamDescription,
      querystring: { type: 'object', properties: { namespace: namespaceSchema }, additionalProperties: false },
      response: { 200: eventStreamResponse, 503: errorSchema, ...errorResponses },
    },
  }, (request, reply) => {
    serve(request, reply, { namespace: request.query.namespace });
  });

  api.get('/streams/:namespace/:name/events', {
    schema: {
      tags: ['events'],
      operationId: 'streamEventsOne',
      summary: 'Live state of one stream as Server-Sent Events',
      description: eventStreamDescription,
      params: streamParamsSchema,
      querystring: noQuerystring,
      response: { 200: eventStreamResponse, 503: errorSchema, ...errorResponses },
    },
  }, (request, reply) => {
    const { namespace, name } = request.params;
    // A stream that does not exist now is a 404; one deleted while watched is a `deleted` event.
    if (!app.streamView.get({ namespace, name })) throw httpError(404, `stream ${namespace}/${name} not found`);
    serve(request, reply, { namespace, name });
  });
};

export default events;
