// RTMP as raw bytes, for tests that talk to the ingest the way an attacker or
// a broken client would: a blind handshake, hand-made chunks and AMF0
// commands, and a socket whose close can be awaited. Written independently of
// the ingest's own protocol code so the two do not share a bug.
import { connect, type Socket } from 'node:net';

/** C0 + C1 + C2 sent blindly: the server never checks C2 against S1. */
export function clientHandshake(): Buffer {
  const c1 = Buffer.alloc(1536);
  for (let i = 8; i < c1.length; i++) c1[i] = (i * 31) & 0xff;
  return Buffer.concat([Buffer.from([3]), c1, c1]);
}

type Amf = number | string | boolean | null | undefined | { [k: string]: Amf };

export function amf0(...values: Amf[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const write = (v: Amf): void => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = 0;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.from([1, v ? 1 : 0]));
    else if (typeof v === 'string') parts.push(Buffer.from([2]), str(v));
    else if (v === null) parts.push(Buffer.from([5]));
    else if (v === undefined) parts.push(Buffer.from([6]));
    else {
      parts.push(Buffer.from([3]));
      for (const [k, value] of Object.entries(v)) {
        parts.push(str(k));
        write(value);
      }
      parts.push(Buffer.from([0, 0, 9]));
    }
  };
  for (const v of values) write(v);
  return Buffer.concat(parts);
}

export interface ChunkOptions {
  csid?: number;
  type: number;
  streamId?: number;
  timestamp?: number;
  chunkSize?: number;
  /** The length the header declares; defaults to the payload's. */
  declaredLength?: number;
}

/** One message as chunks: a type 0 header, then type 3 continuations. */
export function chunk(payload: Buffer, o: ChunkOptions): Buffer {
  const csid = o.csid ?? 3;
  const chunkSize = o.chunkSize ?? 128;
  const header = Buffer.alloc(12);
  header[0] = csid & 0x3f;
  header.writeUIntBE(o.timestamp ?? 0, 1, 3);
  header.writeUIntBE(o.declaredLength ?? payload.length, 4, 3);
  header[7] = o.type;
  header.writeUInt32LE(o.streamId ?? 0, 8);
  const parts: Buffer[] = [header];
  for (let off = 0; off < payload.length; off += chunkSize) {
    if (off > 0) parts.push(Buffer.from([0xc0 | (csid & 0x3f)]));
    parts.push(payload.subarray(off, off + chunkSize));
  }
  return Buffer.concat(parts);
}

export const command = (values: Amf[], o: Partial<ChunkOptions> = {}) => chunk(amf0(...values), { type: 20, ...o });

export const connectCommand = (app = 'live', extra: Record<string, Amf> = { tcUrl: 'rtmp://127.0.0.1/live' }) =>
  command(['connect', 1, { app, type: 'nonprivate', flashVer: 'FMLE/3.0', ...extra }]);
export const createStreamCommand = () => command(['createStream', 2, null]);
export const publishCommand = (key: string) => command(['publish', 3, null, key, 'live'], { csid: 8, streamId: 1 });

export interface RawConnection {
  socket: Socket;
  received(): Buffer;
  closed: Promise<void>;
  isClosed(): boolean;
  send(data: Buffer): void;
}

export function openRaw(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    const chunks: Buffer[] = [];
    let isClosed = false;
    const closed = new Promise<void>((r) =>
      socket.once('close', () => {
        isClosed = true;
        r();
      }),
    );
    socket.on('data', (d) => {
      if (chunks.length < 1000) chunks.push(d);
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed,
        isClosed: () => isClosed,
        send: (data) => {
          if (!socket.destroyed) socket.write(data);
        },
      });
    });
    socket.once('error', reject);
  });
}

/** VmRSS of a process in bytes (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** VmHWM of a process in bytes (Linux): the peak resident set since it started, so a brief spike is not missed. */
export async function peakRssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) * 1024;
}
