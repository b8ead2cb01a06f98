// One RTMP connection, from the first byte to the close: handshake, the
// commands a publisher sends (connect, createStream, publish, deleteStream),
// the key check inside `publish` before NetStream.Publish.Start, then media
// straight to the stream's packager.
//
// What a client can make this cost before its publish is admitted is fixed
// and small (see PRE_PUBLISH): messages of at most 64 KiB, at most 256 KiB in
// all, 32 commands, and a deadline. Every byte goes through our own strict
// parsers (handshake.ts, chunk-reader.ts, amf0.ts); whatever they refuse, and
// any fault of ours while handling it, closes this connection only, with a
// log line and a counter. Every refusal of a publish reaches the client as an
// onStatus error with a sentence it can show before the connection closes.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from '../../common/log.ts';
import { streamId } from '../../common/livestream.ts';
import type { IngestMetrics } from '../metrics.ts';
import { PublishLimitError, UnsupportedMediaError } from '../publish-errors.ts';
import type { LivePublish, StreamHub } from '../stream-hub.ts';
import { decodeAmf0, isAmfObject, type AmfValue } from './amf0.ts';
import { ChunkReader, type ChunkLimits, type RtmpMessage } from './chunk-reader.ts';
import { HANDSHAKE_SIZE, RTMP_VERSION, serverHandshake } from './handshake.ts';
import * as msg from './messages.ts';
import { RtmpProtocolError } from './protocol-error.ts';
import type { Refusal } from './refusal.ts';

/** Limits before a publish is admitted: enough for any client's commands, nothing more. */
export const PRE_PUBLISH = {
  maxMessageBytes: 64 * 1024,
  /** All bytes a connection may send before its publish is admitted (handshake included). */
  maxBytes: 256 * 1024,
  maxCommands: 32,
  maxAssembling: 8,
} as const;
/** Message streams (createStream) one connection may open. */
const MAX_MESSAGE_STREAMS = 8;
/** How long a refused client has to read our onStatus before the socket is destroyed. */
const REFUSAL_LINGER_MS = 2000;
const WINDOW_ACK_SIZE = 5_000_000;
/**
 * The smallest acknowledgement window we honour. A peer may ask for any
 * window, even 1 byte: an acknowledgement per socket read. Clients use
 * megabytes (ffmpeg and OBS 2.5 MB); below this one the acknowledgements come
 * less often than asked, which no client depends on.
 */
export const MIN_ACK_WINDOW = 256 * 1024;
/**
 * Bytes queued towards a client that is not reading, past which an
 * acknowledgement is not queued: the next one carries the total anyway.
 */
const MAX_UNSENT_ACK_BYTES = 64 * 1024;

export interface ConnectionSettings {
  publishDeadlineMs: number;
  maxMessageBytes: number;
}

export interface RtmpConnectionDeps {
  hub: StreamHub;
  log: Logger;
  metrics: IngestMetrics;
  settings: ConnectionSettings;
  /** True once the ingest is shutting down. */
  shuttingDown: () => boolean;
  /** Set when this connection is refused whatever its key. */
  refusal?: Refusal;
}

type Phase = 'version' | 'c1' | 'c2' | 'chunks';

export class RtmpConnection {
  readonly id = randomBytes(4).toString('hex');
  private readonly remote: string;
  private phase: Phase = 'version';
  private readonly handshake = Buffer.alloc(HANDSHAKE_SIZE);
  private handshakeLength = 0;
  private readonly reader = new ChunkReader({
    maxMessageBytes: PRE_PUBLISH.maxMessageBytes,
    maxBufferedBytes: PRE_PUBLISH.maxMessageBytes,
    maxAssembling: PRE_PUBLISH.maxAssembling,
  });
  /** Input not parsed yet: the rest of one socket read, kept while a publish is being admitted. */
  private pending: Buffer | undefined;
  private pendingOffset = 0;
  private received = 0;
  private ackWindow = 0;
  private lastAck = 0;
  private commands = 0;
  private app: string | undefined;
  private messageStreams = 0;
  private admitting = false;
  private live: LivePublish | undefined;
  private publishStreamId = 0;
  private unpublished = false;
  /** Refused or failed: input is read and dropped until the socket closes. */
  private closing = false;
  /** An onStatus error was sent: the socket stays open briefly so the client can read it. */
  private lingering = false;
  private readonly deadline: NodeJS.Timeout;

  constructor(
    private readonly socket: Socket,
    private readonly deps: RtmpConnectionDeps,
  ) {
    this.remote = socket.remoteAddress ?? 'unknown';
    this.deadline = setTimeout(() => this.deadlinePassed(), deps.settings.publishDeadlineMs);
    this.deadline.unref();
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('close', () => this.onClose());
    socket.on('error', (error) => deps.log.debug({ session: this.id, err: error.message }, 'RTMP socket error'));
  }

  /** Whether the connection is giving its client time to read a refusal before it closes. */
  get isLingering(): boolean {
    return this.lingering && !this.socket.destroyed;
  }

  private onData(data: Buffer): void {
    this.deps.metrics.receivedBytes.inc(data.length);
    this.received += data.length;
    if (this.closing) return;
    if (!this.live && this.received > PRE_PUBLISH.maxBytes) {
      this.fail(new RtmpProtocolError('preauth_bytes', `more than ${PRE_PUBLISH.maxBytes} bytes before a publish was admitted`));
      return;
    }
    if (this.pending) {
      this.pending = Buffer.concat([this.pending.subarray(this.pendingOffset), data]);
      this.pendingOffset = 0;
    } else {
      this.pending = data;
      this.pendingOffset = 0;
    }
    this.drain();
  }

  /** Parses and handles pending input until it runs out or a publish awaits its admission. */
  private drain(): void {
    try {
      while (this.pending && !this.admitting && !this.closing) {
        if (this.phase === 'chunks') {
          const { offset, message } = this.reader.read(this.pending, this.pendingOffset);
          this.pendingOffset = offset;
          if (message) this.dispatch(message);
        } else {
          this.pendingOffset = this.readHandshake(this.pending, this.pendingOffset);
        }
        if (this.pending && this.pendingOffset >= this.pending.length) this.pending = undefined;
      }
      this.acknowledge();
    } catch (error) {
      this.fail(error);
    }
  }

  private readHandshake(data: Buffer, offset: number): number {
    let at = offset;
    if (this.phase === 'version') {
      const version = data[at++]!;
      // 3 is plain RTMP; 6 and 8 are RTMPE, which we do not offer. Anything else is not RTMP
      // (often TLS: a client speaking rtmps:// to the plain port sends 0x16).
      if (version !== RTMP_VERSION) throw new RtmpProtocolError('handshake', `RTMP version byte ${version} (only 3 is supported)`);
      this.phase = 'c1';
      return at;
    }
    const n = Math.min(HANDSHAKE_SIZE - this.handshakeLength, data.length - at);
    data.copy(this.handshake, this.handshakeLength, at, at + n);
    this.handshakeLength += n;
    at += n;
    if (this.handshakeLength < HANDSHAKE_SIZE) return at;
    this.handshakeLength = 0;
    if (this.phase === 'c1') {
      this.write(serverHandshake(this.handshake));
      this.phase = 'c2';
    } else {
      this.phase = 'chunks'; // C2's content is not checked, as most servers do not
    }
    return at;
  }

  private dispatch(message: RtmpMessage): void {
    const { type, payload } = message;
    switch (type) {
      case msg.MSG_SET_CHUNK_SIZE:
        if (payload.length < 4) throw new RtmpProtocolError('chunk_size', 'Set Chunk Size shorter than 4 bytes');
        this.reader.setChunkSize(payload.readUInt32BE(0));
        return;
      case msg.MSG_ABORT:
        if (payload.length >= 4) this.reader.abort(payload.readUInt32BE(0));
        return;
      case msg.MSG_WINDOW_ACK_SIZE:
        if (payload.length >= 4) this.ackWindow = Math.max(MIN_ACK_WINDOW, payload.readUInt32BE(0));
        return;
      case msg.MSG_ACKNOWLEDGEMENT:
      case msg.MSG_USER_CONTROL:
      case msg.MSG_SET_PEER_BANDWIDTH:
      case msg.MSG_DATA_AMF0:
      case msg.MSG_DATA_AMF3:
      case msg.MSG_SHARED_OBJECT_AMF0:
      case msg.MSG_SHARED_OBJECT_AMF3:
      case msg.MSG_AGGREGATE:
        return; // nothing we act on (metadata is read from the codec configuration instead)
      case msg.MSG_AUDIO:
      case msg.MSG_VIDEO:
        this.media(message);
        return;
      case msg.MSG_COMMAND_AMF0:
        this.command(message, payload);
        return;
      case msg.MSG_COMMAND_AMF3:
        // An AMF3 command message is AMF0 after one format byte.
        this.command(message, payload.subarray(1));
        return;
      default:
        throw new RtmpProtocolError('message_type', `message type ${type} is not part of RTMP`);
    }
  }

  private command(message: RtmpMessage, payload: Buffer): void {
    if (!this.live && ++this.commands > PRE_PUBLISH.maxCommands) {
      throw new RtmpProtocolError('too_many_commands', `more than ${PRE_PUBLISH.maxCommands} commands before a publish`);
    }
    const values = decodeAmf0(payload);
    const [name, transactionId] = values;
    if (typeof name !== 'string' || typeof transactionId !== 'number') {
      throw new RtmpProtocolError('command', 'a command that does not start with its name and transaction id');
    }
    switch (name) {
      case 'connect':
        this.connect(transactionId, values[2]);
        return;
      case 'createStream':
        this.requireConnected(name);
        if (++this.messageStreams > MAX_MESSAGE_STREAMS) throw new RtmpProtocolError('command', `more than ${MAX_MESSAGE_STREAMS} createStream`);
        this.write(msg.command(0, '_result', transactionId, null, this.messageStreams));
        return;
      case 'publish': {
        this.requireConnected(name);
        const streamName = values[3];
        if (typeof streamName !== 'string') throw new RtmpProtocolError('command', 'publish without a stream name');
        this.publish(message.streamId, streamName);
        return;
      }
      case 'play':
        this.refuse(message.streamId, 'NetStream.Play.Failed', 'play_refused', 'Playback over RTMP is not offered; watch over HLS.');
        return;
      case 'deleteStream':
        // OBS's "Stop Streaming" (and ffmpeg at the end of its input) sends
        // deleteStream: a clean end. A connection that just drops does not.
        if (this.live) this.unpublished = true;
        return;
      default:
        return; // releaseStream, FCPublish, FCUnpublish, _checkbw…: nothing to do
    }
  }

  private connect(transactionId: number, commandObject: AmfValue): void {
    if (this.deps.refusal?.at === 'connect') {
      this.write(msg.setChunkSize(msg.OUT_CHUNK_SIZE)); // the chunk size our messages are cut at
      this.refuseOutright(0, this.deps.refusal);
      return;
    }
    if (this.app !== undefined) throw new RtmpProtocolError('command', 'a second connect');
    if (!isAmfObject(commandObject) || typeof commandObject.app !== 'string') throw new RtmpProtocolError('command', 'connect without an app name');
    this.app = commandObject.app;
    const objectEncoding = typeof commandObject.objectEncoding === 'number' ? commandObject.objectEncoding : 0;
    this.write(msg.windowAckSize(WINDOW_ACK_SIZE));
    this.write(msg.setPeerBandwidth(WINDOW_ACK_SIZE));
    this.write(msg.setChunkSize(msg.OUT_CHUNK_SIZE));
    this.write(
      msg.command(
        0,
        '_result',
        transactionId,
        { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
        {
          level: 'status',
          code: 'NetConnection.Connect.Success',
          description: 'Connection succeeded.',
          objectEncoding,
        },
      ),
    );
  }

  private requireConnected(command: string): void {
    if (this.app === undefined) throw new RtmpProtocolError('command', `${command} before connect`);
  }

  private publish(rtmpStreamId: number, streamName: string): void {
    if (this.live || this.admitting) return;
    if (this.deps.refusal) {
      this.refuseOutright(rtmpStreamId, this.deps.refusal);
      return;
    }
    const key = streamName.split('?')[0] ?? '';
    // Nothing more is parsed until the decision; the kernel holds what the client sends meanwhile.
    this.admitting = true;
    this.socket.pause();
    this.deps.hub
      .admit(this.app ?? '', key, () => this.ended())
      .then(async (admission) => {
        this.admitting = false;
        if (!admission.ok) {
          this.refuse(rtmpStreamId, admission.code, admission.reason, admission.description);
          return;
        }
        if (this.socket.destroyed) {
          await admission.publish.end(true);
          return;
        }
        clearTimeout(this.deadline);
        this.live = admission.publish;
        this.publishStreamId = rtmpStreamId;
        const max = this.deps.settings.maxMessageBytes;
        // An admitted publisher's messages are allocated whole at their header (one copy per byte).
        this.reader.setLimits({
          maxMessageBytes: max,
          maxBufferedBytes: 2 * max,
          maxAssembling: PRE_PUBLISH.maxAssembling,
          preallocate: true,
        } satisfies ChunkLimits);
        this.write(msg.onStatus(rtmpStreamId, 'status', 'NetStream.Publish.Start', 'Publishing.'));
        this.deps.log.info({ stream: streamId(admission.publish.ref), session: this.id, remote: this.remote }, 'publish accepted');
        this.drain();
        this.socket.resume();
      })
      .catch((error: unknown) => {
        // A fault of ours while admitting: the streamer is told, and may retry (the hub let the stream go).
        this.admitting = false;
        this.deps.log.error({ session: this.id, remote: this.remote, err: (error as Error)?.message ?? String(error) }, 'admitting a publish failed');
        this.deps.metrics.publishes.inc({ outcome: 'internal_error' });
        this.refuse(
          rtmpStreamId,
          'NetStream.Publish.Failed',
          'internal_error',
          'The ingest could not start this publish because of a fault on its side; retry in a moment.',
        );
      });
  }

  private media(message: RtmpMessage): void {
    const live = this.live;
    if (!live) return; // media before an admitted publish is dropped unread
    try {
      if (message.type === msg.MSG_VIDEO) live.session.video(message.timestamp, message.payload, Date.now());
      else live.session.audio(message.timestamp, message.payload);
    } catch (error) {
      this.unpublished = true;
      if (error instanceof UnsupportedMediaError) {
        this.deps.metrics.publishes.inc({ outcome: 'unsupported_codec' });
        this.refuse(this.publishStreamId, 'NetStream.Publish.Rejected', 'unsupported_codec', capitalized(error.message));
        return;
      }
      if (error instanceof PublishLimitError) {
        this.deps.metrics.publishes.inc({ outcome: error.reason });
        this.refuse(this.publishStreamId, 'NetStream.Publish.Rejected', error.reason, error.message);
        return;
      }
      this.deps.log.error({ stream: streamId(live.ref), session: this.id, err: (error as Error).message }, 'packaging failed; ending the publish');
      this.refuse(
        this.publishStreamId,
        'NetStream.Publish.Failed',
        'packaging_failed',
        'The ingest could not package this stream; it has ended it. Reconnect to start again.',
      );
    }
  }

  /** The hub ends the publish (shutdown, the key revoked, the stream disabled or claimed elsewhere): say so, then close. */
  private ended(): void {
    this.unpublished = true;
    if (this.deps.shuttingDown()) {
      this.refuse(
        this.publishStreamId,
        'NetStream.Publish.Stop',
        'shutting_down',
        'This ingest is shutting down; reconnect to continue the stream on another one.',
      );
    } else {
      this.refuse(
        this.publishStreamId,
        'NetStream.Publish.Stop',
        'ended_by_ingest',
        'The ingest ended this publish: the stream was disabled, its key changed, or it went live elsewhere.',
      );
    }
  }

  private refuseOutright(rtmpStreamId: number, { code, reason, description }: Refusal): void {
    this.deps.metrics.publishes.inc({ outcome: reason });
    this.refuse(rtmpStreamId, code, reason, description);
  }

  /** Tells the client why (an onStatus error), then closes once it has had time to read it. */
  private refuse(rtmpStreamId: number, code: string, reason: string, description: string): void {
    if (this.closing) return;
    this.closing = true;
    this.pending = undefined;
    clearTimeout(this.deadline);
    const stream = this.live ? streamId(this.live.ref) : undefined;
    this.deps.log.warn(
      { session: this.id, remote: this.remote, reason, ...(stream ? { stream } : {}) },
      `${this.live ? 'publish ended' : 'publish refused'}: ${description}`,
    );
    this.write(msg.onStatus(rtmpStreamId, 'error', code, description));
    this.lingering = true;
    this.socket.end();
    // Keep reading (and dropping) what the client sends: a client blocked
    // writing into a full window would never read the status.
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), REFUSAL_LINGER_MS).unref();
  }

  private fail(error: unknown): void {
    if (this.socket.destroyed) return;
    this.closing = true;
    this.pending = undefined;
    const protocolError = error instanceof RtmpProtocolError ? error : undefined;
    const reason = protocolError?.reason ?? 'internal';
    const fields = { session: this.id, remote: this.remote, reason, err: (error as Error)?.message ?? String(error) };
    if (protocolError) this.deps.log.warn(fields, 'RTMP protocol error; closing the connection');
    else this.deps.log.error(fields, 'RTMP protocol error (a fault in the ingest); closing the connection');
    this.deps.metrics.rtmpProtocolErrors.inc({ reason });
    this.socket.destroy();
  }

  private deadlinePassed(): void {
    // A publish being admitted has shown a well-formed, known key; its claim
    // (a Kubernetes Lease) has time limits of its own.
    if (this.live || this.admitting || this.closing || this.socket.destroyed) return;
    const stage = this.phase !== 'chunks' ? 'handshake' : this.app === undefined ? 'connect' : 'publish';
    this.deps.log.info(
      { session: this.id, remote: this.remote, stage },
      `no publish within ${this.deps.settings.publishDeadlineMs / 1000} s of connecting; closing the connection`,
    );
    this.deps.metrics.rtmpDeadlineCloses.inc({ stage });
    this.closing = true;
    this.socket.destroy();
  }

  /** Acknowledges received bytes at the window the client asked for, as the protocol expects. */
  private acknowledge(): void {
    if (this.ackWindow <= 0 || this.received - this.lastAck < this.ackWindow || this.closing) return;
    if (this.socket.writableLength > MAX_UNSENT_ACK_BYTES) return;
    this.lastAck = this.received;
    this.write(msg.acknowledgement(this.received));
  }

  private write(data: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  private onClose(): void {
    clearTimeout(this.deadline);
    this.pending = undefined;
    const live = this.live;
    this.live = undefined;
    if (!live) return;
    this.deps.log.info(
      { stream: streamId(live.ref), session: this.id, clean: this.unpublished },
      this.unpublished ? 'publish ended' : 'publisher dropped; waiting for it to reconnect',
    );
    live.end(this.unpublished).catch((error: unknown) => {
      this.deps.log.error({ stream: streamId(live.ref), session: this.id, err: (error as Error).message }, 'ending the publish failed');
    });
  }
}

function capitalized(sentence: string): string {
  const text = sentence.charAt(0).toUpperCase() + sentence.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
