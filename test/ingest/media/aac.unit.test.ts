// The AAC sequence header (AudioSpecificConfig): sample rate and channel
// count for the init segment, from real ffmpeg AAC with ffprobe as reference.
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAudioTag } from '../../../ingest/media/flv-tag.ts';
import { parseAudioSpecificConfig } from '../../../ingest/media/aac.ts';
import { encodeFlv, ffprobe, tempDir } from '../../fixtures/media.ts';

const CASES = [
  { sampleRate: 44100, channels: 1 },
  { sampleRate: 44100, channels: 2 },
  { sampleRate: 48000, channels: 1 },
  { sampleRate: 48000, channels: 2 },
  { sampleRate: 48000, channels: 6 }, // 5.1
  { sampleRate: 48000, channels: 8 }, // 7.1: channelConfiguration 7
  { sampleRate: 32000, channels: 2 },
];

function audioConfig(path: string): Uint8Array {
  for (const tag of readFlvTags(path)) {
    if (tag.type !== 8) continue;
    const audio = parseAudioTag(tag.body);
    if (audio.kind === 'audio-config') return audio.config;
  }
  throw new Error(`${path} has no AAC sequence header`);
}

interface Probe {
  streams: Array<{ sample_rate: string; channels: number; profile: string }>;
}

const dir = tempDir(t);
const encoded = await Promise.all(
  CASES.map(async (c) => {
    const path = await encodeFlv(dir, `aac-${c.sampleRate}-${c.channels}.flv`, { video: false, seconds: 0.1, ...c });
    const probe = await ffprobe<Probe>(['-show_entries', 'stream=sample_rate,channels,profile', path]);
    return { path, probe: probe.streams[0]! };
  }),
);

t.test('sample rate and channels from real ffmpeg AAC', async (t) => {
  CASES.forEach((c, i) => {
    const { path, probe } = encoded[i]!;
    t.test(`${c.sampleRate} Hz, ${c.channels} channel(s)`, async (t) => {
      t.equal(Number(probe.sample_rate), c.sampleRate, 'ffmpeg encoded the rate asked for');
      t.equal(probe.channels, c.channels, 'ffmpeg encoded the channels asked for');
      const asc = audioConfig(path);
      const config = parseAudioSpecificConfig(asc);
      t.equal(config.sampleRate, Number(probe.sample_rate));
      t.equal(config.channels, probe.channels);
      t.equal(probe.profile, 'LC');
      t.equal(config.codec, 'mp4a.40.2', 'AAC-LC is object type 2');
      t.equal(config.description, asc, 'the config is passed through as the decoder description');
    });
  });
});

/** Packs fields (bit count, value) into bytes, zero-padded. */
function bits(...fields: Array<[number, number]>): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let n = 0;
  for (const [width, value] of fields) {
    for (let i = width - 1; i >= 0; i--) {
      acc = (acc << 1) | (Math.floor(value / 2 ** i) % 2);
      if (++n === 8) {
        out.push(acc);
        acc = 0;
        n = 0;
      }
    }
  }
  if (n > 0) out.push(acc << (8 - n));
  return Uint8Array.from(out);
}

t.test('escape codes of the AudioSpecificConfig', async (t) => {
  const explicitRate = parseAudioSpecificConfig(bits([5, 2], [4, 15], [24, 22222], [4, 2]));
  t.equal(explicitRate.sampleRate, 22222, 'frequency index 15 is followed by the rate itself');
  t.equal(explicitRate.channels, 2);
  const extendedType = parseAudioSpecificConfig(bits([5, 31], [6, 42 - 32], [4, 3], [4, 1]));
  t.equal(extendedType.codec, 'mp4a.40.42', 'object type 31 escapes to 32 + 6 bits');
  t.equal(extendedType.sampleRate, 48000);
  t.equal(extendedType.channels, 1);
  t.equal(parseAudioSpecificConfig(bits([5, 2], [4, 4], [4, 7])).channels, 8, 'channelConfiguration 7 is 7.1');
});

t.test('truncated or invalid configs throw', async (t) => {
  const real = audioConfig(encoded[1]!.path);
  t.throws(() => parseAudioSpecificConfig(new Uint8Array()), Error, 'empty');
  t.throws(() => parseAudioSpecificConfig(real.subarray(0, 1)), /shorter than 2 bytes/, 'one byte of a real config');
  // An explicit 24-bit rate needs 5 bytes; 2 are given.
  const explicit = bits([5, 2], [4, 15], [24, 22222], [4, 2]);
  t.throws(() => parseAudioSpecificConfig(explicit.subarray(0, 2)), /truncated AudioSpecificConfig/, 'explicit rate cut short');
  // 11 + 4 + 24 bits before the channel field: 5 bytes hold only its first bit.
  const escaped = bits([5, 31], [6, 10], [4, 15], [24, 22222], [4, 2]);
  t.equal(parseAudioSpecificConfig(escaped).channels, 2, 'the whole config parses');
  t.throws(() => parseAudioSpecificConfig(escaped.subarray(0, 5)), /truncated AudioSpecificConfig/, 'channel field cut off');
  t.throws(() => parseAudioSpecificConfig(bits([5, 2], [4, 13], [4, 2])), /sampling frequency index 13/, 'reserved frequency index');
});
