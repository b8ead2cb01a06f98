// Byte sequences that once ended the ingest process, each named after what it
// does. The fuzz test replays them first; test/rtmp-hardening.test.ts checks
// each closes only its own connection. A crash the fuzzer finds is added here.
import { amf0, chunk, clientHandshake, command, connectCommand, createStreamCommand } from '../harness/rtmp-wire.ts';

export interface RegressionCase {
  name: string;
  why: string;
  bytes: Buffer;
}

const handshake = clientHandshake();

export const REGRESSIONS: RegressionCase[] = [
  {
    name: 'connect-without-tcUrl',
    why: "node-media-server's onConnect ran new URL(undefined) and the TypeError escaped the socket's data handler",
    bytes: Buffer.concat([handshake, command(['connect', 1, { app: 'live' }])]),
  },
  {
    name: 'three-byte-amf-invoke',
    why: "amf.js read a string length past the end of a 3-byte invoke (00 01 02) and threw a RangeError",
    bytes: Buffer.concat([handshake, chunk(Buffer.from([0x00, 0x01, 0x02]), { type: 20 })]),
  },
  {
    name: 'publish-without-stream-name',
    why: "node-media-server called split() on a missing publish stream name",
    bytes: Buffer.concat([handshake, connectCommand(), createStreamCommand(), command(['publish', 3, null], { csid: 8, streamId: 1 })]),
  },
  {
    name: 'set-chunk-size-zero',
    why: 'a chunk size of 0 made the payload arithmetic NaN and left the parser wedged',
    bytes: Buffer.concat([handshake, chunk(Buffer.from([0, 0, 0, 0]), { csid: 2, type: 1 }), connectCommand()]),
  },
  {
    name: 'deeply-nested-amf-object',
    why: 'a recursive AMF decoder overflows the stack on thousands of nested objects',
    bytes: Buffer.concat([handshake, chunk(Buffer.concat([amf0('connect', 1), Buffer.from([0x03]), Buffer.from('000003'.repeat(6000), 'hex')]), { type: 20 })]),
  },
];
