// The transcoder's binary framing (common/transcode/wire.ts): what one side
// writes the other reads back, and a truncated or lying body is refused with
// a sentence, never read past its end.
import t from 'tap';
import { decodeRenditionsBody, decodeSegmentBody, encodeRenditionsBody, encodeSegmentBody, WireError } from '../../../common/transcode/wire.ts';

const bytes = (...values: number[]) => new Uint8Array(values);

t.test('a segment body round-trips', async (t) => {
  const body = encodeSegmentBody({ init: bytes(1, 2, 3), segment: bytes(4, 5) });
  t.same([...body], [0, 0, 0, 3, 1, 2, 3, 4, 5]);
  const back = decodeSegmentBody(body);
  t.same([...back.init], [1, 2, 3]);
  t.same([...back.segment], [4, 5]);
});

t.test('a segment body that lies about its init length, or lacks a part, is refused', async (t) => {
  t.throws(() => decodeSegmentBody(bytes(0, 0)), WireError);
  t.throws(() => decodeSegmentBody(bytes(0, 0, 0, 9, 1)), /runs past the end of the body/);
  t.throws(() => decodeSegmentBody(bytes(0, 0, 0, 1, 1)), /both an init segment and a media segment/);
  t.throws(() => decodeSegmentBody(bytes(0, 0, 0, 0, 1)), /both an init segment and a media segment/);
});

t.test('renditions bodies round-trip, empty included', async (t) => {
  const renditions = [
    { rendition: '360p', init: bytes(1), segment: bytes(2, 3) },
    { rendition: 'audio', init: bytes(4, 5), segment: bytes(6) },
  ];
  const back = decodeRenditionsBody(encodeRenditionsBody(renditions));
  t.same(
    back.map((r) => [r.rendition, [...r.init], [...r.segment]]),
    renditions.map((r) => [r.rendition, [...r.init], [...r.segment]]),
  );
  t.same(decodeRenditionsBody(encodeRenditionsBody([])), []);
});

t.test('a renditions body cut anywhere is refused, not read past its end', async (t) => {
  const body = encodeRenditionsBody([{ rendition: '160p', init: bytes(1, 2), segment: bytes(3, 4, 5) }]);
  for (let cut = 1; cut < body.length; cut++) t.throws(() => decodeRenditionsBody(body.subarray(0, cut)), WireError, `cut at ${cut}`);
});
