// tteok playback tokens: CloudFront Function (runtime cloudfront-js-2.0),
// viewer-request. The same rule as common/playback-token.ts
// (authorizeMediaPath), in this runtime's JavaScript; a test runs both on the
// same requests and requires the same answers.
//
// - /_t/<token>/<rest>: <rest> must be a private stream's media path
//   (<prefix>/_private/<namespace>/<name>/index.m3u8, …/<rendition>.m3u8,
//   …/thumbnail.jpg, …/<run>/<file> or …/<run>/<rendition>/<file>) and the
//   token valid now for that stream under that prefix; the token is then
//   removed from the URI, before the cache lookup, so every viewer shares one
//   cached copy. `_t` is not a DNS label, so no namespace collides with it.
// - any other URI with a _private segment (also percent-encoded): 403.
// - everything else (public streams): passed on unchanged.
//
// Token (v2): <kid>.<expires>.<hex HMAC-SHA256 of
// "tteok-playback-v2\n<kid>\n<expires>\n<prefix>/_private/<namespace>/<name>">
// (the path as it stands in the URI; without a prefix "_private/<namespace>/<name>"),
// keyed with the secret stored in the KeyValueStore under "token-key-<kid>".
import cf from 'cloudfront';
import crypto from 'crypto';

const kvs = cf.kvs();
const TOKEN = /^([A-Za-z0-9_-]{1,16})\.([1-9][0-9]{0,11})\.([0-9a-f]{64})$/;
// The files of a stream's folder: its playlist, a rendition's playlist (by a
// rendition name: source, track1-track99, the presets), the thumbnail, and a
// run folder's init and media segments, the source's directly and another
// rendition's in a folder of its own (common/renditions.ts).
const PRIVATE_PATH =
  /^\/((?:[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\/)*)_private\/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?)\/(index\.m3u8|thumbnail\.jpg|(?:source|track[1-9][0-9]?|1080p|720p|480p|360p|160p|audio)\.m3u8|[A-Za-z0-9][A-Za-z0-9_-]{0,127}\/(?:(?:track[1-9][0-9]?|1080p|720p|480p|360p|160p|audio)\/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.(?:mp4|m4s))$/;

function forbidden(reason) {
  return {
    statusCode: 403,
    statusDescription: 'Forbidden',
    headers: {
      'content-type': { value: 'text/plain' },
      'cache-control': { value: 'no-store' },
      'access-control-allow-origin': { value: '*' },
      'x-tteok-denied': { value: reason },
    },
  };
}

function mentionsPrivate(uri) {
  let decoded;
  try {
    decoded = decodeURIComponent(uri);
  } catch (e) {
    return true;
  }
  return decoded.split(/[/\\]/).some((segment) => segment === '_private');
}

// Equal-length hex strings; compares every character whatever the first difference.
function sameSignature(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

async function secretOf(kid) {
  try {
    return await kvs.get('token-key-' + kid);
  } catch (e) {
    return undefined; // no such key id
  }
}

async function handler(event) {
  const request = event.request;
  const uri = request.uri;
  if (uri.startsWith('/_t/')) {
    const slash = uri.indexOf('/', 4);
    if (slash < 0) return forbidden('no path after the token');
    const token = uri.slice(4, slash);
    const rest = uri.slice(slash);
    const path = PRIVATE_PATH.exec(rest);
    if (!path) return forbidden("a token is only for a private stream's media");
    const parts = TOKEN.exec(token);
    if (!parts) return forbidden('token malformed');
    const kid = parts[1];
    const expires = Number(parts[2]);
    if (expires * 1000 <= Date.now()) return forbidden('token expired');
    const secret = await secretOf(kid);
    if (secret === undefined) return forbidden('token unknown-key');
    const expected = crypto
      .createHmac('sha256', secret)
      .update('tteok-playback-v2\n' + kid + '\n' + expires + '\n' + path[1] + '_private/' + path[2] + '/' + path[4])
      .digest('hex');
    if (!sameSignature(parts[3], expected)) return forbidden('token bad-signature');
    request.uri = rest;
    return request;
  }
  if (mentionsPrivate(uri)) return forbidden('a private stream needs a playback token');
  return request;
}
