// The arithmetic behind the viewer latency by keyframe interval and the S3
// cost tables, on made-up inputs whose answers are known: nginx-rtmp's
// fragment names turned into program date times, stalled seconds inside the
// sampling window, the keyframe intervals setting, and requests scaled to a
// stream-hour with their price.
import t from 'tap';
import type { RecordedRequest } from '../../harness/s3-recorder.ts';
import { keyframeIntervals } from '../keyframe-latency.ts';
import { withProgramDateTimes } from '../lib/pdt-proxy.ts';
import { costRow, keptUpLadder, perStreamHour } from '../s3-cost.ts';
import { waitedSeconds } from '../viewer-latency.ts';

t.test("nginx-rtmp's fragment names become program date times before each fragment", async (t) => {
  const playlist = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    '#EXT-X-MEDIA-SEQUENCE:7',
    '#EXT-X-TARGETDURATION:2',
    '#EXTINF:2.000,',
    'key-1796631300000.ts',
    '#EXTINF:2.000,',
    'key-1796631302000.ts',
    '',
  ].join('\n');
  const out = withProgramDateTimes(playlist).split('\n');
  t.same(out.slice(4), [
    '#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:15:00.000Z',
    '#EXTINF:2.000,',
    'key-1796631300000.ts',
    '#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:15:02.000Z',
    '#EXTINF:2.000,',
    'key-1796631302000.ts',
    '',
  ]);
  t.equal(withProgramDateTimes('#EXTM3U\n#EXTINF:1.0,\n3.ts\n'), '#EXTM3U\n#EXTINF:1.0,\n3.ts\n', 'sequential names carry no time: unchanged');
});

t.test('stalled seconds count only the waits inside the sampling window, the one going on included', async (t) => {
  const waits = [
    { start: 0, end: 2000 }, // before the window: start-up
    { start: 9000, end: 11_000 }, // half inside
    { start: 20_000, end: 20_500 },
  ];
  t.equal(waitedSeconds(waits, null, 10_000, 30_000), 1.5);
  t.equal(waitedSeconds(waits, 29_000, 10_000, 30_000), 2.5, 'a wait still going on counts up to the end');
});

t.test('keyframe intervals: 2 s by default, a list in BENCH_KEYFRAME_INTERVALS, nonsense refused', async (t) => {
  t.same(keyframeIntervals({}), [2]);
  t.same(keyframeIntervals({ BENCH_KEYFRAME_INTERVALS: '1, 2,4' }), [1, 2, 4]);
  t.throws(() => keyframeIntervals({ BENCH_KEYFRAME_INTERVALS: '2,x' }), /x|NaN/);
  t.throws(() => keyframeIntervals({ BENCH_KEYFRAME_INTERVALS: '60' }), /60/);
});

t.test('requests in the window scale to a stream-hour, with the PUT price', async (t) => {
  const put = (key: string, at: number, bytes: number, status = 200): RecordedRequest => ({
    method: 'PUT',
    key,
    startedAt: at,
    finishedAt: at + 5,
    status,
    bytes,
  });
  const requests: RecordedRequest[] = [
    put('default/s/run/0.m4s', 500, 999), // before the window
    ...Array.from({ length: 10 }, (_, i) => put(`default/s/run/${i + 1}.m4s`, 1000 + i * 1000, 300_000)),
    ...Array.from({ length: 10 }, (_, i) => put('default/s/index.m3u8', 1010 + i * 1000, 400)),
    put('default/s/thumbnail.jpg', 5000, 20_000),
    put('default/s/run/99.m4s', 6000, 300_000, 503), // failed: not stored, not counted
    { method: 'GET', key: 'default/s/index.m3u8', startedAt: 2000, finishedAt: 2001, status: 200, bytes: 0 },
  ];
  const r = perStreamHour('plain', requests, 1000, 11_000);
  t.equal(r.windowSeconds, 10);
  t.same(r.puts, { segments: 3600, playlists: 3600, other: 360, total: 7560 });
  t.equal(r.otherRequests, 360);
  t.equal(r.gigabytes, ((10 * 300_000 + 10 * 400 + 20_000) * 360) / 1e9);
  const row = costRow(r);
  t.equal(row[1], '7560');
  t.equal(row[6], '$0.038', '7,560 PUTs at $0.005 per 1,000');
});

t.test('a ladder whose transcoder fell behind gets a derived row with the missing rendition segments', async (t) => {
  const put = (key: string, at: number, bytes: number): RecordedRequest => ({ method: 'PUT', key, startedAt: at, finishedAt: at + 5, status: 200, bytes });
  const requests = [
    ...Array.from({ length: 10 }, (_, i) => put(`default/s/run/${i}.m4s`, i * 1000, 1000)),
    put('default/s/run/360p/0.m4s', 500, 100), // one of the 20 rendition segments expected
  ];
  const r = perStreamHour('ladder', requests, 0, 10_000);
  t.equal(r.sourceSegments, 3600);
  t.equal(r.renditionSegments, 360);
  const d = keptUpLadder(r, ['480p', '360p'])!;
  t.equal(d.expected, 7200);
  t.equal(d.row.puts.segments, 3600 + 7200);
  // 19 of 20 missing, at (1200 + 128) + (700 + 128) kbit/s for an hour.
  t.equal(d.row.gigabytes.toFixed(6), (r.gigabytes + (2156 * 1000 * 3600 * 0.95) / 8 / 1e9).toFixed(6));
  t.equal(keptUpLadder(r, []), undefined, 'no ladder, nothing derived');
  t.equal(keptUpLadder({ ...r, renditionSegments: 7000 }, ['480p', '360p']), undefined, 'a transcoder that kept up needs no derived row');
});
