// The LL-HLS state of one live run, in process: what its playlist shows as
// parts arrive and segments are listed, and how blocked requests are
// answered (in order, bounded, freed by the client going away). The process
// test (ll-origin.test.ts) does the same through real media and HTTP.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MediaPlaylist } from '../../../common/media-playlist.ts';
import { LowLatencyRegistry } from '../../../ingest/low-latency/ll-source.ts';
import { LowLatencyStream, MAX_WAITERS_PER_STREAM } from '../../../ingest/low-latency/ll-stream.ts';
import type { PartOutput } from '../../../ingest/packager/fragmenter.ts';

const ref = { namespace: 'default', name: 'show' };

function part(index: number, independent = index === 0): PartOutput {
  return { data: new Uint8Array([10 + index, 20 + index]), index, duration: 0.333, independent, initGeneration: 1 };
}

/** A run with a playlist model as the packager keeps it, and its LL state. */
function run() {
  const playlist = new MediaPlaylist(1, 6);
  const stream = new LowLatencyStream(playlist, 0.333, () => 'index.m3u8');
  stream.init('s1/init-1.mp4', new Uint8Array([1]));
  /** The packager's side: the fragmenter completes a segment (its parts back to back), the write chain lists it. */
  const complete = () => {
    const parts = stream.position().openParts;
    stream.segmentComplete(Buffer.concat(Array.from({ length: parts }, (_, k) => part(k).data)));
  };
  const list = () => {
    const sequence = playlist.nextSequence;
    playlist.append({ uri: `s1/${sequence}.m4s`, duration: 1, programDateTime: 0, initUri: 's1/init-1.mp4', discontinuity: false });
    stream.listed(sequence);
  };
  return { playlist, stream, complete, list };
}

t.test('the playlist shows the parts so far, then the segment they make once it is listed, and hints the next part', async (t) => {
  const { stream, complete, list } = run();
  stream.part('s1', part(0));
  stream.part('s1', part(1));
  let text = stream.render();
  t.match(text, '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999\n#EXT-X-PART-INF:PART-TARGET=0.333\n');
  t.match(
    text,
    '#EXT-X-MAP:URI="s1/init-1.mp4"\n#EXT-X-PART:DURATION=0.333,URI="s1/0.0.part.m4s",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.333,URI="s1/0.1.part.m4s"\n',
  );
  t.match(text, '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s1/0.2.part.m4s"\n');
  complete();
  // Complete but not listed yet (being written): still the segment in progress; the next part is the next segment's first.
  stream.part('s1', part(0));
  text = stream.render();
  t.notMatch(text, '#EXTINF', 'no segment listed before the packager lists it');
  t.notMatch(text, 'URI="s1/1.0.part.m4s",INDEPENDENT', "no part of the next segment before this one's EXTINF");
  t.match(text, '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s1/1.0.part.m4s"\n');
  list();
  text = stream.render();
  t.match(
    text,
    /#EXT-X-PROGRAM-DATE-TIME:\S+\n#EXT-X-PART:DURATION=0.333,URI="s1\/0.0.part.m4s",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.333,URI="s1\/0.1.part.m4s"\n#EXTINF/,
    'parts stay listed before their segment',
  );
  t.match(
    text,
    '#EXTINF:1.000,\ns1/0.m4s\n#EXT-X-PART:DURATION=0.333,URI="s1/1.0.part.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s1/1.1.part.m4s"\n',
  );
  t.same([...stream.findFile('s1/0.m4s')!], [10, 20, 11, 21], 'the segment is served from memory');
  const held = stream.findPart('s1', 0, 1);
  t.same(held && held !== 'future' ? [...held.data] : undefined, [11, 21], 'a listed part is served');
  t.equal(stream.findPart('s1', 1, 1), 'future', 'the hinted part is one to wait for');
  t.equal(stream.findPart('s1', 5, 0), undefined, 'a part far ahead is not');
});

t.test('parts of old segments leave the playlist after about three target durations', async (t) => {
  const { stream, complete, list } = run();
  for (let segment = 0; segment < 6; segment++) {
    stream.part('s1', part(0));
    stream.part('s1', part(1));
    complete();
    list();
  }
  const text = stream.render();
  t.notMatch(text, 's1/2.0.part.m4s');
  t.match(text, 's1/3.0.part.m4s');
  t.ok(stream.findPart('s1', 2, 0), 'held one segment longer than listed');
  t.equal(stream.findPart('s1', 1, 0), undefined, 'and then let go (memory per stream)');
});

t.test('blocked requests are answered once the playlist reaches them, those reached together in the order they came', async (t) => {
  const { stream, complete, list } = run();
  stream.part('s1', part(0));
  const order: string[] = [];
  const signal = new AbortController().signal;
  const waits = [
    stream.waitFor(0, undefined, signal).then(() => order.push('first: segment 0')),
    stream.waitFor(0, 2, signal).then(() => order.push('second: part 0.2')),
    stream.waitFor(0, 1, signal).then(() => order.push('part 0.1')),
    stream.waitFor(0, undefined, signal).then(() => order.push('third: segment 0')),
  ];
  t.equal(stream.waiting, 4);
  stream.part('s1', part(1));
  await Promise.resolve();
  t.same(order, ['part 0.1'], 'part 1 answers only the request for it');
  // The segment ends with two parts: its listing answers the requests for it; the one for a third part gets the next segment's first (RFC 8216bis: that part or a later one).
  complete();
  list();
  await Promise.resolve();
  t.same(order, ['part 0.1', 'first: segment 0', 'third: segment 0']);
  t.equal(stream.waiting, 1);
  stream.part('s1', part(0));
  await Promise.all(waits);
  t.same(order, ['part 0.1', 'first: segment 0', 'third: segment 0', 'second: part 0.2']);
  t.equal(stream.waiting, 0);
});

t.test('a request whose client went away no longer waits', async (t) => {
  const { stream } = run();
  const abort = new AbortController();
  const wait = stream.waitFor(3, undefined, abort.signal);
  t.equal(stream.waiting, 1);
  abort.abort();
  t.equal(await wait, 'aborted');
  t.equal(stream.waiting, 0);
});

t.test('requests too far ahead are refused at once', async (t) => {
  const { stream, complete, list } = run();
  stream.part('s1', part(0));
  complete();
  list();
  stream.part('s1', part(0));
  t.equal(stream.tooFar({ msn: 2 }), undefined, 'two past the last segment may wait');
  t.match(stream.tooFar({ msn: 3 }), /more than two segments past/);
  t.equal(stream.tooFar({ msn: 1, part: 9 }), undefined, 'within the advance part limit (3 / 0.333)');
  t.match(stream.tooFar({ msn: 1, part: 11 }), /parts past the playlist's last part/);
});

t.test('the source: bounded waiters per stream, 404 when the run ends or is not here', async (t) => {
  const registry = new LowLatencyRegistry(0.333, '/nonexistent');
  const { stream } = run();
  stream.part('s1', part(0));
  const request = { ref, file: 'index.m3u8', blocking: { msn: 0, part: 3 } };
  t.equal((await registry.serve(request, new AbortController().signal)).status, 404, 'not attached: 404');
  registry.attach(ref, stream);
  const abort = new AbortController();
  const blocked = Array.from({ length: MAX_WAITERS_PER_STREAM }, () => registry.serve(request, abort.signal));
  t.equal(stream.waiting, MAX_WAITERS_PER_STREAM);
  const refused = await registry.serve(request, new AbortController().signal);
  t.equal(refused.status, 503, 'one more than the bound: 503 at once');
  t.equal(refused.cacheControl, 'no-store');
  registry.detach(ref, stream);
  const answers = await Promise.all(blocked);
  t.ok(
    answers.every((a) => a.status === 404),
    'the run ended: every waiter answered 404',
  );
  t.equal(registry.waiting, 0);
});

t.test("the source: the first answer waits for the run's first segment, so the target duration it shows never changes", async (t) => {
  const registry = new LowLatencyRegistry(0.333, '/nonexistent');
  const { playlist, stream, complete } = run();
  registry.attach(ref, stream);
  stream.part('s1', part(0));
  stream.part('s1', part(1));
  let answered = false;
  const first = registry.serve({ ref, file: 'index.m3u8', blocking: {} }, new AbortController().signal).then((a) => {
    answered = true;
    return a;
  });
  const blocking = registry.serve({ ref, file: 'index.m3u8', blocking: { msn: 0, part: 1 } }, new AbortController().signal);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(answered, false, 'parts alone: no answer yet');
  t.equal(stream.waiting, 2, 'both wait');
  complete();
  // The packager lists the 2 s segment: the target duration grows from the configured 1 to 2 before anyone sees a playlist.
  const sequence = playlist.nextSequence;
  playlist.append({ uri: `s1/${sequence}.m4s`, duration: 2, programDateTime: 0, initUri: 's1/init-1.mp4', discontinuity: false });
  stream.listed(sequence);
  for (const answer of await Promise.all([first, blocking])) {
    t.equal(answer.status, 200);
    t.match(Buffer.from(answer.body).toString(), '#EXT-X-TARGETDURATION:2\n');
  }
  registry.detach(ref, stream);
});

t.test("the source: a ladder's source playlist is the LL one, its other playlists as stored; segments not in memory come from the media volume", async (t) => {
  const mediaDir = mkdtempSync(join(tmpdir(), 'tteok-ll-'));
  t.teardown(() => rmSync(mediaDir, { recursive: true, force: true }));
  mkdirSync(join(mediaDir, 'default', 'show', 's0'), { recursive: true });
  writeFileSync(join(mediaDir, 'default', 'show', 's0', '3.m4s'), 'from the volume');
  const registry = new LowLatencyRegistry(0.333, mediaDir);
  const playlist = new MediaPlaylist(1, 6);
  const stream = new LowLatencyStream(playlist, 0.333, () => 'source.m3u8');
  stream.init('s1/init-1.mp4', new Uint8Array([1]));
  stream.part('s1', part(0));
  stream.segmentComplete(part(0).data);
  playlist.append({ uri: 's1/0.m4s', duration: 1, programDateTime: 0, initUri: 's1/init-1.mp4', discontinuity: false });
  stream.listed(0);
  stream.storedPlaylists.set('index.m3u8', Buffer.from('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsource.m3u8\n'));
  registry.attach(ref, stream);
  const serve = (file: string) => registry.serve({ ref, file, blocking: {} }, new AbortController().signal);
  const source = await serve('source.m3u8');
  t.match(Buffer.from(source.body).toString(), '#EXT-X-PART-INF:PART-TARGET=0.333', 'source.m3u8: the LL playlist');
  t.equal(source.cacheControl, 'public, max-age=0', 'a plain reload: half the 1 s target duration, floored, as stored playlists');
  const multivariant = await serve('index.m3u8');
  t.match(Buffer.from(multivariant.body).toString(), 'source.m3u8', 'index.m3u8: the multivariant playlist as stored');
  t.equal((await serve('track1.m3u8')).status, 404, 'a playlist not stored yet: 404');
  const init = await serve('s1/init-1.mp4');
  t.same([...init.body], [1], 'the current init segment from memory');
  t.equal(init.cacheControl, 'public, max-age=31536000, immutable');
  t.equal(Buffer.from((await serve('s0/3.m4s')).body).toString(), 'from the volume');
  t.equal((await serve('s0/4.m4s')).status, 404, 'neither in memory nor on the volume: 404 (the object store has it)');
  t.equal((await serve('../../etc/passwd')).status, 404, 'only files of the stream folder');
});
