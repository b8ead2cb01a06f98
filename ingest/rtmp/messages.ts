// What the server sends: protocol control messages and AMF0 commands, chunked
// with our own chunk size. Every message we send is small.
import { encodeAmf0, type AmfValue } from './amf0.ts';

export const MSG_SET_CHUNK_SIZE = 1;
export const MSG_ABORT = 2;
export const MSG_ACKNOWLEDGEMENT = 3;
export const MSG_USER_CONTROL = 4;
export const MSG_WINDOW_ACK_SIZE = 5;
export const MSG_SET_PEER_BANDWIDTH = 6;
export const MSG_AUDIO = 8;
export const MSG_VIDEO = 9;
export const MSG_DATA_AMF3 = 15;
export const MSG_SHARED_OBJECT_AMF3 = 16;
export const MSG_COMMAND_AMF3 = 17;
export const MSG_DATA_AMF0 = 18;
export const MSG_SHARED_OBJECT_AMF0 = 19;
export const MSG_COMMAND_AMF0 = 20;
export const MSG_AGGREGATE = 22;

/** The chunk size we announce and send with. */
export const OUT_CHUNK_SIZE = 4096;
const CONTROL_CSID = 2;
const COMMAND_CSID = 3;

function encodeMessage(csid: number, type: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header[0] = csid; // type 0 header, one-byte basic header (csid < 64)
  header.writeUIntBE(0, 1, 3);
  header.writeUIntBE(payload.length, 4, 3);
  header[7] = type;
  header.writeUInt32LE(streamId, 8);
  const parts: Buffer[] = [header];
  for (let off = 0; off < payload.length; off += OUT_CHUNK_SIZE) {
    if (off > 0) parts.push(Buffer.from([0xc0 | csid]));
    parts.push(payload.subarray(off, off + OUT_CHUNK_SIZE));
  }
  return Buffer.concat(parts);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

export const setChunkSize = (size: number) => encodeMessage(CONTROL_CSID, MSG_SET_CHUNK_SIZE, 0, u32(size));
export const windowAckSize = (size: number) => encodeMessage(CONTROL_CSID, MSG_WINDOW_ACK_SIZE, 0, u32(size));
export const acknowledgement = (received: number) => encodeMessage(CONTROL_CSID, MSG_ACKNOWLEDGEMENT, 0, u32(received));
export const setPeerBandwidth = (size: number) => encodeMessage(CONTROL_CSID, MSG_SET_PEER_BANDWIDTH, 0, Buffer.concat([u32(size), Buffer.from([2])]));

export function command(streamId: number, ...values: AmfValue[]): Buffer {
  return encodeMessage(COMMAND_CSID, MSG_COMMAND_AMF0, streamId, encodeAmf0(...values));
}

/** onStatus: how a server tells a client what became of its publish. */
export function onStatus(streamId: number, level: 'status' | 'error', code: string, description: string): Buffer {
  return command(streamId, 'onStatus', 0, null, { level, code, description });
}
