// The live HLS media playlist: sliding window, media and discontinuity
// sequence numbers, EXT-X-MAP, PROGRAM-DATE-TIME and ENDLIST, parsing a
// rendered playlist back (what a restarted ingest does), and reading any
// playlist leniently (what the uploader, the gateway and the tests do).
import t from 'tap';
import { MediaPlaylist, parseMediaPlaylist, type PlaylistSegment } from '../../common/media-playlist.ts';

const T0 = Date.UTC(2024, 2, 10, 12, 0, 0, 250);

/** Segment n of a stream whose publisher reconnected before segment 3 (new session, new init). */
function segment(n: number, overrides: Partial<PlaylistSegment> = {}): PlaylistSegment {
  const session = n < 3 ? 'a' : 'b';
  return {
    uri: `${session}/${n}.m4s`,
    duration: 2 + (n % 3) * 0.0333,
    programDateTime: T0 + n * 2000 + (n >= 3 ? 5000 : 0),
    initUri: `${session}/init-1.mp4`,
    discontinuity: n === 3,
    ...overrides,
  };
}

function tagValue(m3u8: string, name: string): string | undefined {
  return m3u8
    .split('\n')
    .find((l) => l.startsWith(`#${name}:`))
    ?.slice(name.length + 2);
}

function mediaUris(m3u8: string): string[] {
  return m3u8.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
}

function count(m3u8: string, line: string): number {
  return m3u8.split('\n').filter((l) => l === line).length;
}

t.test('a live window slides: media sequence and discontinuity sequence', async (t) => {
  const p = new MediaPlaylist(2, 3);
  const renders: string[] = [];
  for (let n = 0; n < 8; n++) {
    p.append(segment(n));
    renders.push(p.render());
  }
  // After 3 segments: all of session a.
  let m = renders[2]!;
  t.same(mediaUris(m), ['a/0.m4s', 'a/1.m4s', 'a/2.m4s']);
  t.equal(tagValue(m, 'EXT-X-MEDIA-SEQUENCE'), '0');
  t.equal(tagValue(m, 'EXT-X-DISCONTINUITY-SEQUENCE'), '0');
  t.equal(count(m, '#EXT-X-DISCONTINUITY'), 0);
  t.equal(count(m, '#EXT-X-MAP:URI="a/init-1.mp4"'), 1, 'one EXT-X-MAP while the init does not change');

  // After 4: the discontinuity is listed, with the new init right after it.
  m = renders[3]!;
  t.same(mediaUris(m), ['a/1.m4s', 'a/2.m4s', 'b/3.m4s']);
  t.equal(tagValue(m, 'EXT-X-MEDIA-SEQUENCE'), '1');
  t.equal(tagValue(m, 'EXT-X-DISCONTINUITY-SEQUENCE'), '0');
  const lines = m.split('\n');
  const at = lines.indexOf('#EXT-X-DISCONTINUITY');
  t.ok(at > 0, 'EXT-X-DISCONTINUITY is listed');
  t.equal(lines[at + 1], '#EXT-X-MAP:URI="b/init-1.mp4"', 'EXT-X-MAP follows when the init changes');
  t.ok(lines.indexOf('b/3.m4s') > at, 'before the segment it applies to');

  // After 6: the discontinuity is the first segment of the window, still listed.
  m = renders[5]!;
  t.same(mediaUris(m), ['b/3.m4s', 'b/4.m4s', 'b/5.m4s']);
  t.equal(tagValue(m, 'EXT-X-MEDIA-SEQUENCE'), '3');
  t.equal(tagValue(m, 'EXT-X-DISCONTINUITY-SEQUENCE'), '0');
  t.equal(count(m, '#EXT-X-DISCONTINUITY'), 1);
  t.equal(count(m, '#EXT-X-MAP:URI="a/init-1.mp4"'), 0, 'the old init is no longer named');

  // After 7: the discontinuity slid out, so the discontinuity sequence counts it.
  m = renders[6]!;
  t.same(mediaUris(m), ['b/4.m4s', 'b/5.m4s', 'b/6.m4s']);
  t.equal(tagValue(m, 'EXT-X-MEDIA-SEQUENCE'), '4');
  t.equal(tagValue(m, 'EXT-X-DISCONTINUITY-SEQUENCE'), '1');
  t.equal(count(m, '#EXT-X-DISCONTINUITY'), 0);
  t.equal(count(m, '#EXT-X-MAP:URI="b/init-1.mp4"'), 1, 'the first segment of the window always has its EXT-X-MAP');
  t.ok(m.indexOf('#EXT-X-MAP') < m.indexOf('b/4.m4s'));
  t.notMatch(m, /#EXT-X-ENDLIST/, 'no ENDLIST while live');
  t.equal(p.nextSequence, 8);
});

t.test('a muxer restart inside a session: new EXT-X-MAP after a discontinuity', async (t) => {
  const p = new MediaPlaylist(1, 6);
  p.append({ uri: 's/0.m4s', duration: 1, programDateTime: T0, initUri: 's/init-1.mp4', discontinuity: false });
  p.append({ uri: 's/1.m4s', duration: 1, programDateTime: T0 + 1000, initUri: 's/init-1.mp4', discontinuity: false });
  p.append({ uri: 's/2.m4s', duration: 1, programDateTime: T0 + 2000, initUri: 's/init-2.mp4', discontinuity: true });
  const m = p.render();
  t.same(
    m.split('\n').filter((l) => l.startsWith('#EXT-X-MAP') || l.startsWith('#EXT-X-DISCONTINUITY') || (l && !l.startsWith('#'))),
    [
      '#EXT-X-DISCONTINUITY-SEQUENCE:0',
      '#EXT-X-MAP:URI="s/init-1.mp4"',
      's/0.m4s',
      's/1.m4s',
      '#EXT-X-DISCONTINUITY',
      '#EXT-X-MAP:URI="s/init-2.mp4"',
      's/2.m4s',
    ],
  );
});

t.test('forgetting segments that left the window renders the same playlist', async (t) => {
  // The stream packager forgets segments it will never list again.
  const kept = new MediaPlaylist(2, 3);
  const forgetful = new MediaPlaylist(2, 3);
  for (let n = 0; n < 8; n++) {
    kept.append(segment(n));
    forgetful.append(segment(n));
    const excess = forgetful.segments.length - 3;
    if (excess > 0) forgetful.forgetBefore(excess);
    t.equal(forgetful.render(), kept.render(), `after segment ${n}`);
  }
  t.equal(forgetful.firstSequence, 5);
  t.equal(forgetful.discontinuitiesBefore, 1);
});

t.test('the header, EXTINF and PROGRAM-DATE-TIME', async (t) => {
  const p = new MediaPlaylist(2, 6);
  p.append(segment(0, { duration: 2.0004 }));
  p.append(segment(1, { duration: 1.96666 }));
  const m = p.render();
  const lines = m.split('\n');
  t.equal(lines[0], '#EXTM3U');
  t.equal(tagValue(m, 'EXT-X-VERSION'), '7', 'version 7 for fMP4 with EXT-X-MAP');
  t.equal(tagValue(m, 'EXT-X-TARGETDURATION'), '2');
  t.ok(lines.includes('#EXT-X-INDEPENDENT-SEGMENTS'));
  t.ok(lines.includes('#EXTINF:2.000,'));
  t.ok(lines.includes('#EXTINF:1.967,'));
  const pdts = lines.filter((l) => l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')).map((l) => l.slice(25));
  t.same(pdts, ['2024-03-10T12:00:00.250Z', '2024-03-10T12:00:02.250Z'], 'ISO 8601 in UTC, with milliseconds');
  for (const pdt of pdts) t.match(pdt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // Each PROGRAM-DATE-TIME is right before its segment's EXTINF.
  const first = lines.indexOf('a/0.m4s');
  t.match(lines[first - 2], /^#EXT-X-PROGRAM-DATE-TIME:/);
  t.match(lines[first - 1], /^#EXTINF:/);
  t.ok(m.endsWith('\n'), 'ends with a newline');
});

t.test('the target duration covers the longest listed segment', async (t) => {
  const p = new MediaPlaylist(2, 6);
  p.append(segment(0, { duration: 2 }));
  p.append(segment(1, { duration: 4.4 }));
  t.equal(tagValue(p.render(), 'EXT-X-TARGETDURATION'), '4', 'rounded, as RFC 8216 allows');
  p.append(segment(2, { duration: 4.6 }));
  t.equal(tagValue(p.render(), 'EXT-X-TARGETDURATION'), '5');
});

t.test('ENDLIST and the VOD render', async (t) => {
  const p = new MediaPlaylist(2, 3);
  for (let n = 0; n < 8; n++) p.append(segment(n));
  p.ended = true;
  const live = p.render();
  t.equal(count(live, '#EXT-X-ENDLIST'), 1);
  t.ok(live.trimEnd().endsWith('#EXT-X-ENDLIST'), 'ENDLIST is the last line');
  t.equal(mediaUris(live).length, 3, 'an ended live playlist keeps its window');

  const vod = p.render({ vod: true });
  t.same(
    mediaUris(vod),
    Array.from({ length: 8 }, (_, n) => segment(n).uri),
    'VOD lists every segment',
  );
  t.equal(tagValue(vod, 'EXT-X-PLAYLIST-TYPE'), 'VOD');
  t.equal(tagValue(vod, 'EXT-X-MEDIA-SEQUENCE'), '0');
  t.equal(tagValue(vod, 'EXT-X-DISCONTINUITY-SEQUENCE'), '0');
  t.equal(count(vod, '#EXT-X-DISCONTINUITY'), 1);
  t.equal(count(vod, '#EXT-X-MAP:URI="a/init-1.mp4"'), 1);
  t.equal(count(vod, '#EXT-X-MAP:URI="b/init-1.mp4"'), 1);
  t.ok(vod.trimEnd().endsWith('#EXT-X-ENDLIST'));
  t.notMatch(live, /PLAYLIST-TYPE/, 'the live render has no playlist type');

  // A window of 0 keeps everything too.
  const all = new MediaPlaylist(2, 0);
  for (let n = 0; n < 8; n++) all.append(segment(n));
  t.equal(mediaUris(all.render()).length, 8);
});

t.test('parse(render()) round-trips', async (t) => {
  const p = new MediaPlaylist(2, 3);
  for (let n = 0; n < 7; n++) p.append(segment(n));

  // The whole history (what a VOD render carries).
  const vod = p.render({ vod: true });
  const back = MediaPlaylist.parse(vod, 3);
  t.equal(back.firstSequence, 0);
  t.equal(back.discontinuitiesBefore, 0);
  t.equal(back.ended, false);
  t.equal(back.segments.length, 7);
  back.segments.forEach((s, n) => {
    const orig = segment(n);
    t.same({ ...s, duration: Number(s.duration.toFixed(3)) }, { ...orig, duration: Number(orig.duration.toFixed(3)) }, `segment ${n}`);
  });

  // The live window, after the discontinuity slid out: sequence numbers carry over.
  const live = p.render();
  const resumed = MediaPlaylist.parse(live, 3);
  t.equal(resumed.firstSequence, 4);
  t.equal(resumed.discontinuitiesBefore, 1);
  t.same(
    resumed.segments.map((s) => s.uri),
    ['b/4.m4s', 'b/5.m4s', 'b/6.m4s'],
  );
  t.same(
    resumed.segments.map((s) => s.initUri),
    ['b/init-1.mp4', 'b/init-1.mp4', 'b/init-1.mp4'],
    'EXT-X-MAP applies to the segments after it',
  );
  t.equal(resumed.render(), live, 'rendering the parsed playlist gives the same text');
  t.equal(resumed.nextSequence, p.nextSequence, 'a resumed stream continues the numbering');

  // Resuming and appending continues exactly as the original would have.
  resumed.append(segment(7, { discontinuity: true }));
  p.append(segment(7, { discontinuity: true }));
  t.equal(resumed.render(), p.render(), 'after appending a discontinuity');

  p.ended = true;
  const ended = MediaPlaylist.parse(p.render(), 3);
  t.equal(ended.ended, true, 'ENDLIST parses back');

  t.throws(() => MediaPlaylist.parse('not a playlist\n', 3), /m3u8/);
});

t.test('renderNamed names each init segment before its media segments, as the text does', async (t) => {
  const p = new MediaPlaylist(2, 0);
  for (let n = 0; n < 6; n++) p.append(segment(n));
  p.append({ ...segment(6), initUri: 'b/init-2.mp4', discontinuity: true });
  const { text, names: uris } = p.renderNamed();
  t.equal(text, p.render(), 'the same text as render()');
  t.same(uris, parseMediaPlaylist(text).uris, 'the names are the URIs the text lists');
  t.same(uris, ['a/init-1.mp4', 'a/0.m4s', 'a/1.m4s', 'a/2.m4s', 'b/init-1.mp4', 'b/3.m4s', 'b/4.m4s', 'b/5.m4s', 'b/init-2.mp4', 'b/6.m4s']);
  for (const s of p.segments) t.ok(uris.indexOf(s.initUri) < uris.indexOf(s.uri), `${s.initUri} before ${s.uri}`);
  // Only what the window shows.
  const windowed = new MediaPlaylist(2, 2);
  for (let n = 0; n < 6; n++) windowed.append(segment(n));
  t.same(windowed.renderNamed().names, ['b/init-1.mp4', 'b/4.m4s', 'b/5.m4s']);
  t.same(windowed.renderNamed({ vod: true }).names, parseMediaPlaylist(windowed.render({ vod: true })).uris, 'a VOD names the whole run');
});

t.test('parseMediaPlaylist reads what the packager renders', async (t) => {
  const p = new MediaPlaylist(2, 3);
  for (let n = 0; n < 7; n++) p.append(segment(n));
  p.ended = true;
  const parsed = parseMediaPlaylist(p.render());
  t.equal(parsed.targetDuration, 2);
  t.equal(parsed.mediaSequence, 4);
  t.equal(parsed.discontinuitySequence, 1);
  t.equal(parsed.ended, true);
  t.same(
    parsed.segments.map((s) => s.sequence),
    [4, 5, 6],
    'each segment has its media sequence number',
  );
  t.same(
    parsed.segments.map((s) => s.programDateTime),
    [4, 5, 6].map((n) => segment(n).programDateTime),
  );
  t.same(parsed.initUris, ['b/init-1.mp4']);
  t.same(parsed.uris, p.renderNamed().names);
});

t.test('parseMediaPlaylist reads a foreign playlist leniently', async (t) => {
  const text = [
    '#EXTM3U',
    '#EXT-X-VERSION:6',
    '#EXT-X-TARGETDURATION:x',
    '#EXT-X-MEDIA-SEQUENCE:10',
    '#EXT-X-UNKNOWN-TAG:1',
    '#EXTINF:1.5,',
    'first.m4s',
    '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z',
    '#EXTINF:2.000,title',
    '  second.m4s  ',
    '#EXTINF:0.500,',
    'third.m4s',
    '#EXT-X-PROGRAM-DATE-TIME:not a date',
    '#EXT-X-MAP:URI="init.mp4",BYTERANGE="100@0"',
    '#EXT-X-DISCONTINUITY',
    '#EXTINF:abc,',
    'fourth.m4s',
    '',
  ].join('\r\n');
  const parsed = parseMediaPlaylist(text);
  t.equal(parsed.targetDuration, undefined, 'an unreadable target duration reads as absent');
  t.equal(parsed.ended, false);
  t.same(
    parsed.segments.map((s) => s.uri),
    ['first.m4s', 'second.m4s', 'third.m4s', 'fourth.m4s'],
    'URIs trimmed, CRLF read',
  );
  t.same(
    parsed.segments.map((s) => s.sequence),
    [10, 11, 12, 13],
  );
  t.same(
    parsed.segments.map((s) => s.duration),
    [1.5, 2, 0.5, 0],
    'an unreadable EXTINF reads as 0',
  );
  t.same(
    parsed.segments.map((s) => s.programDateTime),
    [undefined, Date.parse('2026-01-01T00:00:00.000Z'), Date.parse('2026-01-01T00:00:02.000Z'), undefined],
    'no date before the first one; a segment without its own follows on from the previous one; an unreadable one reads as none',
  );
  t.same(
    parsed.segments.map((s) => s.initUri),
    ['', '', '', 'init.mp4'],
  );
  t.same(
    parsed.segments.map((s) => s.discontinuity),
    [false, false, false, true],
  );
  t.same(parsed.uris, ['first.m4s', 'second.m4s', 'third.m4s', 'init.mp4', 'fourth.m4s']);
  t.same(
    parseMediaPlaylist(''),
    { targetDuration: undefined, mediaSequence: 0, discontinuitySequence: 0, ended: false, segments: [], initUris: [], uris: [] },
    'nothing in, nothing out',
  );
});
