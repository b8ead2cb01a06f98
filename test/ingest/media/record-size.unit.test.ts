// Decoder configuration records as an attacker writes them: the bound every
// parser applies before reading one (64 KiB), and records within it that
// carry tens of thousands of empty NAL units or OBUs, which the parsers walk
// without collecting (the issue 17 records took 682 MB and 1.3 GB of RSS).
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAudioSpecificConfig } from '../../../ingest/media/aac.ts';
import { parseAv1CodecConfigurationRecord } from '../../../ingest/media/av1.ts';
import { parseAvcDecoderConfigurationRecord } from '../../../ingest/media/h264.ts';
import { parseHevcDecoderConfigurationRecord } from '../../../ingest/media/hevc.ts';
import { parseOpusHead } from '../../../ingest/media/opus.ts';
import { MAX_CODEC_CONFIG_BYTES } from '../../../ingest/media/record-size.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));
/** The record of a fixture's first Enhanced RTMP video sequence start (after the 5-byte header). */
const realRecord = (name: string) =>
  Buffer.from(
    readFlvTags(fixture(name))
      .find((tag) => tag.type === 9 && (tag.body[0]! & 0x8f) === 0x80)!
      .body.subarray(5),
  );

t.test('every parser refuses a record over 64 KiB before reading it', async (t) => {
  t.equal(MAX_CODEC_CONFIG_BYTES, 64 * 1024);
  // The reported hvcC: 255 arrays of 65,535 empty NAL units (33 MB).
  const hvcC = Buffer.alloc(23 + 255 * (3 + 2 * 65535));
  hvcC[0] = 1;
  hvcC[22] = 255;
  const parsers: Array<[string, (r: Uint8Array) => unknown, Uint8Array]> = [
    ['hvcC', parseHevcDecoderConfigurationRecord, hvcC],
    ['av1C', parseAv1CodecConfigurationRecord, Buffer.concat([Buffer.from([0x81, 0, 0x0c, 0]), Buffer.alloc(8 * 1024 * 1024, Buffer.from([0x7a, 0]))])],
    ['avcC', parseAvcDecoderConfigurationRecord, Buffer.alloc(MAX_CODEC_CONFIG_BYTES + 1, 1)],
    ['AudioSpecificConfig', parseAudioSpecificConfig, Buffer.alloc(MAX_CODEC_CONFIG_BYTES + 1, 0x12)],
    ['OpusHead', parseOpusHead, Buffer.concat([Buffer.from('OpusHead'), Buffer.alloc(MAX_CODEC_CONFIG_BYTES, 1)])],
  ];
  for (const [name, parse, record] of parsers) {
    t.throws(() => parse(record), /bytes; at most 64 KiB is accepted/, `${name} of ${record.length} bytes`);
  }
});

t.test('an hvcC of 20,000 empty NAL units before its SPS: the SPS is found, nothing else kept', async (t) => {
  const real = realRecord('hevc-aac.flv');
  const empties = Buffer.alloc(3 + 2 * 20_000);
  empties.set([39, 20_000 >> 8, 20_000 & 0xff]); // an array of prefix SEI NAL units, all empty
  const record = Buffer.concat([real.subarray(0, 22), Buffer.from([real[22]! + 1]), empties, real.subarray(23)]);
  t.ok(record.length <= MAX_CODEC_CONFIG_BYTES, `${record.length} bytes, within the bound`);
  t.match(parseHevcDecoderConfigurationRecord(record), { width: 160, height: 90 }, 'the picture size of the real SPS');
  t.throws(() => parseHevcDecoderConfigurationRecord(record.subarray(0, record.length - 1)), /truncated NAL unit/, 'a record cut short is still refused');
});

t.test('an av1C of 30,000 empty OBUs before its sequence header: found; a broken tail is refused', async (t) => {
  const real = realRecord('av1-opus.flv');
  const record = Buffer.concat([real.subarray(0, 4), Buffer.alloc(2 * 30_000, Buffer.from([0x7a, 0])), real.subarray(4)]);
  t.match(parseAv1CodecConfigurationRecord(record), { width: 160, height: 90 });
  t.throws(
    () => parseAv1CodecConfigurationRecord(Buffer.concat([real, Buffer.from([0x0a, 0x05, 0x00])])),
    /truncated OBU/,
    'an OBU cut short after the sequence header',
  );
});
