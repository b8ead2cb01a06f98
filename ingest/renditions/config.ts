// The ingest's rows for renditions and thumbnails (spread into INGEST_ENV):
// whether and where source segments are encoded, and how often a thumbnail
// is taken.
import { ConfigError, envVar, readEnv, type Env, type EnvTable } from '../../common/env-config.ts';
import { FFMPEG_ENV } from '../../common/transcode/encoding-env.ts';

export const RENDITION_ENV = {
  transcoder: envVar.choice(
    'TTEOK_TRANSCODER',
    'off',
    ['off', 'local', 'remote'],
    'who encodes renditions and thumbnails: off (none), local (ffmpeg child processes of the ingest: the one-machine mode), remote (the transcoder role at TTEOK_TRANSCODER_URL)',
  ),
  transcoderUrl: envVar.optional('TTEOK_TRANSCODER_URL', 'with TTEOK_TRANSCODER=remote: the transcoder Service, e.g. http://tteok-transcoder:9938'),
  thumbnailSeconds: envVar.number(
    'TTEOK_THUMBNAIL_SECONDS',
    10,
    0,
    3600,
    "how often a live stream's thumbnail.jpg is refreshed (0: no thumbnails); needs TTEOK_TRANSCODER",
  ),
  ...FFMPEG_ENV,
} satisfies EnvTable;

export interface RenditionConfig {
  transcoder: 'off' | 'local' | 'remote';
  /** With `remote`: the transcoder's base URL. */
  transcoderUrl: string | undefined;
  /** 0: no thumbnails. */
  thumbnailMs: number;
  ffmpeg: string;
}

export function readRenditionConfig(env: Env): RenditionConfig {
  const v = readEnv(RENDITION_ENV, env);
  if (v.transcoder === 'remote') {
    if (!v.transcoderUrl) throw new ConfigError('TTEOK_TRANSCODER_URL is required when TTEOK_TRANSCODER is "remote"');
    let url: URL;
    try {
      url = new URL(v.transcoderUrl);
    } catch {
      throw new ConfigError(`TTEOK_TRANSCODER_URL must be an http:// URL, got "${v.transcoderUrl}"`);
    }
    if (url.protocol !== 'http:') throw new ConfigError(`TTEOK_TRANSCODER_URL must be an http:// URL, got "${v.transcoderUrl}"`);
  }
  return { transcoder: v.transcoder, transcoderUrl: v.transcoderUrl, thumbnailMs: Math.round(v.thumbnailSeconds * 1000), ffmpeg: v.ffmpeg };
}
