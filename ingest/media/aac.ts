// AAC decoder configuration from the RTMP sequence header's AudioSpecificConfig.
import type { AudioConfig } from './media-config.ts';
import { checkRecordSize } from './record-size.ts';

export interface AacConfig extends AudioConfig {
  format: 'aac';
}

const SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export function parseAudioSpecificConfig(asc: Uint8Array): AacConfig {
  checkRecordSize(asc, 'AudioSpecificConfig');
  if (asc.length < 2) throw new Error('AudioSpecificConfig is shorter than 2 bytes');
  let pos = 0;
  const read = (n: number) => {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = asc[pos >> 3];
      if (byte === undefined) throw new Error('truncated AudioSpecificConfig');
      v = (v << 1) | ((byte >> (7 - (pos & 7))) & 1);
      pos++;
    }
    return v;
  };
  let objectType = read(5);
  if (objectType === 31) objectType = 32 + read(6);
  const rateIndex = read(4);
  const sampleRate = rateIndex === 15 ? read(24) : SAMPLE_RATES[rateIndex];
  if (!sampleRate) throw new Error(`AudioSpecificConfig has an invalid sampling frequency index ${rateIndex}`);
  const channelConfig = read(4);
  // channelConfiguration 7 means 7.1 (8 channels); 0 means "in the program config element": assume stereo.
  const channels = channelConfig === 7 ? 8 : channelConfig === 0 ? 2 : channelConfig;
  return { format: 'aac', codec: `mp4a.40.${objectType}`, sampleRate, channels, description: asc };
}
