// The encoder TTEOK_TRANSCODER names: none, local ffmpeg, or the transcoder role.
import { LocalRenditionEncoder } from './local-encoder.ts';
import { RemoteRenditionEncoder } from './remote-encoder.ts';
import type { RenditionConfig } from './config.ts';
import type { RenditionEncoder } from './rendition-encoder.ts';

export function createRenditionEncoder(config: RenditionConfig): RenditionEncoder | undefined {
  if (config.transcoder === 'local') return new LocalRenditionEncoder({ ffmpeg: config.ffmpeg });
  if (config.transcoder === 'remote' && config.transcoderUrl) return new RemoteRenditionEncoder({ url: config.transcoderUrl });
  return undefined;
}
