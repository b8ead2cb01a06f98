// The one configuration row both encoders of renditions read: which ffmpeg
// (the transcoder role, and the ingest when it runs ffmpeg itself with
// TTEOK_TRANSCODER=local).
import { envVar } from '../env-config.ts';

export const FFMPEG_ENV = {
  ffmpeg: envVar.string('TTEOK_FFMPEG', 'ffmpeg', 'the ffmpeg binary that encodes renditions and thumbnails (a path, or a name on PATH)'),
};
