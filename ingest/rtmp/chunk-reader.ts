// Reassembles RTMP messages from the chunk stream, strictly and within limits.
//
// Until a publish is admitted, memory follows what a client has actually
// sent, never what it declares: a message's buffer starts small and grows as
// its bytes arrive, and the limits (message size, bytes held across
// unfinished messages, chunk streams being assembled at once, chunk stream
// ids ever used) are checked at each header, before anything is allocated.
// Once admitted (the connection raises the limits then), a message is
// allocated whole at its first header, as long as the bytes held stay within
// the limit, so each byte is copied once; a message that arrives whole in
// one chunk of one socket read is not copied at all (its payload is a view of
// the read, which Node allocates fresh for each read). Anything outside the
// protocol or the limits is an RtmpProtocolError and the connection closes.
import { RtmpProtocolError } from './protocol-error.ts';

export interface RtmpMessage {
  type: number;
  streamId: number;
  timestamp: number;
  payload: Buffer;
}

export interface ChunkLimits {
  /** Largest message a header may declare. */
  maxMessageBytes: number;
  /** Bytes held across all messages not yet complete. */
  maxBufferedBytes: number;
  /** Chunk streams with a message under way at once. */
  maxAssembling: number;
  /**
   * Allocate a message's whole declared length at its first header (counted
   * as held at once, so within maxBufferedBytes), rather than growing its
   * buffer as bytes arrive. Only for an admitted publisher: one copy per byte.
   */
  preallocate?: boolean;
}

/** Distinct chunk stream ids a connection may use (clients use a handful). */
export const MAX_CHUNK_STREAM_IDS = 64;
/** The protocol's largest chunk size (a 3-byte length field can hold no more). */
export const MAX_CHUNK_SIZE = 0xffffff;
const FIRST_GROWTH = 4096;
const HEADER_SIZES = [11, 7, 3, 0];

interface ChunkStream {
  /** The last timestamp field (absolute for type 0, a delta otherwise), extended timestamp applied. */
  timestampField: number;
  /** Whether that field was 0xFFFFFF, so every chunk of the message carries 4 more bytes. */
  extended: boolean;
  timestamp: number;
  length: number;
  type: number;
  streamId: number;
  /** A message is under way on this chunk stream. */
  assembling: boolean;
  /** Its bytes so far (empty until its first bytes are copied). */
  buffer: Buffer;
  received: number;
  /** Its buffer was allocated whole, and its length counted as held, at its header. */
  preallocated: boolean;
}

const EMPTY = Buffer.alloc(0);

export class ChunkReader {
  private chunkSize = 128;
  private readonly streams = new Map<number, ChunkStream>();
  private assembling = 0;
  /** Bytes held for unfinished messages: those received, or the whole length of a preallocated one. */
  private bufferedBytes = 0;
  private readonly header = Buffer.alloc(18);
  private headerLength = 0;
  /** The chunk stream whose chunk payload is being read, and how much of it is left. */
  private current: ChunkStream | undefined;
  private chunkLeft = 0;

  constructor(private limits: ChunkLimits) {}

  setLimits(limits: ChunkLimits): void {
    this.limits = limits;
  }

  setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE)
      throw new RtmpProtocolError('chunk_size', `chunk size ${size} is outside 1–${MAX_CHUNK_SIZE}`);
    this.chunkSize = size;
  }

  /** Drops a message under way (the Abort message). */
  abort(csid: number): void {
    const stream = this.streams.get(csid);
    if (!stream?.assembling) return;
    this.release(stream);
    if (this.current === stream) this.current = undefined;
  }

  /**
   * Reads from `data` at `offset` until one message is complete or the data
   * ends. Returns where it stopped and the message, if one completed.
   */
  read(data: Buffer, offset: number): { offset: number; message?: RtmpMessage } {
    let at = offset;
    while (at < data.length) {
      if (!this.current) {
        at = this.readHeader(data, at);
        if (!this.current) return { offset: at };
        const done = this.emptyMessage();
        if (done) return { offset: at, message: done };
        continue;
      }
      const stream = this.current;
      const available = data.length - at;
      if (stream.received === 0 && this.chunkLeft === stream.length && available >= stream.length) {
        this.current = undefined;
        this.release(stream);
        return {
          offset: at + stream.length,
          message: { type: stream.type, streamId: stream.streamId, timestamp: stream.timestamp, payload: this.whole(data, at, stream.length) },
        };
      }
      const n = Math.min(this.chunkLeft, available);
      this.append(stream, data, at, n);
      at += n;
      this.chunkLeft -= n;
      if (this.chunkLeft > 0) continue;
      this.current = undefined;
      if (stream.received === stream.length) {
        const payload = stream.buffer;
        this.release(stream);
        return { offset: at, message: { type: stream.type, streamId: stream.streamId, timestamp: stream.timestamp, payload } };
      }
    }
    return { offset: at };
  }

  /**
   * A message that arrived whole in one chunk of one read. A view of the read
   * costs nothing, but keeps the whole read alive for as long as the muxer
   * holds the frame (until its segment is cut), so it is taken only when the
   * message is most of the read; a small one among others is copied out.
   */
  private whole(data: Buffer, at: number, length: number): Buffer {
    if (this.bufferedBytes + length > this.limits.maxBufferedBytes) {
      throw new RtmpProtocolError('buffer_limit', `more than ${this.limits.maxBufferedBytes} bytes held in unfinished messages`);
    }
    if (length * 2 >= data.length) return data.subarray(at, at + length);
    const copy = Buffer.allocUnsafe(length);
    data.copy(copy, 0, at, at + length);
    return copy;
  }

  /** A zero-length message is complete as soon as its header is. */
  private emptyMessage(): RtmpMessage | undefined {
    const stream = this.current!;
    if (stream.length !== 0) return undefined;
    this.current = undefined;
    this.release(stream);
    return { type: stream.type, streamId: stream.streamId, timestamp: stream.timestamp, payload: Buffer.alloc(0) };
  }

  private append(stream: ChunkStream, data: Buffer, at: number, n: number): void {
    const needed = stream.received + n;
    if (stream.received === 0 && this.limits.preallocate && this.bufferedBytes + stream.length <= this.limits.maxBufferedBytes) {
      stream.preallocated = true;
      stream.buffer = Buffer.allocUnsafeSlow(stream.length);
      this.bufferedBytes += stream.length;
    }
    if (!stream.preallocated) {
      if (this.bufferedBytes + n > this.limits.maxBufferedBytes) {
        throw new RtmpProtocolError('buffer_limit', `more than ${this.limits.maxBufferedBytes} bytes held in unfinished messages`);
      }
      if (needed > stream.buffer.length) {
        const grown = Buffer.allocUnsafeSlow(Math.min(stream.length, Math.max(stream.buffer.length * 2, needed, FIRST_GROWTH)));
        stream.buffer.copy(grown, 0, 0, stream.received);
        stream.buffer = grown;
      }
      this.bufferedBytes += n;
    }
    data.copy(stream.buffer, stream.received, at, at + n);
    stream.received = needed;
  }

  private release(stream: ChunkStream): void {
    if (!stream.assembling) return;
    this.bufferedBytes -= stream.preallocated ? stream.length : stream.received;
    this.assembling -= 1;
    stream.assembling = false;
    stream.preallocated = false;
    stream.buffer = EMPTY;
    stream.received = 0;
  }

  /** Bytes the header being read needs in all, as far as the bytes so far tell. */
  private headerNeeds(): number {
    const h = this.header;
    if (this.headerLength < 1) return 1;
    const low = h[0]! & 0x3f;
    const basic = low === 0 ? 2 : low === 1 ? 3 : 1;
    if (this.headerLength < basic) return basic;
    const fmt = h[0]! >> 6;
    const base = basic + HEADER_SIZES[fmt]!;
    if (this.headerLength < base) return base;
    const extended = fmt < 3 ? h.readUIntBE(basic, 3) === 0xffffff : this.streamFor(this.csid(), fmt).extended;
    return extended ? base + 4 : base;
  }

  private csid(): number {
    const h = this.header;
    const low = h[0]! & 0x3f;
    if (low === 0) return 64 + h[1]!;
    if (low === 1) return 64 + h[1]! + h[2]! * 256;
    return low;
  }

  private streamFor(csid: number, fmt: number): ChunkStream {
    const known = this.streams.get(csid);
    if (known) return known;
    if (fmt !== 0) throw new RtmpProtocolError('chunk_stream', `chunk stream ${csid} starts with a type ${fmt} header, which needs an earlier one`);
    if (this.streams.size >= MAX_CHUNK_STREAM_IDS) throw new RtmpProtocolError('chunk_stream', `more than ${MAX_CHUNK_STREAM_IDS} chunk stream ids`);
    const stream: ChunkStream = {
      timestampField: 0,
      extended: false,
      timestamp: 0,
      length: 0,
      type: 0,
      streamId: 0,
      assembling: false,
      buffer: EMPTY,
      received: 0,
      preallocated: false,
    };
    this.streams.set(csid, stream);
    return stream;
  }

  private readHeader(data: Buffer, offset: number): number {
    let at = offset;
    for (;;) {
      const needs = this.headerNeeds();
      if (this.headerLength >= needs) break;
      if (at >= data.length) return at;
      const n = Math.min(needs - this.headerLength, data.length - at);
      data.copy(this.header, this.headerLength, at, at + n);
      this.headerLength += n;
      at += n;
    }
    this.applyHeader();
    this.headerLength = 0;
    return at;
  }

  private applyHeader(): void {
    const h = this.header;
    const fmt = h[0]! >> 6;
    const low = h[0]! & 0x3f;
    const basic = low === 0 ? 2 : low === 1 ? 3 : 1;
    const csid = this.csid();
    const stream = this.streamFor(csid, fmt);
    if (stream.assembling && fmt !== 3) {
      throw new RtmpProtocolError(
        'chunk_stream',
        `a type ${fmt} header on chunk stream ${csid} interrupts a message ${stream.received}/${stream.length} bytes in`,
      );
    }
    let p = basic;
    if (fmt <= 2) {
      const field = h.readUIntBE(p, 3);
      p += 3;
      stream.extended = field === 0xffffff;
      if (fmt <= 1) {
        stream.length = h.readUIntBE(p, 3);
        stream.type = h[p + 3]!;
        p += 4;
      }
      if (fmt === 0) {
        stream.streamId = h.readUInt32LE(p);
        p += 4;
      }
      stream.timestampField = stream.extended ? h.readUInt32BE(p) : field;
      stream.timestamp = fmt === 0 ? stream.timestampField : (stream.timestamp + stream.timestampField) >>> 0;
    } else if (!stream.assembling) {
      // A type 3 header starting a new message repeats the previous delta.
      stream.timestamp = (stream.timestamp + stream.timestampField) >>> 0;
    }
    if (!stream.assembling) this.begin(stream);
    this.current = stream;
    this.chunkLeft = Math.min(this.chunkSize, stream.length - stream.received);
  }

  private begin(stream: ChunkStream): void {
    const { maxMessageBytes, maxAssembling } = this.limits;
    if (stream.length > maxMessageBytes) {
      throw new RtmpProtocolError('message_too_large', `a message declares ${stream.length} bytes; the limit here is ${maxMessageBytes}`);
    }
    if (this.assembling >= maxAssembling) {
      throw new RtmpProtocolError('chunk_stream', `more than ${maxAssembling} chunk streams with a message under way`);
    }
    this.assembling += 1;
    stream.assembling = true;
    stream.received = 0;
  }
}
