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
// hence the heartbeat below it (checked in config.ts and createGateway).
//
// Caps: at most `maxConnections` streams are open at once (503 JSON beyond),
// and at most `maxConnectionsPerAddress` from one client address (429 JSON
// beyond; the address as Fastify's trustProxy gives it, IPv6 by its /64), so
// one client cannot take every slot. Memory per client is bounded: the
// backlog is rendered as the connection takes it (event-stream-body.ts), and
// a client whose untaken bytes (backlog included) pass MAX_UNSENT_BYTES when
// an event or a heartbeat is added is closed. A client that stops reading is
// also cut by the connection timeout once its socket stops taking data. Open
// streams are ended when the gateway closes.
//
// Registered inside the streams plugin (so under /v1), which hands over the
// lookup's body.
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import type { StreamState } from '../../common/stream-view.ts';
import { clientAddressKey } from '../../common/client-address.ts';
import type { EventStreamConfig } from '../config.ts';
import { EventStreamBody, itemSize, type QueuedItem } from '../event-stream-body.ts';
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
/** A client that lets this much pile up untaken (its backlog included) is cut rather than held in memory. */
const MAX_UNSENT_BYTES = 1 << 20;
/** Seconds a refused client is asked to wait (Retry-After). */
const RETRY_AFTER_SECONDS = '10';

const EVENT_STREAM_TYPE = 'text/event-stream; charset=utf-8';

function frame(id: string, e: LiveStateEvent): string {
  // The data is one line of JSON (JSON.stringify escapes newlines), so one `data:` field.
  return `id: ${id}\nevent: ${e.event}\ndata: ${e.data}\n\n`;
}

const events: FastifyPluginAsync<EventsOptions> = async (app, options) => {
  const { heartbeatMs, maxConnections, maxConnectionsPerAddress, bufferSize } = options.config;
  const hub = new LiveStateEvents(app.streamView, options.lookupBody, bufferSize);
  app.streamView.onChange(() => hub.update());
  app.streamLadders.onChange(() => hub.update());
  app.addHook('onListen', async () => hub.rebaseline());

  const open = new Set<() => void>();
  /** Open streams per client address (clientAddressKey). */
  const perAddress = new Map<string, number>();
  let closing = false;
  const refused = new Counter({
    name: 'tteok_gateway_event_connections_refused_total',
    help: 'Event stream requests answered 503 because TTEOK_EVENTS_MAX_CONNECTIONS were open.',
    registers: [app.gatewayMetrics.registry],
  });
  const refusedPerAddress = new Counter({
    name: 'tteok_gateway_event_connections_refused_per_address_total',
    help: "Event stream requests answered 429 because TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS were open from the client's address.",
    registers: [app.gatewayMetrics.registry],
  });
  const cutSlow = new Counter({
    name: 'tteok_gateway_event_connections_cut_slow_total',
    help: 'Event streams closed because the client left more than 1 MiB untaken.',
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

  const serve = (request: FastifyRequest, reply: FastifyReply, filter: EventFilter): FastifyReply => {
    if (closing) return sendError(reply, 503, 'the gateway is shutting down');
    const address = clientAddressKey(request.ip);
    const fromAddress = perAddress.get(address) ?? 0;
    if (fromAddress >= maxConnectionsPerAddress) {
      refusedPerAddress.inc();
      return sendError(
        reply.header('retry-after', RETRY_AFTER_SECONDS),
        429,
        `too many open event streams from your address (TTEOK_EVENTS_MAX_CONNECTIONS_PER_ADDRESS=${maxConnectionsPerAddress}); close one or retry later`,
      );
    }
    if (open.size >= maxConnections) {
      refused.inc();
      return sendError(
        reply.header('retry-after', RETRY_AFTER_SECONDS),
        503,
        `too many open event streams on this gateway (TTEOK_EVENTS_MAX_CONNECTIONS=${maxConnections}); retry later`,
      );
    }
    const lastEventId = request.headers['last-event-id'];
    const resumed = typeof lastEventId === 'string' ? hub.since(lastEventId, filter) : undefined;
    // The first bytes go out at once, so the client sees the stream open (and its headers) now.
    // Not a resume: `reset` tells the client to forget what it knew (a stream
    // deleted meanwhile has no event of its own), then the current state follows.
    const start: QueuedItem[] = [`retry: ${RETRY_MS}\n\n${resumed ? '' : `id: ${hub.headId}\nevent: reset\ndata: {}\n\n`}`];
    const body = new EventStreamBody((e) => frame(hub.idOf(e.seq), e), start.concat(resumed ?? hub.current(filter)));
    // A write racing the connection's end is not this process's failure.
    body.on('error', () => undefined);
    const res = reply.raw;
    const send = (item: QueuedItem): void => {
      if (body.destroyed) return;
      if (res.writableLength + body.pendingBytes + itemSize(item) > MAX_UNSENT_BYTES) {
        // The client is not taking what it was sent; the connection timeout would cut it too, but not before this much is held.
        cutSlow.inc();
        res.destroy();
        return;
      }
      body.enqueue(item);
    };
    // Subscribed in the same tick as the backlog is taken: no event falls between them.
    const unsubscribe = hub.subscribe((e) => {
      if (matches(filter, e)) send(e);
    });
    const heartbeat = setInterval(() => send(': heartbeat\n\n'), heartbeatMs);
    perAddress.set(address, fromAddress + 1);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      open.delete(end);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
      clearInterval(heartbeat);
      unsubscribe();
      body.finish();
    };
    open.add(end);
    res.once('close', () => {
      end();
      body.destroy();
    });
    return (
      reply
        .code(200)
        .type(EVENT_STREAM_TYPE)
        .header('cache-control', 'no-store')
        // nginx and other proxies buffer responses unless told not to.
        .header('x-accel-buffering', 'no')
        .send(body)
    );
  };

  const api = app.withTypeProvider<JsonSchemaToTsProvider>();
  // For the OpenAPI document: the body is a stream, which Fastify sends as it is (no serializer runs).
  const eventStreamResponse = {
    description: 'The event stream',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  } as const;
  const eventStreamDescription =
    'A text/event-stream (Server-Sent Events): `reset`, then the current state of every matching stream, then one event per change ' +
    "(`live`, `offline`, `changed`: data is the lookup's body; `deleted`: data is { namespace, name }). " +
    'A client sending Last-Event-ID resumes where it left off. 503 (with Retry-After) when too many are open.';
  api.get(
    '/streams/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'streamEvents',
        summary: 'Live state of every stream (or one namespace) as Server-Sent Events',
        description: eventStreamDescription,
        querystring: { type: 'object', properties: { namespace: namespaceSchema }, additionalProperties: false },
        response: { 200: eventStreamResponse, 429: errorSchema, 503: errorSchema, ...errorResponses },
      },
    },
    (request, reply) => {
      serve(request, reply, { namespace: request.query.namespace });
    },
  );

  api.get(
    '/streams/:namespace/:name/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'streamEventsOne',
        summary: 'Live state of one stream as Server-Sent Events',
        description: eventStreamDescription,
        params: streamParamsSchema,
        querystring: noQuerystring,
        response: { 200: eventStreamResponse, 429: errorSchema, 503: errorSchema, ...errorResponses },
      },
    },
    (request, reply) => {
      const { namespace, name } = request.params;
      // A stream that does not exist now is a 404; one deleted while watched is a `deleted` event.
      if (!app.streamView.get({ namespace, name })) throw httpError(404, `stream ${namespace}/${name} not found`);
      serve(request, reply, { namespace, name });
    },
  );
};

export default events;
