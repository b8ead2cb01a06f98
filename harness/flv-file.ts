// Reads the tags of an FLV file: lets unit tests feed the packager real
// encoder output without a network in between.
import { readFileSync } from 'node:fs';

export interface FlvTag {
  type: 8 | 9 | 18;
  timestampMs: number;
  body: Uint8Array;
}

export function readFlvTags(path: string): FlvTag[] {
  const data = readFileSync(path);
  if (data.toString('latin1', 0, 3) !== 'FLV') throw new Error(`${path} is not an FLV file`);
  const tags: FlvTag[] = [];
  let pos = data.readUInt32BE(5) + 4;
  while (pos + 11 <= data.length) {
    const type = data[pos]! as 8 | 9 | 18;
    const size = data.readUIntBE(pos + 1, 3);
    const timestampMs = data.readUIntBE(pos + 4, 3) | (data[pos + 7]! << 24);
    const body = data.subarray(pos + 11, pos + 11 + size);
    if (body.length < size) break;
    tags.push({ type, timestampMs, body });
    pos += 11 + size + 4;
  }
  return tags;
}
