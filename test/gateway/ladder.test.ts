// What viewers and frontends see of a stream with an adaptive ladder (issue
// 19), on `tteok gateway` as a process: the Kubernetes view on a real
// kube-apiserver (a status write makes a stream live, as the controller
// does), the local origin serving a directory that holds ladders laid out as
// the ingest stores them (harness/ladder-on-disk.ts: real CMAF segments from
// Debian's ffmpeg, three renditions cut at the same seconds, a multivariant
// index.m3u8, a thumbnail).
// - The origin serves every rendition's playlist and segments and the
//   thumbnail (image/jpeg, max-age=5), decodable by ffprobe over HTTP;
//   nothing else in a stream's folder (names that are not renditions); a
//   private stream's only with a token.
// - The lookup lists the renditions as the multivariant playlist has them
//   and the thumbnail URL while live (a private stream's signed with the
//   lookup's token); the SSE `live` event carries the thumbnail, a `changed`
//   event the renditions once the gateway has read them.
// - The playlist follower follows the `source` variant: each new source
//   segment is one segment-latency observation.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseMultivariantPlaylist } from '../../common/multivariant-playlist.ts';
import { metricValue } from '../../harness/ingest-process.ts';
import { startLadderGateway } from '../../harness/ladder-gateway.ts';
import { encodeRenditions, encodeThumbnail, LadderOnDisk } from '../../harness/ladder-on-disk.ts';
import { openEventStream, type SseClient } from '../../harness/sse-client.ts';
import { waitFor } from '../../harness/wait.ts';

const run = promisify(execFile);
const NS = 'ladder';
const clients: SseClient[] = [];
const gw = await startLadderGateway({
  namespace: NS,
  streams: [
    { name: 'show', access: 'public' },
    { name: 'members', access: 'private' },
    { name: 'idle', access: 'private' },
  ],
});
t.teardown(async () => {
  for (const c of clients) c.close();
  await gw.stop();
});
const gateway = gw.url;
const { setLive, mintToken } = gw;

// Three renditions of one test pattern, 1 s segments, keyframes every second.
const renditions = await encodeRenditions(
  [
    { name: 'source', width: 854, height: 480, videoKbps: 1000 },
    { name: '360p', width: 640, height: 360, videoKbps: 600 },
    { name: '160p', width: 284, height: 160, videoKbps: 200 },
  ],
  8,
);
const thumbnail = await encodeThumbnail();
const SESSION = 'mk3x-1a2b3c4d';
const show = new LadderOnDisk(join(gw.origin, NS, 'show'), SESSION, renditions);
const members = new LadderOnDisk(join(gw.origin, '_private', NS, 'members'), SESSION, renditions);
for (const ladder of [show, members]) {
  await ladder.publish(2);
  await ladder.writeThumbnail(thumbnail);
}

interface Lookup {
  live: boolean;
  playbackUrl: string | null;
  thumbnailUrl: string | null;
  renditions: Array<Record<string, unknown>>;
}
const lookup = async (name: string, token?: string): Promise<Lookup> =>
  (await (await fetch(`${gateway}/v1/streams/${NS}/${name}${token ? `?token=${token}` : ''}`)).json()) as Lookup;
const metrics = async (): Promise<string> => (await fetch(`${gateway}/metrics`)).text();
const latencyCount = async (name: string): Promise<number> =>
  metricValue(await metrics(), 'tteok_gateway_segment_latency_seconds_count', `namespace="${NS}",name="${name}"`);
/** The renditions the lookup must list: the multivariant playlist's variants without their URIs. */
const expectedRenditions = parseMultivariantPlaylist(show.multivariant()).map(({ uri: _uri, ...rest }) => rest);

t.test('the origin serves every rendition, its segments and the thumbnail; nothing else in the folder', async (tt) => {
  const base = `${gateway}/origin/${NS}/show`;
  const index = await fetch(`${base}/index.m3u8`);
  tt.equal(index.status, 200);
  tt.same(
    parseMultivariantPlaylist(await index.text()).map((v) => v.uri),
    ['source.m3u8', '360p.m3u8', '160p.m3u8'],
    'index.m3u8 is the multivariant playlist',
  );
  for (const r of renditions) {
    const playlist = await fetch(`${base}/${r.name}.m3u8`);
    tt.equal(playlist.status, 200, `${r.name}.m3u8`);
    tt.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    tt.equal(playlist.headers.get('cache-control'), 'public, max-age=0', 'half of a 1 s target duration, as the source playlist');
    const folder = r.name === 'source' ? SESSION : `${SESSION}/${r.name}`;
    tt.match(await playlist.text(), `${folder}/1.m4s`, `${r.name}: its segments in its folder`);
    for (const file of ['init-1.mp4', '0.m4s', '1.m4s']) {
      const res = await fetch(`${base}/${folder}/${file}`);
      tt.equal(res.status, 200, `${folder}/${file}`);
      tt.equal(res.headers.get('content-type'), 'video/mp4');
      tt.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      const expected = file === 'init-1.mp4' ? r.init : r.segments[Number(file.split('.')[0])]!;
      tt.ok(Buffer.from(await res.arrayBuffer()).equals(expected), `${folder}/${file}: the bytes stored`);
    }
    // What a player does with it: its init segment and segments, fetched from the origin, decode (ffprobe counts every frame).
    const fetched = [await fetch(`${base}/${folder}/init-1.mp4`), await fetch(`${base}/${folder}/0.m4s`), await fetch(`${base}/${folder}/1.m4s`)];
    const file = join(gw.origin, `${r.name}.mp4`);
    writeFileSync(file, Buffer.concat(await Promise.all(fetched.map(async (f) => Buffer.from(await f.arrayBuffer())))));
    const { stdout } = await run(
      'ffprobe',
      ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'json', file],
      { timeout: 60_000 },
    );
    const stream = (JSON.parse(stdout) as { streams: Array<{ width: number; height: number; nb_read_frames: string }> }).streams[0]!;
    tt.same([stream.width, stream.height], [r.width, r.height], `${r.name}: ${r.width}x${r.height} decoded`);
    tt.equal(Number(stream.nb_read_frames), 60, `${r.name}: two seconds' frames decoded`);
  }
  const thumb = await fetch(`${base}/thumbnail.jpg`);
  tt.equal(thumb.status, 200, 'thumbnail.jpg');
  tt.equal(thumb.headers.get('content-type'), 'image/jpeg');
  tt.equal(thumb.headers.get('cache-control'), 'public, max-age=5', 'refreshed every 10 s, cached for 5');
  tt.ok(Buffer.from(await thumb.arrayBuffer()).equals(thumbnail), 'the JPEG stored');

  for (const path of [
    'history.m3u8',
    'nope.m3u8',
    'track0.m3u8',
    'Source.m3u8',
    'thumbnail.png',
    `${SESSION}/thumbnail.jpg`,
    `${SESSION}/source/0.m4s`,
    `${SESSION}/other/0.m4s`,
    `${SESSION}/360p/360p/0.m4s`,
    `${SESSION}/360p/..%2F0.m4s`,
  ]) {
    const res = await fetch(`${base}/${path}`);
    tt.ok(res.status === 400 || res.status === 404, `${path}: refused (${res.status})`);
    tt.match(res.headers.get('content-type'), /^application\/json/, `${path}: a JSON error`);
  }
});

t.test("a private stream's ladder and thumbnail: only with a token", async (tt) => {
  const token = await mintToken('members');
  const paths = [
    'index.m3u8',
    'source.m3u8',
    '360p.m3u8',
    '160p.m3u8',
    'thumbnail.jpg',
    `${SESSION}/0.m4s`,
    `${SESSION}/360p/init-1.mp4`,
    `${SESSION}/160p/1.m4s`,
  ];
  for (const path of paths) {
    tt.equal((await fetch(`${gateway}/origin/_private/${NS}/members/${path}`)).status, 403, `${path} without a token: 403`);
    const res = await fetch(`${gateway}/origin/_t/${token}/_private/${NS}/members/${path}`);
    tt.equal(res.status, 200, `${path} with the token: 200`);
  }
  const other = await mintToken('idle');
  tt.equal((await fetch(`${gateway}/origin/_t/${other}/_private/${NS}/members/360p.m3u8`)).status, 403, "another stream's token opens nothing of this one");
});

t.test('the lookup and the events: renditions and thumbnail while live', async (tt) => {
  const events = await openEventStream(`${gateway}/v1/streams/${NS}/show/events`);
  clients.push(events);
  const idle = await lookup('idle');
  tt.same([idle.live, idle.thumbnailUrl, idle.renditions], [false, null, []], 'not live: no thumbnail, no renditions');
  tt.same([(await lookup('show')).thumbnailUrl, (await lookup('show')).renditions], [null, []], 'before its run: none either');

  const from = events.events.length;
  await setLive('show', true);
  const liveEvent = await events.next('the live event', (e) => e.event === 'live', { from });
  tt.equal(JSON.parse(liveEvent.data).thumbnailUrl, `${gateway}/origin/${NS}/show/thumbnail.jpg`, 'the live event carries the thumbnail URL');
  const withLadder = await events.next('an event with the renditions', (e) => JSON.parse(e.data).renditions.length > 0, { from, timeoutMs: 10_000 });
  tt.same(JSON.parse(withLadder.data).renditions, expectedRenditions, 'a changed event lists the renditions once the gateway read them');

  const body = await lookup('show');
  tt.same(body.renditions, expectedRenditions, 'the lookup lists each rendition: name, bandwidths, resolution, frame rate, codecs');
  tt.same(
    body.renditions.map((r) => r.name),
    ['source', '360p', '160p'],
    'source first',
  );
  tt.equal(body.thumbnailUrl, `${gateway}/origin/${NS}/show/thumbnail.jpg`);
  const thumb = await fetch(body.thumbnailUrl!);
  tt.equal(thumb.headers.get('content-type'), 'image/jpeg', 'the thumbnail URL serves the JPEG');
  tt.equal(withLadder.data, await (await fetch(`${gateway}/v1/streams/${NS}/show`)).text(), "the event's body is the lookup's, byte for byte");

  // A private stream: the URLs only with a token, signed like the playlist's.
  await setLive('members', true);
  await waitFor('the private ladder read', async () => ((await lookup('members')).renditions.length > 0 ? true : undefined), { timeoutMs: 10_000 });
  const bare = await lookup('members');
  tt.same([bare.playbackUrl, bare.thumbnailUrl], [null, null], 'without a token: no playable URL, no thumbnail');
  const token = await mintToken('members');
  const signed = await lookup('members', token);
  tt.equal(signed.thumbnailUrl, `${gateway}/origin/_t/${token}/_private/${NS}/members/thumbnail.jpg`, 'with a token: the thumbnail carries it');
  tt.equal((await fetch(signed.thumbnailUrl!)).status, 200, 'and plays');
  tt.same(signed.renditions, expectedRenditions);

  const offFrom = events.events.length;
  await setLive('show', false);
  const offline = await events.next('the offline event', (e) => e.event === 'offline', { from: offFrom });
  tt.match(JSON.parse(offline.data), { live: false, thumbnailUrl: null, renditions: [] }, 'offline: no thumbnail, no renditions');
});

t.test('the follower reads the source variant: one latency observation per new source segment', async (tt) => {
  await setLive('show', true);
  // Following starts with a baseline of what is listed; new segments are observed.
  await waitFor('show followed again', async () => ((await lookup('show')).renditions.length > 0 ? true : undefined), { timeoutMs: 10_000 });
  // The follower fetches through this origin: a few more of its fetches, and the baseline is taken.
  const originFetches = async () =>
    metricValue(await metrics(), 'tteok_gateway_http_request_duration_seconds_count', 'method="GET",route="/origin/*",status_code="200"');
  const fetched = await originFetches();
  await waitFor('the follower polling', async () => ((await originFetches()) >= fetched + 3 ? true : undefined), { timeoutMs: 10_000 });
  const before = await latencyCount('show');
  await show.publish(3);
  const after = await waitFor('three new segments observed', async () => {
    const n = await latencyCount('show');
    return n >= before + 3 ? n : undefined;
  });
  tt.equal(after - before, 3, 'three new source segments, three observations (not one per rendition)');
  const text = await metrics();
  const sum = metricValue(text, 'tteok_gateway_segment_latency_seconds_sum', `namespace="${NS}",name="show"`);
  tt.ok(sum > 0, 'latencies from the source playlist program date times');
  tt.ok(metricValue(text, 'tteok_gateway_playlist_staleness_seconds', `namespace="${NS}",name="show"`) < 30, 'the staleness of the source playlist');
  tt.equal(metricValue(text, 'tteok_gateway_follow_failures_total', 'reason="no_source_variant"'), 0, 'no ladder without a source');
});
