// The RTMP listener: accepts TCP connections, applies the connection caps and
// TCP keepalive, and gives each socket to an RtmpConnection, which speaks the
// protocol and decides what the connection may do (see rtmp-connection.ts).
// The RTMPS listener (rtmps-listener.ts) uses the same caps, at its own TCP
// accept, and hands its decrypted connections to `serve`.
//
// The protocol layer is our own (handshake.ts, chunk-reader.ts, amf0.ts)
// rather than node-media-server's: its parser allocates whatever a chunk
// header declares and throws on malformed commands from the socket's data
// handler, which ended the process. Ours is strict, bounded before a publish
// is admitted, and fails one connection at a time.
//
// Media goes straight from the connection to the stream's packager. RTMP
// playback is not offered: viewers watch HLS through the CDN.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../../common/log.ts';
import type { IngestMetrics } from '../metrics.ts';
import type { StreamHub } from '../stream-hub.ts';
import { clientAddressKey } from '../../common/client-address.ts';
import { ConnectionLimits } from './connection-limits.ts';
import { RtmpConnection } from './rtmp-connection.ts';
import type { Refusal } from './refusal.ts';
import { listenOn } from '../../common/listen.ts';

export interface RtmpLimits {
  /** From TCP accept to an admitted publish. */
  publishDeadlineMs: number;
  /** Largest message after a publish is admitted. */
  maxMessageBytes: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Idle time before the first TCP keepalive probe. */
  keepaliveMs: number;
}

export interface RtmpServerOptions {
  host: string;
  port: number;
  hub: StreamHub;
  log: Logger;
  metrics: IngestMetrics;
  limits: RtmpLimits;
}

/** A TCP connection counted against the caps; over a cap, its publish is to be refused. */
export interface AcceptedConnection {
  refusal?: Refusal;
}

export class RtmpServer {
  private readonly server: Server;
  private readonly connections = new Map<Socket, RtmpConnection>();
  private readonly limits: RtmpLimits;
  private readonly caps: ConnectionLimits;
  private shuttingDown = false;

  constructor(private readonly options: RtmpServerOptions) {
    this.limits = options.limits;
    this.caps = new ConnectionLimits(this.limits.maxConnections, this.limits.maxConnectionsPerAddress);
    this.server = createServer((socket) => this.handle(socket));
    // Accept errors (EMFILE…) must not end the process.
    this.server.on('error', (error) => options.log.error({ err: error.message }, 'RTMP listener error'));
  }

  private handle(socket: Socket): void {
    const accepted = this.accept(socket);
    if (accepted) this.serve(socket, accepted);
  }

  /**
   * Counts a new TCP connection against the caps, at accept: on the RTMPS
   * port before any TLS, so an address cannot hold more sockets there than
   * here. Undefined when the connection was closed at once (over a cap, and
   * no refusal slot left); it is released when the socket closes.
   */
  accept(socket: Socket): AcceptedConnection | undefined {
    const { log, metrics } = this.options;
    const remote = socket.remoteAddress ?? 'unknown';
    const { verdict, release } = this.caps.accept(clientAddressKey(socket.remoteAddress));
    if (verdict.kind === 'drop') {
      metrics.rtmpConnectionsRefused.inc({ reason: 'over_capacity' });
      log.warn({ remote }, 'RTMP connection closed at once: over the connection caps and no refusal slot left');
      socket.on('error', () => undefined);
      socket.destroy();
      return undefined;
    }
    metrics.rtmpConnections.set(this.caps.open);
    socket.on('close', () => {
      release();
      metrics.rtmpConnections.set(this.caps.open);
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.limits.keepaliveMs);
    if (verdict.kind === 'admit') return {};
    const limit = verdict.reason === 'server_full' ? this.limits.maxConnections : this.limits.maxConnectionsPerAddress;
    metrics.rtmpConnectionsRefused.inc({ reason: verdict.reason });
    log.warn({ remote, reason: verdict.reason, limit }, 'RTMP connection over a cap; its publish will be refused');
    const description =
      verdict.reason === 'server_full'
        ? `This ingest is full (${limit} connections); retry in a moment.`
        : `Too many connections from your address (at most ${limit} at once); close the others and retry.`;
    return { refusal: { at: 'publish', code: 'NetStream.Publish.Rejected', reason: verdict.reason, description } };
  }

  /**
   * Speaks RTMP on an accepted connection: its TCP socket, or the TLS socket
   * that decrypts it. `refusal` refuses the connection whatever its key
   * (plain RTMP on the RTMPS port); it goes before a cap's refusal.
   */
  serve(socket: Socket, accepted: AcceptedConnection, refusal: Refusal | undefined = accepted.refusal): void {
    socket.on('close', () => this.connections.delete(socket));
    const connection = new RtmpConnection(socket, {
      hub: this.options.hub,
      log: this.options.log,
      metrics: this.options.metrics,
      settings: { publishDeadlineMs: this.limits.publishDeadlineMs, maxMessageBytes: this.limits.maxMessageBytes },
      shuttingDown: () => this.shuttingDown,
      ...(refusal ? { refusal } : {}),
    });
    this.connections.set(socket, connection);
  }

  listen(): Promise<number> {
    return listenOn(this.server, this.options.port, this.options.host);
  }

  /**
   * Stops accepting connections; existing ones stay until closed. (Not
   * waiting for close's callback: it fires only once every connection is gone.)
   */
  stopListening(): void {
    this.shuttingDown = true;
    this.server.close();
  }

  /**
   * Closes every connection. One that has just been told why it is closed
   * (an onStatus error, e.g. "shutting down") keeps its short linger, so the
   * client reads the sentence instead of a reset; the promise waits for those.
   */
  async closeAll(): Promise<void> {
    const lingering: Array<Promise<void>> = [];
    for (const [socket, connection] of this.connections) {
      if (connection.isLingering) lingering.push(new Promise((resolve) => socket.once('close', () => resolve())));
      else socket.destroy();
    }
    await Promise.all(lingering);
  }
}
