// Low-Latency HLS between the ingest that holds a live stream and whoever
// serves viewers (the gateway, as the CDN's origin for playlists and parts):
// the one contract both sides build on.
//
// The ingest keeps each live stream's LL media playlists and their parts in
// memory (parts never go to the object store: a PUT per part would multiply
// the PUT bill) and answers blocking playlist requests (`_HLS_msn`,
// `_HLS_part`, RFC 8216bis §6.2.5.2). Full segments still go to the object
// store as before. Over HTTP, the ingest serves
//
//   GET /ll/<namespace>/<name>/<file>?_HLS_msn=&_HLS_part=&_HLS_skip=
//
// on its HTTP port, where <file> is a file of the stream's folder as the
// media layout names it (common/object-layout.ts), plus parts:
// `<run>/[<rendition>/]<n>-<seq>.<k>.part.m4s` (part k of segment <n>-<seq>).
// In the one-machine mode the gateway calls the ingest's LowLatencySource in
// process instead.
import type { StreamRef } from './livestream.ts';

/** The ingest's HTTP path prefix for LL requests. */
export const LOW_LATENCY_PATH_PREFIX = '/ll';

/** A part's file name ends so: what the CDN routes to the LL origin (`*.part.m4s`). */
export const PART_FILE_SUFFIX = '.part.m4s';

/** The query parameters of a blocking playlist request, as received (validated by parseBlockingQuery). */
export interface BlockingQuery {
  _HLS_msn?: string;
  _HLS_part?: string;
  _HLS_skip?: string;
}

export interface LowLatencyRequest {
  ref: StreamRef;
  /** A file of the stream's folder: `index.m3u8`, `<rendition>.m3u8`, a part, a segment or an init segment. */
  file: string;
  /** Parsed with parseBlockingQuery; only for playlists. */
  blocking: BlockingRequest;
}

/** What a blocking request asks for: the playlist once it holds segment `msn` (and its part `part`). */
export interface BlockingRequest {
  msn?: number;
  part?: number;
  /** `_HLS_skip=YES` (or `v2`): a delta update. */
  skip?: 'YES' | 'v2';
}

export interface LowLatencyResponse {
  /** 200, or an error: 400 bad blocking parameters, 404 not held here or gone, 503 not ready within the blocking limit. */
  status: number;
  contentType: string;
  cacheControl: string;
  body: Uint8Array;
}

export interface LowLatencySource {
  /** Answers at once, or once what a blocking request asks for exists (bounded by the server); `signal` aborts the wait. */
  serve(request: LowLatencyRequest, signal: AbortSignal): Promise<LowLatencyResponse>;
}

/** `_HLS_msn` and `_HLS_part` are decimal integers (RFC 8216bis); a part without a segment number is an error. */
export function parseBlockingQuery(query: BlockingQuery): BlockingRequest | { error: string } {
  const out: BlockingRequest = {};
  const integer = /^(0|[1-9][0-9]{0,15})$/;
  if (query._HLS_msn !== undefined) {
    if (!integer.test(query._HLS_msn)) return { error: '_HLS_msn must be a decimal integer' };
    out.msn = Number(query._HLS_msn);
  }
  if (query._HLS_part !== undefined) {
    if (out.msn === undefined) return { error: '_HLS_part needs _HLS_msn' };
    if (!integer.test(query._HLS_part)) return { error: '_HLS_part must be a decimal integer' };
    out.part = Number(query._HLS_part);
  }
  if (query._HLS_skip !== undefined) {
    if (query._HLS_skip !== 'YES' && query._HLS_skip !== 'v2') return { error: '_HLS_skip must be YES or v2' };
    out.skip = query._HLS_skip;
  }
  return out;
}
