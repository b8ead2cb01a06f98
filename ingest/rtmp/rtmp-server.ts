// The RTMP listener. node-media-server v4 speaks the protocol (handshake,
// chunking, AMF commands); this module decides what a connection may do:
//
// - The key is checked inside the `publish` command, before the server
//   answers NetStream.Publish.Start, so a refused publisher gets a proper
//   error status and no media is ever accepted from it.
// - Media goes straight from the session to the stream's packager. We do not
//   route it through node-media-server's BroadcastServer: that saves two
//   buffer copies per packet and sidesteps its traps (it emits postPublish
//   for a second publisher before refusing it, keeps a dropped publisher's
//   path in a grace window of its own, and broadcasts packets from sessions
//   it has refused).
// - node-media-server logs every stream path, and the path holds the key, so
//   its logger is silenced; this module logs stream names, never keys.
// - RTMP playback is not offered: viewers watch HLS through the CDN.
import { createServer, type Server, type Socket } from 'node:net';
import RtmpSession from 'node-media-server/src/session/rtmp_session.js';
import nmsLogger from 'node-media-server/src/core/logger.js';
import type { Logger } from '../../common/log.ts';
import { streamId } from '../../common/livestream.ts';
import type { IngestMetrics } from '../metrics.ts';
import { UnsupportedMediaError } from '../packager/publish-session.ts';
import type { LivePublish, StreamHub } from '../stream-hub.ts';

nmsLogger.log = () => undefined;

const FLV_AUDIO = 8;
const FLV_VIDEO = 9;

class IngestRtmpSession extends RtmpSession {
  private live: LivePublish | undefined;
  private unpublished = false;
  private refused = false;

  constructor(
    socket: Socket,
    private readonly hub: StreamHub,
    private readonly log: Logger,
    private readonly metrics: IngestMetrics,
  ) {
    super(socket);
    const rtmp = this.rtmp;
    rtmp.onPublish = (command) => void this.handlePublish(command);
    rtmp.onPlay = () => this.refuse(rtmp.parserPacket.header.stream_id, 'NetStream.Play.Failed', 'play_refused', 'Playback over RTMP is not offered; watch over HLS.');
    // OBS's "Stop Streaming" (and ffmpeg at the end of its input) sends
    // deleteStream: a clean end. A connection that just drops does not.
    rtmp.onDeleteStream = () => {
      this.unpublished = true;
    };
  }

  // node-media-server's own publish/play/connect handling is replaced by handlePublish.
  override onConnect = () => undefined;
  override onPush = () => undefined;
  override onPlay = () => undefined;

  override onPacket = (packet: { codec_type: number; dts: number; size: number; data: Buffer }) => {
    const live = this.live;
    if (!live) return;
    // node-media-server reuses its payload buffer for the next message: copy.
    const body = Uint8Array.prototype.slice.call(packet.data, 0, packet.size);
    try {
      if (packet.codec_type === FLV_VIDEO) live.session.video(packet.dts, body, Date.now());
      else if (packet.codec_type === FLV_AUDIO) live.session.audio(packet.dts, body);
    } catch (error) {
      if (!(error instanceof UnsupportedMediaError)) throw error;
      this.log.warn({ stream: streamId(live.ref), session: this.id, remote: this.ip }, `publish ended: ${error.message}`);
      this.metrics.publishes.inc({ outcome: 'unsupported_codec' });
      this.unpublished = true;
      this.socket.destroy();
    }
  };

  override onData = (data: Buffer) => {
    this.metrics.receivedBytes.inc(data.length);
    this.inBytes += data.length;
    const err = (this.rtmp as unknown as { parserData(d: Buffer): string | null }).parserData(data);
    if (err != null) {
      this.log.warn({ session: this.id, remote: this.ip }, 'RTMP protocol error; closing the connection');
      this.socket.destroy();
    }
  };

  override onClose = () => {
    const live = this.live;
    this.live = undefined;
    if (live) {
      this.log.info({ stream: streamId(live.ref), session: this.id, clean: this.unpublished }, this.unpublished ? 'publish ended' : 'publisher dropped; waiting for it to reconnect');
      void live.end(this.unpublished);
    }
  };

  override onError = (error: Error) => {
    this.log.debug({ session: this.id, err: error.message }, 'RTMP socket error');
  };

  private async handlePublish(command: { streamName?: unknown }): Promise<void> {
    const rtmp = this.rtmp;
    const rtmpStreamId = rtmp.parserPacket.header.stream_id;
    if (this.live || this.refused) return;
    const raw = typeof command.streamName === 'string' ? command.streamName : '';
    const key = raw.split('?')[0] ?? '';
    // Hold further input until the decision: nothing is parsed meanwhile.
    this.socket.pause();
    const admission = await this.hub.admit(rtmp.streamApp, key, () => {
      this.unpublished = true;
      this.socket.destroy();
    });
    if (!admission.ok) {
      this.refuse(rtmpStreamId, admission.code, admission.reason, admission.description);
      return;
    }
    if (this.socket.destroyed) {
      await admission.publish.end(true);
      return;
    }
    this.live = admission.publish;
    rtmp.streamName = key;
    rtmp.streamId = rtmpStreamId;
    rtmp.sendStatusMessage(rtmpStreamId, 'status', 'NetStream.Publish.Start', 'Publishing.');
    this.isPublisher = true;
    this.log.info({ stream: streamId(admission.publish.ref), session: this.id, remote: this.ip }, 'publish accepted');
    this.socket.resume();
  }

  private refuse(rtmpStreamId: number, code: string, reason: string, description: string): void {
    this.refused = true;
    this.log.warn({ session: this.id, remote: this.ip, reason }, `publish refused: ${description}`);
    try {
      this.rtmp.sendStatusMessage(rtmpStreamId, 'error', code, description);
    } catch {
      // the socket may already be gone
    }
    this.socket.end();
    // Do not wait on a client that keeps the connection half-open.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
}

export interface RtmpServerOptions {
  host: string;
  port: number;
  hub: StreamHub;
  log: Logger;
  metrics: IngestMetrics;
}

export class RtmpServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly options: RtmpServerOptions) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.setNoDelay(true);
      const session = new IngestRtmpSession(socket, options.hub, options.log, options.metrics);
      session.run();
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : this.options.port);
      });
    });
  }

  /**
   * Stops accepting connections; existing ones stay until closed. (Not
   * waiting for close's callback: it fires only once every connection is gone.)
   */
  stopListening(): void {
    this.server.close();
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}
