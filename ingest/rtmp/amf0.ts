// AMF0, the encoding of RTMP commands: a strict decoder for what clients send
// and an encoder for our replies. The decoder reads only inside the given
// bytes, bounds nesting (a recursive reader would overflow the stack on a few
// KB of nested objects) and never builds objects with a prototype, so a
// "__proto__" key is just a key. Anything it does not understand is an
// RtmpProtocolError; RTMP commands use none of the rarer types (references,
// typed objects, AMF3 switches).
import { RtmpProtocolError } from './protocol-error.ts';

export type AmfValue = number | boolean | string | null | undefined | Date | AmfObject | AmfValue[];
export interface AmfObject {
  [key: string]: AmfValue;
}

const MAX_DEPTH = 16;

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;

class Reader {
  offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(n: number): void {
    if (n > this.remaining) throw new RtmpProtocolError('amf', `AMF0 value runs past the end of the message (needs ${n} bytes, ${this.remaining} left)`);
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.offset++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.bytes.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.bytes.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  utf8(length: number): string {
    this.need(length);
    const s = this.bytes.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return s;
  }
}

function readValue(r: Reader, depth: number): AmfValue {
  if (depth > MAX_DEPTH) throw new RtmpProtocolError('amf', `AMF0 values nested deeper than ${MAX_DEPTH}`);
  const marker = r.u8();
  switch (marker) {
    case NUMBER:
      return r.f64();
    case BOOLEAN:
      return r.u8() !== 0;
    case STRING:
      return r.utf8(r.u16());
    case LONG_STRING:
      return r.utf8(r.u32());
    case NULL:
      return null;
    case UNDEFINED:
      return undefined;
    case OBJECT:
      return readProperties(r, depth);
    case ECMA_ARRAY:
      r.u32(); // a count hint only; the properties end with the end marker
      return readProperties(r, depth);
    case STRICT_ARRAY: {
      const count = r.u32();
      // Every value takes at least one byte: a larger count is a lie.
      if (count > r.remaining) throw new RtmpProtocolError('amf', `AMF0 strict array of ${count} values in ${r.remaining} bytes`);
      const values: AmfValue[] = [];
      for (let i = 0; i < count; i++) values.push(readValue(r, depth + 1));
      return values;
    }
    case DATE: {
      const ms = r.f64();
      r.u16(); // time zone, unused by AMF0 writers
      return new Date(ms);
    }
    default:
      throw new RtmpProtocolError('amf', `unsupported AMF0 type marker 0x${marker.toString(16).padStart(2, '0')}`);
  }
}

function readProperties(r: Reader, depth: number): AmfObject {
  const object: AmfObject = Object.create(null) as AmfObject;
  for (;;) {
    const key = r.utf8(r.u16());
    if (key === '') {
      if (r.u8() !== OBJECT_END) throw new RtmpProtocolError('amf', 'AMF0 object with an empty key that is not its end');
      return object;
    }
    object[key] = readValue(r, depth + 1);
  }
}

/** Decodes every value in the bytes (a command: name, transaction id, arguments). */
export function decodeAmf0(bytes: Buffer): AmfValue[] {
  const r = new Reader(bytes);
  const values: AmfValue[] = [];
  while (r.remaining > 0) values.push(readValue(r, 0));
  return values;
}

export function isAmfObject(value: AmfValue): value is AmfObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Encodes our own replies: numbers, booleans, strings, null and plain objects of those. */
export function encodeAmf0(...values: AmfValue[]): Buffer {
  const parts: Buffer[] = [];
  const key = (k: string) => {
    const b = Buffer.from(k, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    parts.push(len, b);
  };
  const write = (v: AmfValue): void => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = NUMBER;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') {
      parts.push(Buffer.from([BOOLEAN, v ? 1 : 0]));
    } else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      if (b.length > 0xffff) throw new Error('string too long for an AMF0 reply');
      const head = Buffer.alloc(3);
      head[0] = STRING;
      head.writeUInt16BE(b.length, 1);
      parts.push(head, b);
    } else if (v === null) {
      parts.push(Buffer.from([NULL]));
    } else if (v === undefined) {
      parts.push(Buffer.from([UNDEFINED]));
    } else if (isAmfObject(v)) {
      parts.push(Buffer.from([OBJECT]));
      for (const [k, value] of Object.entries(v)) {
        key(k);
        write(value);
      }
      parts.push(Buffer.from([0, 0, OBJECT_END]));
    } else {
      throw new Error('unsupported value in an AMF0 reply');
    }
  };
  for (const v of values) write(v);
  return Buffer.concat(parts);
}
