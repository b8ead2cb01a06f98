// A stream's run in process (ingest/stream-run.ts): real encoder output into
// a real media volume, through the real uploader into the local object
// store. Each test reads what a viewer would get: the stored playlist and
// the objects it names.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { StreamRun } from '../../ingest/stream-run.ts';
import { clipTags, publish, REF, rig, settings, storedPlaylist, storedText, untilStored, volumeFiles } from './run-kit.ts';

t.test('publish, then unpublish: every segment stored before the playlist that names it, and the final playlist ends the run', async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  t.equal(run.state, 'live');
  const session = run.beginSession();
  publish(session, tags);
  await run.endSession(session, true);
  t.equal(run.state, 'ended');
  await run.settled;
  const list = await storedPlaylist(r);
  t.ok(list?.ended, 'the stored playlist has EXT-X-ENDLIST');
  t.ok(list!.uris.length >= 3, `segments listed (${list!.uris.length})`);
  for (const uri of list!.uris) t.ok(existsSync(join(r.originDir, REF.namespace, REF.name, uri)), `${uri} is stored`);
  t.same(
    r.ended.map((e) => e.sessionFolders.length),
    [1],
    'the run ended once, with its one session folder',
  );
  t.same(await volumeFiles(r), ['index.m3u8', session.id], 'the volume keeps only the final playlist (and the emptied session folder) once stored');
});

t.test('a publisher that drops and comes back within the grace continues the playlist after a discontinuity', async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  const first = run.beginSession();
  publish(first, tags);
  await run.endSession(first, false);
  t.equal(run.state, 'grace', 'a drop waits for the publisher');
  t.ok(run.inGrace);
  const second = run.beginSession();
  t.not(second.id, first.id, 'a new session folder');
  publish(second, tags, 10_000);
  await run.endSession(second, true);
  await run.settled;
  const list = await storedPlaylist(r);
  t.ok(list?.ended);
  const firstOfSecond = list!.segments.findIndex((s) => s.uri.startsWith(second.id));
  t.ok(firstOfSecond > 0, 'both sessions are listed');
  t.ok(list!.segments[firstOfSecond]!.discontinuity, 'the second session starts after a discontinuity');
  t.same(r.ended[0]!.sessionFolders, [first.id, second.id]);
});

t.test('the grace runs out: the run ends by itself', async (t) => {
  const r = await rig(t, undefined, { reconnectGraceMs: 200 });
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  const session = run.beginSession();
  publish(session, tags);
  await run.endSession(session, false);
  await run.settled;
  t.equal(run.state, 'ended');
  t.ok((await storedPlaylist(r))?.ended, 'the final playlist is stored after the grace');
});

t.test('handed over: no final playlist, the playlist and journal leave the volume, and a kept run stores its history', async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ keepAfterEnd: true }) });
  run.holdClaim();
  const session = run.beginSession();
  publish(session, tags);
  await untilStored(r, 3);
  run.claimLost('another-pod');
  await run.settled;
  t.equal(run.state, 'handed_over');
  t.notOk(run.holdsClaim, 'a claim taken over is not released by this ingest');
  t.notOk((await storedPlaylist(r))?.ended, 'the stored playlist is still live (the new holder continues it)');
  const history = await storedText(r, 'history.m3u8');
  t.match(history, /#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI="[^"]+"\n#EXT-X-PROGRAM-DATE-TIME/, "the run's history is stored, from its first segment");
  t.match(history, /#EXT-X-MEDIA-SEQUENCE:0\n/, 'with every segment of the run');
  t.notOk(
    (await volumeFiles(r)).some((f) => f === 'index.m3u8' || f.endsWith('.jsonl')),
    'nothing on the volume would make a restart resume the run',
  );
  t.equal(r.ended[0]!.handedOver, true);
});

t.test('a run that took the stream over continues the stored playlist: next media sequence, after a discontinuity', async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const before = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  const s1 = before.beginSession();
  publish(s1, tags);
  await untilStored(r, 3);
  // The other ingest hands its run over; a new run continues what it stored.
  await before.handOver();
  await before.settled;
  const stored = await storedPlaylist(r);
  const next = stored!.segments.at(-1)!.sequence + 1;
  const after = StreamRun.begin(r.ctx, { ref: REF, settings: settings() }, { continueStored: true });
  const s2 = after.beginSession();
  publish(s2, tags, 10_000);
  await after.endSession(s2, true);
  await after.settled;
  const list = await storedPlaylist(r);
  const firstNew = list!.segments.find((s) => s.uri.startsWith(s2.id))!;
  t.equal(firstNew.sequence, next, 'the media sequence goes on');
  t.ok(firstNew.discontinuity, 'after a discontinuity');
  t.ok(
    list!.uris.some((u) => u.startsWith(s1.id)),
    'the stored window is kept',
  );
  t.ok(r.ended.at(-1)!.sessionFolders.includes(s1.id), 'the continuing run answers for the stored session too');
});

t.test('a run left on the volume by a killed process is resumed in its grace, and a reconnect continues it', async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const killed = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ keepAfterEnd: true }) });
  const s1 = killed.beginSession();
  publish(s1, tags);
  await untilStored(r, 3);
  await killed.flushed();
  // The process dies here: nothing more of `killed` runs.
  const resumed = await StreamRun.resume(r.ctx, { ref: REF, settings: settings({ keepAfterEnd: true }) });
  t.ok(resumed, 'resumed');
  t.equal(resumed!.state, 'grace');
  const s2 = resumed!.beginSession();
  publish(s2, tags, 10_000);
  await resumed!.endSession(s2, true);
  await resumed!.settled;
  const list = await storedPlaylist(r);
  t.ok(list?.ended);
  t.equal(list!.mediaSequence, 0, 'a kept run lists itself from the start');
  t.ok(list!.uris.some((u) => u.startsWith(s1.id)) && list!.uris.some((u) => u.startsWith(s2.id)), 'both sessions in the VOD');
  t.ok(list!.segments.find((s) => s.uri.startsWith(s2.id))!.discontinuity);
});

t.test('nothing on the volume: nothing to resume', async (t) => {
  const r = await rig(t);
  t.equal(await StreamRun.resume(r.ctx, { ref: REF, settings: settings() }), undefined);
});

t.test("a new run after an ended one writes after it, and the ended run's claim passes to it", async (t) => {
  const r = await rig(t);
  const tags = await clipTags(t);
  const released: string[] = [];
  r.ctx.releaseClaim = async (ref) => void released.push(ref.name);
  const first = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  first.holdClaim();
  const s1 = first.beginSession();
  publish(s1, tags);
  const ending = first.endSession(s1, true);
  t.ok(first.passClaim(), 'the ended run held the claim');
  const second = StreamRun.begin(r.ctx, { ref: REF, settings: settings(), previous: first });
  second.holdClaim();
  const s2 = second.beginSession();
  publish(s2, tags, 10_000);
  await ending;
  await first.settled;
  t.same(released, [], 'the first run does not let go of a claim it passed on');
  await second.endSession(s2, true);
  await second.settled;
  t.same(released, ['room'], 'the second run lets go of it once stored');
  const list = await storedPlaylist(r);
  t.ok(list?.ended && list.uris.every((u) => u.startsWith(s2.id)), "the stored playlist is the second run's, written after the first one's final playlist");
});
