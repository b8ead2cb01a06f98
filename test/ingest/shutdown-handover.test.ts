// SIGTERM on an ingest pod hands its live streams over instead of ending
// them (issue 13: "delete the ingest pod that holds the stream: the publisher
// reconnects to the other replica and the playlist continues after a
// discontinuity"), on real parts: the kube-apiserver with the controller, two
// ingest processes as pods ingest-0 and ingest-1 on the chart's RBAC, ffmpeg
// over RTMP, SeaweedFS as the one bucket both pods store into.
//
// - ingest-0 gets SIGTERM while ffmpeg publishes to it: ffmpeg's connection
//   ends; a new ffmpeg (what OBS's reconnect does) with the same key
//   publishes to ingest-1, which takes the stream over at once. The stored
//   playlist never ends; it goes on with the next media sequence number
//   after a discontinuity; ingest-0 exits 0 within its shutdown timeout.
// - ingest-0 gets SIGTERM and nobody reconnects: the stream ends
//   (EXT-X-ENDLIST) once the reconnect grace is over, and ingest-0 exits 0.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ParsedPlaylist } from '../../harness/hls.ts';
import { startIngestProcess, type IngestProcess } from '../../harness/ingest-process.ts';
import { adminWithLiveStreams, chartRoles, createReadyLiveStream, serviceAccountKubeconfig, startTestController } from '../../harness/kube-fixtures.ts';
import { startKubeApiServer } from '../../harness/kube.ts';
import { stopAll, type ManagedProcess } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { startS3Server } from '../../harness/s3-server.ts';
import { sessionOf, storedPlaylists } from '../../harness/stored-playlist.ts';
import { waitFor } from '../../harness/wait.ts';

const NS = 'streams';
const SYSTEM = 'tteok-system';
const GROUP = { group: 'tteok.dev', version: 'v1alpha1', plural: 'livestreams' };
const GRACE_SECONDS = 8;
const SHUTDOWN_TIMEOUT_SECONDS = 30;

const kube = await startKubeApiServer();
const s3 = await startS3Server();
const dir = mkdtempSync(join(tmpdir(), 'tteok-shutdown-handover-'));
const { kc, core, custom } = await adminWithLiveStreams(kube, [NS, SYSTEM]);

const controller = await startTestController(kc, SYSTEM);

const ingestKubeconfig = await serviceAccountKubeconfig(kc, kube.kubeconfigPath, dir, SYSTEM, 'tteok-ingest', await chartRoles('ingest', SYSTEM));

function startPod(pod: string): Promise<IngestProcess> {
  return startIngestProcess({
    ...s3.ingestEnv,
    TTEOK_KEY_SOURCE: 'kubernetes',
    KUBECONFIG: ingestKubeconfig,
    TTEOK_POD_NAME: pod,
    TTEOK_POD_NAMESPACE: SYSTEM,
    TTEOK_MEDIA_DIR: join(dir, pod, 'media'),
    TTEOK_RECONNECT_GRACE_SECONDS: String(GRACE_SECONDS),
    TTEOK_SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_TIMEOUT_SECONDS),
  });
}
const pod1 = await startPod('ingest-1');

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
const exitedNow = (p: ManagedProcess) => p.child.exitCode !== null || p.child.signalCode !== null;

t.test('SIGTERM: the publisher reconnects to the other pod, which continues the playlist; the pod exits 0', async (tt) => {
  const key = await createLs('moved', true);
  const pod0 = await startPod('ingest-0');
  const a = publishTestPattern({ url: pod0.rtmpUrl(key), name: 'ffmpeg-moved-a-pod0' });
  await pod0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, 0);
  const before = await waitForStored('moved', 'three segments from ingest-0', (p) => p.segments.length >= 3);
  const sessionA = sessionOf(before.segments[0]!.uri);

  const terminatedAt = Date.now();
  pod0.proc.child.kill('SIGTERM');
  // ffmpeg cannot reconnect by itself: its connection ends, and a new one starts (what OBS does).
  await waitFor('ffmpeg A to exit when ingest-0 closes its connection', () => exitedNow(a), { timeoutMs: 15_000, intervalMs: 50 });
  const mark1 = pod1.proc.lines.length;
  const b = publishTestPattern({ url: pod1.rtmpUrl(key), name: 'ffmpeg-moved-b-pod1' });
  await pod1.proc.waitForLine(/"msg":"publish accepted"/, 10_000, mark1);
  tt.ok(
    pod1.proc.lines.slice(mark1).some((l) => /took the stream claim over/.test(l)),
    'ingest-1 took the claim over from ingest-0',
  );

  const seen: ParsedPlaylist[] = [];
  let lastText = '';
  const after = await waitFor(
    'two segments from ingest-1 in the stored playlist',
    async () => {
      const s = await stored('moved');
      if (s && s.text !== lastText) {
        lastText = s.text;
        seen.push(s.playlist);
      }
      return s && s.playlist.segments.filter((x) => sessionOf(x.uri) !== sessionA).length >= 2 ? s.playlist : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 25 },
  );
  tt.notOk(
    seen.some((p) => p.ended),
    `no stored playlist since the SIGTERM has EXT-X-ENDLIST (${seen.length} versions seen)`,
  );
  const lastSeqA = Math.max(
    ...[before, ...seen]
      .flatMap((p) => p.segments)
      .filter((x) => sessionOf(x.uri) === sessionA)
      .map((x) => x.sequence),
  );
  const firstOfB = after.segments.find((x) => sessionOf(x.uri) !== sessionA)!;
  tt.ok(
    after.segments.some((x) => sessionOf(x.uri) === sessionA),
    "the playlist still lists ingest-0's segments before ingest-1's",
  );
  tt.equal(firstOfB.sequence, lastSeqA + 1, `ingest-1's first segment has the next media sequence number (${lastSeqA + 1})`);
  tt.ok(firstOfB.discontinuity, 'after an EXT-X-DISCONTINUITY');

  const exit = await pod0.proc.exited;
  const tookSeconds = (Date.now() - terminatedAt) / 1000;
  tt.same(exit, { code: 0, signal: null }, 'ingest-0 exits 0');
  tt.ok(tookSeconds < SHUTDOWN_TIMEOUT_SECONDS, `within its shutdown timeout (${tookSeconds.toFixed(1)} s)`);
  tt.ok(
    pod0.proc.lines.some((l) => /run handed over/.test(l)),
    'ingest-0 handed the run over',
  );

  await b.stop('SIGTERM', 5000);
  const vod = await waitForStored('moved', 'the final VOD', (p) => p.ended);
  tt.equal(sessionOf(vod.segments[0]!.uri), sessionA, "the VOD starts with ingest-0's segments");
  tt.same(
    vod.segments.map((s) => s.sequence),
    vod.segments.map((_, i) => i),
    'and lists the whole run, no sequence number missing or twice',
  );
  tt.same(await missingObjects('moved', vod), [], 'every object the VOD names is in the bucket');
});

t.test('SIGTERM with nobody reconnecting: the stream ends after the reconnect grace; the pod exits 0', async (tt) => {
  const key = await createLs('alone', false);
  const pod0 = await startPod('ingest-0');
  const a = publishTestPattern({ url: pod0.rtmpUrl(key), name: 'ffmpeg-alone-a-pod0' });
  await pod0.proc.waitForLine(/"msg":"publish accepted"/, 15_000, 0);
  await waitForStored('alone', 'two segments', (p) => p.segments.length >= 2);
  const terminatedAt = Date.now();
  pod0.proc.child.kill('SIGTERM');
  await waitFor('ffmpeg to exit when ingest-0 closes its connection', () => exitedNow(a), { timeoutMs: 15_000, intervalMs: 50 });
  const ended = await waitForStored('alone', 'EXT-X-ENDLIST', (p) => p.ended, (GRACE_SECONDS + 10) * 1000);
  const endedAfter = (Date.now() - terminatedAt) / 1000;
  tt.ok(ended.segments.length >= 2, 'the final playlist lists the run');
  tt.ok(endedAfter >= GRACE_SECONDS - 1, `not before the reconnect grace (${GRACE_SECONDS} s): a reconnect could have continued it`);
  tt.ok(endedAfter < GRACE_SECONDS + 10, `it ended within the reconnect grace and a margin (${endedAfter.toFixed(1)} s)`);
  const exit = await pod0.proc.exited;
  tt.same(exit, { code: 0, signal: null }, 'ingest-0 exits 0');
  tt.ok((Date.now() - terminatedAt) / 1000 < SHUTDOWN_TIMEOUT_SECONDS, 'within its shutdown timeout');
});
