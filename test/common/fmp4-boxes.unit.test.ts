// The fMP4 helpers the transcoder puts renditions on the source's timeline
// with (common/fmp4-boxes.ts), on the segments the ingest's packager writes
// and on what ffmpeg's muxer writes.
import t from 'tap';
import { clearDeclaredBitrates, decodeStarts, Fmp4Error, initTracks, shiftDecodeStarts, splitFragmentedMp4, videoFrameRate } from '../../common/fmp4-boxes.ts';
import { DEFAULT_ENCODING_LIMITS, encodeRenditions } from '../../common/transcode/rendition-encoding.ts';
import { sourceSegments } from '../transcoder/source-segments.ts';

t.test("the packager's segments: tracks, decode start, frame rate", async (t) => {
  const [first, second] = await sourceSegments(t, { size: '426x240', rate: 25, seconds: 3 });
  const tracks = initTracks(first!.init);
  t.same(
    tracks.map((x) => [x.kind, x.width, x.height]),
    [
      ['video', 426, 240],
      ['audio', 0, 0],
    ],
  );
  const a = decodeStarts(first!.data, tracks).get('video')!;
  const b = decodeStarts(second!.data, tracks).get('video')!;
  t.ok(Math.abs(b - a - first!.duration) < 0.05, `the second segment starts where the first ends (${a} + ${first!.duration} ≈ ${b})`);
  t.ok(Math.abs(videoFrameRate(second!.data, tracks)! - 25) < 0.5, '25 fps');
});

t.test('shifting decode starts, and refusing what is not fMP4', async (t) => {
  const [source] = await sourceSegments(t, { size: '426x240', seconds: 2 });
  const segment = new Uint8Array(source!.data);
  const tracks = initTracks(source!.init);
  shiftDecodeStarts(segment, tracks, new Map([['video', 100]]));
  t.equal(decodeStarts(segment, tracks).get('video'), 100);
  t.equal(decodeStarts(segment, tracks).get('audio'), decodeStarts(source!.data, tracks).get('audio'), 'a kind not given stays');
  t.throws(() => initTracks(new TextEncoder().encode('garbage!garbage!')), Fmp4Error);
  t.throws(() => splitFragmentedMp4(source!.init), /no media fragment/);
});

t.test('ffmpeg measures the bit rate of each segment into its init segment; cleared, two segments give the same bytes', async (t) => {
  const segments = await sourceSegments(t, { size: '426x240', seconds: 3 });
  const [one, two] = await Promise.all(
    segments.slice(0, 2).map((s) => encodeRenditions({ init: s.init, segment: s.data, presets: ['160p'] }, DEFAULT_ENCODING_LIMITS)),
  );
  t.same(Buffer.from(one![0]!.init), Buffer.from(two![0]!.init), 'cleared inits are equal');
  const copy = new Uint8Array(one![0]!.init);
  clearDeclaredBitrates(copy);
  t.same(Buffer.from(copy), Buffer.from(one![0]!.init), 'clearing is idempotent');
});
