// Where a stream's media lives, on the ingest's media volume and in the object
// store. The ingest writes it, the gateway serves and follows it, and the
// controller deletes it: one definition for all three.
//
//   <prefix>/<namespace>/<name>/index.m3u8              stable playlist key (short-lived cache)
//   <prefix>/<namespace>/<name>/<run>/init-<n>.mp4       init segment, one per publish session
//   <prefix>/<namespace>/<name>/<run>/<n>-<seq>.m4s      media segments (cached forever)
//   <prefix>/<namespace>/<name>/<rendition>.m3u8         with an adaptive ladder: each rendition's
//   <prefix>/<namespace>/<name>/<run>/<rendition>/…      playlist and segments (common/renditions.ts)
//
// LL-HLS parts (`<run>/<n>.<k>.part.m4s`, part k of segment n) exist only in
// the memory of the ingest holding the stream, never here (common/low-latency.ts).
//
// <run> is unique per publish session and never reused, so every segment name
// is unique for all time and CDNs can cache segments as immutable. The stream
// key appears nowhere in this layout. A private stream's objects live under
// `<prefix>/_private/<namespace>/<name>/…` (common/playback-token.ts).
import type { StreamRef } from './livestream.ts';

export const PLAYLIST_FILE = 'index.m3u8';

export function streamPrefix(ref: StreamRef, prefix = ''): string {
  return joinKey(prefix, ref.namespace, ref.name);
}

export function playlistKey(ref: StreamRef, prefix = ''): string {
  return joinKey(prefix, ref.namespace, ref.name, PLAYLIST_FILE);
}

/**
 * A playlist in a stream's folder: `index.m3u8`, and a ladder's media
 * playlists (`source.m3u8`, `480p.m3u8`, …; common/renditions.ts), not the
 * run's history (`history.m3u8`, media-playlist.ts), which is stored as its own kind.
 */
export function isPlaylistUri(uri: string): boolean {
  return /^[A-Za-z0-9_-]+\.m3u8$/.test(uri) && uri !== 'history.m3u8';
}

/** The session folder of a URI a stream's playlist names ("<session>/<file>", or "<session>/<rendition>/<file>"). */
export function sessionFolderOf(uri: string): string {
  return uri.split('/')[0]!;
}

export function joinKey(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p.length > 0)
    .join('/');
}

export function contentTypeFor(key: string): string {
  if (key.endsWith('.m3u8')) return 'application/vnd.apple.mpegurl';
  if (key.endsWith('.m4s') || key.endsWith('.mp4')) return 'video/mp4';
  if (key.endsWith('.jpg')) return 'image/jpeg';
  return 'application/octet-stream';
}

export const SEGMENT_CACHE_CONTROL = 'public, max-age=31536000, immutable';

/** The thumbnail (thumbnail.jpg beside the playlist) is refreshed about every 10 s: a CDN holds it only briefly. */
export const THUMBNAIL_CACHE_CONTROL = 'public, max-age=5';

/** Playlists are cached for at most half a segment, so a CDN never holds the live edge back by more. */
export function playlistCacheControl(maxAgeSeconds: number): string {
  return `public, max-age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
}
