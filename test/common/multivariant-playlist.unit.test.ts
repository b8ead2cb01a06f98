// The multivariant playlist the ingest writes for a ladder reads back as it
// was written, and the presets' checks name what is wrong.
import t from 'tap';
import { isMultivariant, parseMultivariantPlaylist, renderMultivariantPlaylist, type Variant } from '../../common/multivariant-playlist.ts';
import { isRenditionName, renditionFolder, renditionProblems } from '../../common/renditions.ts';

const ladder: Variant[] = [
  {
    name: 'source',
    uri: 'source.m3u8',
    bandwidth: 6_400_000,
    averageBandwidth: 6_100_000,
    resolution: { width: 1920, height: 1080 },
    frameRate: 30,
    codecs: ['avc1.640028', 'mp4a.40.2'],
  },
  { name: '360p', uri: '360p.m3u8', bandwidth: 900_000, resolution: { width: 640, height: 360 }, frameRate: 29.97, codecs: ['avc1.64001e', 'mp4a.40.2'] },
  { name: 'audio', uri: 'audio.m3u8', bandwidth: 130_000, codecs: ['mp4a.40.2'] },
];

t.test('a ladder reads back as it was written', async (t) => {
  const text = renderMultivariantPlaylist(ladder);
  t.ok(isMultivariant(text));
  t.match(text, /CODECS="avc1\.640028,mp4a\.40\.2"/, 'codec strings quoted, comma separated');
  t.match(text, /FRAME-RATE=29\.970/);
  const parsed = parseMultivariantPlaylist(text);
  t.same(parsed, ladder.map((v) => ({ ...v, frameRate: v.frameRate === undefined ? undefined : Number(v.frameRate.toFixed(3)) })).map(stripUndefined));
});

t.test('a media playlist is not multivariant', async (t) => {
  t.notOk(isMultivariant('#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\na/0.m4s\n'));
});

t.test('broken multivariant playlists are refused with a sentence', async (t) => {
  t.throws(() => parseMultivariantPlaylist('hello'), /not an HLS playlist/);
  t.throws(() => parseMultivariantPlaylist('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n'), /no URI/);
  t.throws(() => parseMultivariantPlaylist('#EXTM3U\n#EXT-X-STREAM-INF:CODECS="a"\nx.m3u8\n'), /no BANDWIDTH/);
});

t.test('spec.renditions: presets only, each once, at most five', async (t) => {
  t.same(renditionProblems(['720p', '360p', 'audio']), []);
  t.match(renditionProblems('720p')[0], /must be a list/);
  t.match(renditionProblems(['4k'])[0], /"4k" is not a preset; use one of 1080p, 720p/);
  t.match(renditionProblems(['360p', '360p'])[0], /names 360p twice/);
  t.match(renditionProblems(['1080p', '720p', '480p', '360p', '160p', 'audio'])[0], /at most 5/);
});

t.test('rendition names and folders', async (t) => {
  t.ok(isRenditionName('source') && isRenditionName('track2') && isRenditionName('480p'));
  t.notOk(isRenditionName('track0') || isRenditionName('..') || isRenditionName('index'));
  t.equal(renditionFolder('s1', 'source'), 's1');
  t.equal(renditionFolder('s1', '480p'), 's1/480p');
});

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
