// LL-HLS from the ingest's memory (issue 20), end to end: ffmpeg publishes
// over RTMP to the real ingest process, and the test reads
// `/ll/<ns>/<name>/…` on its HTTP port as the gateway would: the blocking
// playlist, its parts and segments, and the RFC's answers to bad or
// impossible blocking requests.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

const stream: TestStream = { name: 'lowlat', key: 'lowlat_key_aaaaaaaaaaaaaaaaaa1' };
const dir = mkdtempSync(join(tmpdir(), 'tteok-ll-origin-'));
writeKeyFile(join(dir, 'keys.yaml'), [stream]);
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin'),
  TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_LL_PART_SECONDS: '0.333',
});
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const base = `http://127.0.0.1:${ingest.httpPort}/ll/default/${stream.name}/`;

interface LlPlaylist {
  text: string;
  partTarget: number;
  holdBack: number;
  canBlock: boolean;
  mediaSequence: number;
  /** Every segment listed, by sequence number. */
  segments: Array<{ sequence: number; uri: string; parts: string[] }>;
  /** Parts of the segment in progress (sequence: the last listed + 1). */
  openParts: string[];
  maps: string[];
  preloadHint: string | undefined;
  /** Every part's DURATION, by URI. */
  durations: Record<string, number>;
}

function parseLl(text: string): LlPlaylist {
  const out: LlPlaylist = {
    text,
    partTarget: 0,
    holdBack: 0,
    canBlock: false,
    mediaSequence: 0,
    segments: [],
    openParts: [],
    maps: [],
    preloadHint: undefined,
    durations: {},
  };
  let parts: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PART-INF:')) out.partTarget = Number(/PART-TARGET=([\d.]+)/.exec(line)?.[1]);
    else if (line.startsWith('#EXT-X-SERVER-CONTROL:')) {
      out.canBlock = line.includes('CAN-BLOCK-RELOAD=YES');
      out.holdBack = Number(/PART-HOLD-BACK=([\d.]+)/.exec(line)?.[1]);
    } else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) out.mediaSequence = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]+)"/.exec(line)![1]!;
      parts.push(uri);
      out.durations[uri] = Number(/DURATION=([\d.]+)/.exec(line)![1]);
    } else if (line.startsWith('#EXT-X-MAP:')) out.maps.push(/URI="([^"]+)"/.exec(line)![1]!);
    else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) out.preloadHint = /URI="([^"]+)"/.exec(line)![1]!;
    else if (line.length > 0 && !line.startsWith('#')) {
      out.segments.push({ sequence: out.mediaSequence + out.segments.length, uri: line, parts });
      parts = [];
    }
  }
  out.openParts = parts;
  return out;
}

/** The (msn, part) a part URI names: `<session>/<msn>.<k>.part.m4s`. */
function partPosition(uri: string): { msn: number; part: number } {
  const m = /\/(\d+)\.(\d+)\.part\.m4s$/.exec(uri)!;
  return { msn: Number(m[1]), part: Number(m[2]) };
}

async function get(path: string): Promise<{ status: number; body: Buffer; headers: Headers; ms: number }> {
  const started = performance.now();
  const res = await fetch(base + path);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body, headers: res.headers, ms: performance.now() - started };
}

// Before the publish (asserted here: the subtests below need the stream live, and the root test must not end between them).
const notLive = await get('index.m3u8');
t.equal(notLive.status, 404, 'not live here: 404');
t.match(JSON.parse(notLive.body.toString()), { error: /not live/ }, 'not live here: the JSON body says so');
t.equal(notLive.headers.get('cache-control'), 'no-store', 'not live here: not cached');

const publisher = publishTestPattern({ url: ingest.rtmpUrl(stream.key), gopSeconds: 1, bframes: 2, name: 'll-publisher' });

let first: { res: Awaited<ReturnType<typeof get>>; playlist: LlPlaylist };

t.test('the LL playlist: part target, blocking reload, hold-back of three parts, parts and a preload hint', async (t) => {
  first = await waitFor(
    'an LL playlist with parts',
    async () => {
      const res = await get('index.m3u8');
      if (res.status !== 200) return undefined;
      const playlist = parseLl(res.body.toString());
      return playlist.segments.length >= 2 && playlist.openParts.length + playlist.segments.at(-1)!.parts.length > 0 ? { res, playlist } : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const { res, playlist } = first;
  t.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  t.equal(
    res.headers.get('cache-control'),
    `public, max-age=${Math.floor(targetOf(res.body.toString()) / 2)}`,
    'a plain reload: half a target duration, as stored playlists',
  );
  t.equal(playlist.partTarget, 0.333);
  t.ok(playlist.canBlock, 'CAN-BLOCK-RELOAD=YES');
  t.ok(playlist.holdBack >= 3 * playlist.partTarget - 0.001, `PART-HOLD-BACK ${playlist.holdBack} is at least three parts`);
  t.ok(playlist.preloadHint?.endsWith('.part.m4s'), `preload hint ${playlist.preloadHint}`);
  t.match(playlist.text, /#EXT-X-PART:DURATION=[\d.]+,URI="[^"]+",INDEPENDENT=YES/, 'a part that starts with a keyframe is independent');
  t.notMatch(playlist.text, /#EXT-X-ENDLIST/);
});

t.test('every part, segment and init segment a playlist names can be fetched at that moment, over many playlist versions', async (t) => {
  let playlist = first.playlist;
  let fetched = 0;
  let lastPosition = '';
  for (let version = 0; version < 24; version++) {
    // Block for the hinted part: the next version of the playlist.
    const next = partPosition(playlist.preloadHint!);
    const res = await get(`index.m3u8?_HLS_msn=${next.msn}&_HLS_part=${next.part}`);
    t.equal(res.status, 200, `version ${version}: blocking reload answered`);
    playlist = parseLl(res.body.toString());
    const named = [...playlist.maps, ...playlist.segments.flatMap((s) => [...s.parts, s.uri]), ...playlist.openParts];
    const answers = await Promise.all(named.map(async (uri) => ({ uri, res: await get(uri) })));
    // Parts only ever come from the ingest; segments and init segments may already be in the object store only (the CDN asks it first).
    const missing = answers
      .filter((a) => a.res.status !== 200 && (a.uri.endsWith('.part.m4s') || !existsSync(join(dir, 'origin', 'default', stream.name, a.uri))))
      .map((a) => `${a.uri}: ${a.res.status}`);
    t.same(missing, [], `version ${version}: all ${named.length} files it names are served`);
    for (const a of answers) {
      if (!a.uri.endsWith('.m4s') || a.res.status !== 200) continue;
      fetched++;
      t.equal(a.res.body.subarray(4, 8).toString('latin1'), 'moof', `${a.uri} starts with a moof`);
      t.equal(a.res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    }
    const position = `${playlist.segments.at(-1)!.sequence}/${playlist.openParts.length}`;
    t.not(position, lastPosition, `version ${version} moved on (${position})`);
    lastPosition = position;
  }
  t.ok(fetched > 100, `${fetched} parts and segments fetched`);
});

t.test('a segment is its parts back to back, as served', async (t) => {
  const res = await get('index.m3u8');
  const playlist = parseLl(res.body.toString());
  const segment = playlist.segments.findLast((s) => s.parts.length > 0)!;
  const whole = await get(segment.uri);
  const parts = await Promise.all(segment.parts.map((uri) => get(uri)));
  t.ok(Buffer.concat(parts.map((p) => p.body)).equals(whole.body), `${segment.uri} = its ${parts.length} parts`);
});

t.test('a blocking request returns once the part it asks for exists, not before', async (t) => {
  let playlist = parseLl((await get('index.m3u8')).body.toString());
  // Part `part` of segment `msn`, or a later part (RFC 8216bis: a segment that ended with fewer parts is followed by the next one's first).
  const holds = (p: LlPlaylist, msn: number, part: number) =>
    p.segments.some((s) => s.sequence > msn || (s.sequence === msn && s.parts.length > part)) ||
    p.openParts.some((uri) => {
      const at = partPosition(uri);
      return at.msn > msn || (at.msn === msn && at.part >= part);
    });
  const started = performance.now();
  let media = 0;
  for (let i = 0; i < 9; i++) {
    // One past the hint: a part the publisher has not sent yet.
    const hinted = partPosition(playlist.preloadHint!);
    const asked = { msn: hinted.msn, part: hinted.part + 1 };
    t.notOk(holds(playlist, asked.msn, asked.part), `part ${asked.msn}.${asked.part} is not there when asked for`);
    const res = await get(`index.m3u8?_HLS_msn=${asked.msn}&_HLS_part=${asked.part}`);
    t.equal(res.status, 200);
    const before = new Set(Object.keys(playlist.durations));
    playlist = parseLl(res.body.toString());
    t.ok(holds(playlist, asked.msn, asked.part), `the answer holds part ${asked.msn}.${asked.part} or a later one`);
    for (const [uri, duration] of Object.entries(playlist.durations)) if (!before.has(uri)) media += duration;
  }
  // The publisher sends in real time (-re): answers that waited for the parts come at the media's pace, bursts aside.
  const elapsed = (performance.now() - started) / 1000;
  t.ok(elapsed >= 0.6 * media, `${elapsed.toFixed(2)} s of waiting for ${media.toFixed(2)} s of new parts`);
});

t.test('the preload-hinted part is answered once it exists', async (t) => {
  const now = parseLl((await get('index.m3u8')).body.toString());
  const hint = now.preloadHint!;
  const res = await get(hint);
  t.equal(res.status, 200, `${hint}: 200 once cut`);
  t.equal(res.body.subarray(4, 8).toString('latin1'), 'moof');
  // (Named once the segment before it is listed, when it opens the next segment: a few milliseconds.)
  await waitFor(
    `the playlist to name ${hint}`,
    async () => {
      const after = parseLl((await get('index.m3u8')).body.toString());
      return [...after.segments.flatMap((s) => s.parts), ...after.openParts].includes(hint);
    },
    { timeoutMs: 2000, intervalMs: 20 },
  );
  t.pass(`the playlist names ${hint}`);
});

t.test('bad blocking parameters: 400 at once, with a sentence', async (t) => {
  const playlist = parseLl((await get('index.m3u8')).body.toString());
  const last = playlist.segments.at(-1)!.sequence;
  for (const [query, why] of [
    ['_HLS_msn=abc', /_HLS_msn must be a decimal integer/],
    ['_HLS_msn=-1', /_HLS_msn must be a decimal integer/],
    ['_HLS_part=1', /_HLS_part needs _HLS_msn/],
    [`_HLS_msn=${last}&_HLS_part=x`, /_HLS_part must be a decimal integer/],
    [`_HLS_msn=${last + 10}`, /more than two segments past/],
    [`_HLS_msn=${last + 1}&_HLS_part=40`, /parts past the playlist's last part/],
    ['_HLS_msn=1&_HLS_msn=2', /more than once/],
    ['foo=1', /unknown query parameter foo/],
  ] as const) {
    const res = await get(`index.m3u8?${query}`);
    t.equal(res.status, 400, `${query}: 400`);
    t.match(JSON.parse(res.body.toString()), { error: why }, `${query}: says why`);
    t.ok(res.ms < 1000, `${query}: answered at once (${res.ms.toFixed(0)} ms)`);
  }
  const gone = await get(`${playlist.segments[0]!.uri.split('/')[0]}/999999.0.part.m4s`);
  t.equal(gone.status, 404, 'a part that never existed: 404');
});

t.test('a client that goes away frees its wait; a wait the stream does not reach within three target durations: 503', async (t) => {
  // Dropped, not ended: the run waits for its publisher to come back (the reconnect grace): still live here, but nothing new comes.
  await publisher.stop('SIGKILL');
  // The dropped session's last segment is flushed and listed; then the playlist stands still.
  let previous = '';
  const playlist = await waitFor(
    'the playlist to stand still',
    async () => {
      const now = parseLl((await get('index.m3u8')).body.toString());
      const position = `${now.segments.at(-1)!.sequence}/${now.openParts.length}`;
      const still = now.openParts.length === 0 && position === previous;
      previous = position;
      return still ? now : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 300 },
  );
  const blocked = async () => metricValue(await ingest.metrics(), 'tteok_ingest_ll_blocked_requests');
  t.equal(await blocked(), 0, 'no request waits');
  const client = new AbortController();
  const started = performance.now();
  const request = fetch(`${base}index.m3u8?_HLS_msn=${playlist.segments.at(-1)!.sequence + 1}`, { signal: client.signal }).catch(() => 'aborted');
  await waitFor('the request to wait', async () => (await blocked()) === 1, { timeoutMs: 2000, intervalMs: 20 });
  client.abort();
  t.equal(await request, 'aborted');
  await waitFor('the wait to be freed', async () => (await blocked()) === 0, { timeoutMs: 2000, intervalMs: 20 });
  t.ok(performance.now() - started < 2900, 'freed by the client going away, before the server’s own bound');
  const next = playlist.segments.at(-1)!.sequence + 2;
  const res = await get(`index.m3u8?_HLS_msn=${next}`);
  t.equal(res.status, 503);
  t.match(JSON.parse(res.body.toString()), { error: /did not reach segment/ });
  t.ok(res.ms >= 2500 && res.ms < 6000, `answered after ${res.ms.toFixed(0)} ms (three target durations: 3 s)`);
});

function targetOf(text: string): number {
  return Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1]);
}
