// Across ingest pods the playlist continues through a takeover (issue 9,
// item 4), on real parts: the kube-apiserver with the controller, two ingest
// processes as pods ingest-0 and ingest-1 on the chart's RBAC, ffmpeg over
// RTMP, and SeaweedFS as the one bucket both pods store into. A network that
// dies without a FIN is an ffmpeg under SIGSTOP.
//
// - A kept run (retention.keepAfterEnd): while ingest-1 takes over, the
//   stored playlist never ends; it goes on with the next media sequence
//   number, after a discontinuity and with ingest-1's own init segment; the
//   final VOD lists the whole run, ingest-0's segments included, and every
//   object it names is in the bucket.
// - A run that does not keep its media: ingest-0, whose run was taken over,
//   deletes neither the stored playlist ingest-1 now writes nor the segments
//   it still lists, TTEOK_DELETE_DELAY_SECONDS after its run ended; when
//   ingest-1's run ends, the whole run's media goes.
// - A kept run taken over twice, back to the first pod: the VOD lists it all.
// - A run that ended on one pod and a new run on the other: the first pod's
//   deletion leaves the new run's playlist alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ParsedPlaylist } from '../../harness/hls.ts';
import { metricValue, startIngestProcess, type IngestProcess } from '../../harness/ingest-process.ts';
import { adminWithLiveStreams, chartRoles, createReadyLiveStream, serviceAccountKubeconfig, startTestController } from '../../harness/kube-fixtures.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { listKeys } from '../../harness/s3-objects.ts';
import { startS3Server } from '../../harness/s3-server.ts';
import { sessionOf, storedPlaylists } from '../../harness/stored-playlist.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const DELETE_DELAY_SECONDS = 6;

const kube = await startKubeApiServer();
const s3 = await startS3Server();
const dir = mkdtempSync(join(tmpdir(), 'tteok-handover-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);

const controller = await startTestController(kc, SYSTEM);

const ingestKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-ingest', await chartRoles('ingest', SYSTEM));

function ingestEnv(pod: string): Record<string, string> {
  return {
    ...s3.ingestEnv,
    TTEOK_KEY_SOURCE: 'kubernetes',
    KUBECONFIG: ingestKubeconfig,
    TTEOK_POD_NAME: pod,
    TTEOK_POD_NAMESPACE: SYSTEM,
    // Each pod has a media volume of its own; neither can read the other's.
    TTEOK_MEDIA_DIR: join(dir, pod, 'media'),
    // Long enough for a publish on the other pod to take over a run in its grace period.
    TTEOK_RECONNECT_GRACE_SECONDS: '8',
    // Long enough for a publisher paused by the test to keep its stream.
    TTEOK_PUBLISHER_IDLE_SECONDS: '15',
    TTEOK_DELETE_DELAY_SECONDS: String(DELETE_DELAY_SECONDS),
  };
}
const [pod0, pod1] = (await Promise.all([startIngestProcess(ingestEnv('ingest-0')), startIngestProcess(ingestEnv('ingest-1'))])) as [
  IngestProcess,
  IngestProcess,
];

t.teardown(async () => {
  await stopAll();
  await controller.shutdown();
  await kube.stop();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

function createLs(name: string, keepAfterEnd: boolean): Promise<string> {
  return createReadyLiveStream({ core, custom }, NS, name, { retention: { keepAfterEnd } });
}
const { stored, waitForStored, missingObjects } = storedPlaylists(s3, NS);
const sequenceInName = (uri: string) => Number(/\/(\d+)\.m4s$/.exec(uri)?.[1]);

/**
 * Publisher A on ingest-0 sends segments, then goes silent; publisher B with
 * the same key on ingest-1 takes over. Every version of the stored playlist
 * from the takeover until B has `segmentsFromB` segments listed is returned.
 */
async function takeOver(name: string, key: string, segmentsFromA: number, segmentsFromB: number, how: 'silent' | 'dropped' = 'silent') {
  const mark0 = pod0.proc.lines.length;
  const a = publishTestPattern({ url: pod0.rtmpUrl(key), name: `ffmpeg-${name}-a-pod0` });
  await pod0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark0);
  const before = await waitForStored(
    name,
    `${segmentsFromA} segments from ingest-0`,
    (p) => p.segments.length > 0 && p.segments.at(-1)!.sequence + 1 >= segmentsFromA,
  );
  const sessionA = sessionOf(before.segments[0]!.uri);

  // Silent: the connection stays open. Dropped: it closes, and ingest-0's run waits in its reconnect grace.
  a.child.kill(how === 'silent' ? 'SIGSTOP' : 'SIGKILL');
  if (how === 'dropped') await pod0.proc.waitForLine(/publisher dropped; waiting for it to reconnect/, 5000, mark0);
  const mark1 = pod1.proc.lines.length;
  const b = publishTestPattern({ url: pod1.rtmpUrl(key), name: `ffmpeg-${name}-b-pod1` });
  await pod1.proc.waitForLine(/"msg":"publish accepted"/, 10_000, mark1);
  const seen: Array<{ text: string; playlist: ParsedPlaylist }> = [];
  const after = await waitFor(
    `${name}: ${segmentsFromB} segments from ingest-1`,
    async () => {
      const s = await stored(name);
      if (s && seen.at(-1)?.text !== s.text) seen.push(s);
      return s && s.playlist.segments.filter((x) => sessionOf(x.uri) !== sessionA).length >= segmentsFromB ? s.playlist : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 25 },
  );
  a.child.kill('SIGCONT');
  await a.stop('SIGKILL', 1000);
  return { sessionA, after, seen, b, mark0 };
}

t.test('a kept run continues across pods: no end in between, sequence and history go on', async (tt) => {
  const key = await createLs('kept', true);
  const { sessionA, after, seen, b } = await takeOver('kept', key, 9, 3);
  // ingest-0's last segment, as the stored playlists from the takeover on listed it.
  const lastSeqA = Math.max(
    ...seen
      .flatMap((s) => s.playlist.segments)
      .filter((x) => sessionOf(x.uri) === sessionA)
      .map((x) => x.sequence),
  );
  tt.notOk(
    seen.some((s) => s.playlist.ended),
    `no stored playlist between the takeover and ingest-1's segments has EXT-X-ENDLIST (${seen.length} versions seen)`,
  );

  const firstOfB = after.segments.find((x) => sessionOf(x.uri) !== sessionA)!;
  tt.ok(
    after.segments.some((x) => sessionOf(x.uri) === sessionA),
    "the live window still lists ingest-0's last segments before ingest-1's",
  );
  tt.ok(after.mediaSequence > 0, `but no longer the run's first ones (it starts at ${after.mediaSequence}): the VOD needs ingest-0's history`);
  tt.equal(firstOfB.sequence, lastSeqA + 1, `ingest-1's first segment has the next media sequence number (${lastSeqA + 1})`);
  tt.equal(sequenceInName(firstOfB.uri), lastSeqA + 1, 'and is named by it');
  tt.ok(firstOfB.discontinuity, 'an EXT-X-DISCONTINUITY precedes it');
  tt.equal(firstOfB.map, `${sessionOf(firstOfB.uri)}/init-1.mp4`, "with ingest-1's own init segment (EXT-X-MAP)");
  tt.same(await missingObjects('kept', after), [], 'every object the live playlist names is in the bucket');

  await b.stop('SIGTERM', 5000);
  const vod = await waitForStored('kept', 'the final VOD', (p) => p.ended);
  const sequences = vod.segments.map((s) => s.sequence);
  tt.equal(vod.mediaSequence, 0, "the VOD starts at the run's first segment");
  tt.equal(sessionOf(vod.segments[0]!.uri), sessionA, 'which ingest-0 wrote');
  tt.ok(vod.segments.length > lastSeqA + 1, `it lists every segment of ingest-0 (${lastSeqA + 1}) and ingest-1's after them (${vod.segments.length} in all)`);
  tt.same(
    vod.segments.map((s) => sequenceInName(s.uri)),
    sequences,
    'in order, with no sequence number missing or twice',
  );
  tt.equal(vod.segments.filter((s) => s.discontinuity).length, 1, 'one discontinuity: at the takeover');
  tt.same(await missingObjects('kept', vod), [], 'every object the VOD names is in the bucket');
  // The history ingest-0 stored at the handover is not a segment: its backlog empties.
  const backlogOf0 = async () => metricValue(await pod0.metrics(), 'tteok_ingest_upload_backlog_segments');
  await waitFor("ingest-0's upload backlog to empty", async () => ((await backlogOf0()) === 0 ? true : undefined), { timeoutMs: 15_000 }).catch(
    () => undefined,
  );
  tt.equal(await backlogOf0(), 0, 'ingest-0 reports no upload backlog once the handed-over run is stored');
});

t.test("the pod whose run was taken over deletes neither the new pod's playlist nor the segments it lists", async (tt) => {
  const key = await createLs('brief', false);
  const { sessionA, after, b, mark0 } = await takeOver('brief', key, 4, 2);
  tt.ok(
    after.segments.some((x) => sessionOf(x.uri) === sessionA),
    "ingest-1's live playlist still lists ingest-0's segments",
  );
  // B pauses (briefer than the idle timeout), so ingest-1 stores no new
  // playlist that would hide a deletion. ingest-0's run ended with the
  // takeover: its deletion is due DELETE_DELAY_SECONDS later.
  b.child.kill('SIGSTOP');
  await pod0.proc.waitForLine(/ended stream's media/, (DELETE_DELAY_SECONDS + 15) * 1000, mark0);
  const now = await stored('brief');
  tt.ok(now, "the stored playlist is still there after ingest-0's deletion ran");
  tt.notOk(now?.playlist.ended, 'and live');
  if (now) tt.same(await missingObjects('brief', now.playlist), [], 'every object it names is still in the bucket');
  b.child.kill('SIGCONT');
  const later = await waitForStored(
    'brief',
    'more segments from B',
    (p) => p.segments.length > 0 && p.segments.at(-1)!.sequence > after.segments.at(-1)!.sequence,
  );
  tt.same(await missingObjects('brief', later), [], 'B goes on, and every object the playlist names is in the bucket');
  tt.equal(b.child.exitCode, null, 'publisher B is still connected');

  await b.stop('SIGTERM', 5000);
  await waitFor("the whole run's media deleted after ingest-1's run ended", async () => (await listKeys(s3.client, s3.bucket, `${NS}/brief/`)).length === 0, {
    timeoutMs: (DELETE_DELAY_SECONDS + 15) * 1000,
    intervalMs: 200,
  });
  tt.pass('nothing of the stream is left in the bucket');
});

t.test("a kept run taken over twice (ingest-0, ingest-1, ingest-0 again): the VOD lists all three publishers' segments", async (tt) => {
  const key = await createLs('twice', true);
  const sessionsOf = (p: ParsedPlaylist) => [...new Set(p.segments.map((x) => sessionOf(x.uri)))];
  const { sessionA, b } = await takeOver('twice', key, 4, 1);
  // B's run goes past the live window, so the window no longer lists A's segments.
  const beforeC = await waitForStored('twice', "a window of B's segments only", (p) => p.segments.every((x) => sessionOf(x.uri) !== sessionA));
  const sessionB = sessionOf(beforeC.segments[0]!.uri);
  b.child.kill('SIGSTOP');
  const mark = pod0.proc.lines.length;
  const c = publishTestPattern({ url: pod0.rtmpUrl(key), name: 'ffmpeg-twice-c-pod0' });
  await pod0.proc.waitForLine(/"msg":"publish accepted"/, 10_000, mark);
  const afterC = await waitForStored(
    'twice',
    'two segments from C',
    (p) => p.segments.filter((x) => ![sessionA, sessionB].includes(sessionOf(x.uri))).length >= 2,
  );
  tt.equal(
    afterC.segments.find((x) => sessionOf(x.uri) !== sessionB)?.sequence,
    beforeC.segments.at(-1)!.sequence + 1,
    "C continues the media sequence after B's last segment",
  );
  b.child.kill('SIGCONT');
  await b.stop('SIGKILL', 1000);
  await c.stop('SIGTERM', 5000);
  const vod = await waitForStored('twice', 'the final VOD', (p) => p.ended);
  tt.same(sessionsOf(vod), [sessionA, sessionB, sessionOf(afterC.segments.at(-1)!.uri)], "the VOD lists A's, B's and C's segments, in that order");
  tt.equal(vod.mediaSequence, 0, "from the run's first segment");
  tt.same(
    vod.segments.map((s) => sequenceInName(s.uri)),
    vod.segments.map((s) => s.sequence),
    'with no sequence number missing or twice',
  );
  tt.equal(vod.segments.filter((s) => s.discontinuity).length, 2, 'a discontinuity at each takeover');
  tt.same(await missingObjects('twice', vod), [], 'every object the VOD names is in the bucket');
});

t.test('a run that ended on one pod: its deletion leaves the playlist of a new run on the other pod', async (tt) => {
  const key = await createLs('again', false);
  const mark0 = pod0.proc.lines.length;
  const a = publishTestPattern({ url: pod0.rtmpUrl(key), name: 'ffmpeg-again-a-pod0' });
  await pod0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, mark0);
  const first = await waitForStored('again', 'two segments from ingest-0', (p) => p.segments.length >= 2);
  await a.stop('SIGTERM', 5000);
  await waitForStored('again', "ingest-0's run ended", (p) => p.ended);
  // The streamer starts again at once, and the load balancer sends it to ingest-1.
  const mark1 = pod1.proc.lines.length;
  const b = publishTestPattern({ url: pod1.rtmpUrl(key), name: 'ffmpeg-again-b-pod1' });
  await pod1.proc.waitForLine(/"msg":"publish accepted"/, 10_000, mark1);
  await waitForStored(
    'again',
    "ingest-1's new run",
    (p) => !p.ended && p.segments.length >= 1 && sessionOf(p.segments[0]!.uri) !== sessionOf(first.segments[0]!.uri),
  );
  // B pauses (briefer than the idle timeout), so ingest-1 stores no new playlist that would hide a deletion.
  b.child.kill('SIGSTOP');
  await pod0.proc.waitForLine(/ended stream's media/, (DELETE_DELAY_SECONDS + 15) * 1000, mark0);
  const now = await stored('again');
  tt.ok(now, "ingest-1's playlist is still stored after ingest-0 deleted its run's media");
  tt.notOk(now?.playlist.ended, 'and live');
  if (now) tt.same(await missingObjects('again', now.playlist), [], 'every object it names is in the bucket');
  tt.same(await listKeys(s3.client, s3.bucket, `${NS}/again/${sessionOf(first.segments[0]!.uri)}/`), [], "ingest-0's run's media is gone");
  b.child.kill('SIGCONT');
  await b.stop('SIGTERM', 5000);
});

t.test('a run taken over in its reconnect grace period continues too', async (tt) => {
  const key = await createLs('grace', true);
  const { sessionA, after, seen, b, mark0 } = await takeOver('grace', key, 3, 2, 'dropped');
  await pod0.proc.waitForLine(/took the stream over during its reconnect grace; handing the run over/, 5000, mark0);
  tt.pass('ingest-0 hands over the run it held in its grace period');
  const lastSeqA = Math.max(
    ...seen
      .flatMap((s) => s.playlist.segments)
      .filter((x) => sessionOf(x.uri) === sessionA)
      .map((x) => x.sequence),
  );
  tt.notOk(
    seen.some((s) => s.playlist.ended),
    `no stored playlist from the takeover on has EXT-X-ENDLIST (${seen.length} versions seen)`,
  );
  const firstOfB = after.segments.find((x) => sessionOf(x.uri) !== sessionA)!;
  tt.equal(firstOfB.sequence, lastSeqA + 1, 'ingest-1 continues the media sequence');
  tt.ok(firstOfB.discontinuity, 'after a discontinuity');
  await b.stop('SIGTERM', 5000);
  const vod = await waitForStored('grace', 'the final VOD', (p) => p.ended);
  tt.equal(sessionOf(vod.segments[0]!.uri), sessionA, "the VOD starts with ingest-0's segments");
  tt.same(await missingObjects('grace', vod), [], 'every object it names is in the bucket');
});
