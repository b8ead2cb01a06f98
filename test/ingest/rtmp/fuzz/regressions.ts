// Byte sequences that ended (or wedged) the ingest with node-media-server's
// parser, or would end a careless one, each named after what it does. The
// fuzz test replays them first; test/ingest/rtmp/hardening.test.ts checks each
// closes only its own connection. A crash the fuzzer finds is added here.
import { amf0, chunk, clientHandshake, command, connectCommand, createStreamCommand } from '../../../../harness/rtmp-wire.ts';

export interface RegressionCase {
  name: string;
  why: string;
  bytes: Buffer;
  /** How the ingest ends the connection now: refusing the input, or the publish deadline (the input is valid, just no publish). */
  closedBy: 'protocol_error' | 'deadline';
}

const handshake = clientHandshake();

export const REGRESSIONS: RegressionCase[] = [
  {
    name: 'connect-without-tcUrl',
    why: "node-media-server's onConnect ran new URL(undefined) and the TypeError escaped the socket's data handler",
    bytes: Buffer.concat([handshake, command(['connect', 1, { app: 'live' }])]),
    closedBy: 'deadline',
  },
  {
    name: 'three-byte-amf-invoke',
    why: 'amf.js read a string length past the end of a 3-byte invoke (00 01 02) and threw a RangeError',
    bytes: Buffer.concat([handshake, chunk(Buffer.from([0x00, 0x01, 0x02]), { type: 20 })]),
    closedBy: 'protocol_error',
  },
  {
    name: 'publish-without-stream-name',
    why: 'node-media-server called split() on a missing publish stream name',
    bytes: Buffer.concat([handshake, connectCommand(), createStreamCommand(), command(['publish', 3, null], { csid: 8, streamId: 1 })]),
    closedBy: 'protocol_error',
  },
  {
    name: 'set-chunk-size-zero',
    why: 'node-media-server accepted a chunk size of 0, after which its payload arithmetic is NaN',
    bytes: Buffer.concat([handshake, chunk(Buffer.from([0, 0, 0, 0]), { csid: 2, type: 1 }), connectCommand()]),
    closedBy: 'protocol_error',
  },
  {
    name: 'deeply-nested-amf-object',
    why: 'thousands of nested AMF objects: a recursive decoder without a depth bound overflows the stack',
    bytes: Buffer.concat([handshake, chunk(Buffer.concat([amf0('connect', 1), Buffer.from([0x03]), Buffer.from('000003'.repeat(6000), 'hex')]), { type: 20 })]),
    closedBy: 'protocol_error',
  },
];
