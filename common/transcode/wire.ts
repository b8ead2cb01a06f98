// The transcoder's HTTP bodies (transcoder/ serves them, the ingest's
// RemoteRenditionEncoder sends and reads them). Binary, length-prefixed,
// big-endian, no JSON around media:
//
//   request  (POST /v1/renditions?presets=720p,360p, POST /v1/thumbnail)
//            Content-Type: application/vnd.tteok.segment
//            u32 init length | init segment | media segment (the rest of the body)
//
//   response (200 of /v1/renditions)
//            Content-Type: application/vnd.tteok.renditions
//            zero or more records, back to back, to the end of the body:
//            u8 name length | name (ASCII) | u32 init length | init | u32 segment length | segment
//
//   response (200 of /v1/thumbnail): Content-Type: image/jpeg, the JPEG.
//
// Errors are JSON: { statusCode, error, message }, the message a sentence.

export const SEGMENT_CONTENT_TYPE = 'application/vnd.tteok.segment';
export const RENDITIONS_CONTENT_TYPE = 'application/vnd.tteok.renditions';

export class WireError extends Error {
  override name = 'WireError';
}

export interface FramedSegment {
  init: Uint8Array;
  segment: Uint8Array;
}

export interface FramedRendition {
  rendition: string;
  init: Uint8Array;
  segment: Uint8Array;
}

export function encodeSegmentBody(input: FramedSegment): Uint8Array {
  const body = new Uint8Array(4 + input.init.length + input.segment.length);
  new DataView(body.buffer).setUint32(0, input.init.length);
  body.set(input.init, 4);
  body.set(input.segment, 4 + input.init.length);
  return body;
}

export function decodeSegmentBody(body: Uint8Array): FramedSegment {
  if (body.length < 4) throw new WireError('the body is shorter than its 4-byte init segment length');
  const initLength = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  if (4 + initLength > body.length) throw new WireError(`the init segment length (${initLength}) runs past the end of the body (${body.length} bytes)`);
  const segment = body.subarray(4 + initLength);
  if (initLength === 0 || segment.length === 0) throw new WireError('the body needs both an init segment and a media segment');
  return { init: body.subarray(4, 4 + initLength), segment };
}

export function encodeRenditionsBody(renditions: FramedRendition[]): Uint8Array {
  const names = renditions.map((r) => new TextEncoder().encode(r.rendition));
  const size = renditions.reduce((n, r, i) => n + 1 + names[i]!.length + 8 + r.init.length + r.segment.length, 0);
  const body = new Uint8Array(size);
  const view = new DataView(body.buffer);
  let at = 0;
  renditions.forEach((r, i) => {
    const name = names[i]!;
    if (name.length > 255) throw new WireError(`rendition name too long: ${r.rendition}`);
    body[at++] = name.length;
    body.set(name, at);
    at += name.length;
    for (const part of [r.init, r.segment]) {
      view.setUint32(at, part.length);
      body.set(part, at + 4);
      at += 4 + part.length;
    }
  });
  return body;
}

export function decodeRenditionsBody(body: Uint8Array): FramedRendition[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: FramedRendition[] = [];
  let at = 0;
  const take = (length: number, what: string): Uint8Array => {
    if (at + length > body.length) throw new WireError(`the renditions body ends inside a ${what}`);
    const part = body.subarray(at, at + length);
    at += length;
    return part;
  };
  const length = (what: string): number => {
    take(4, `${what} length`);
    return view.getUint32(at - 4);
  };
  while (at < body.length) {
    const nameLength = body[at++]!;
    const rendition = new TextDecoder().decode(take(nameLength, 'name'));
    const init = take(length('init segment'), 'init segment');
    const segment = take(length('media segment'), 'media segment');
    out.push({ rendition, init, segment });
  }
  return out;
}
