// Moved to common/media-playlist.ts; kept while ingest/packager/stream-packager.ts imports it from here.
export { MediaPlaylist, RUN_HISTORY_FILE, type PlaylistSegment } from '../../common/media-playlist.ts';
