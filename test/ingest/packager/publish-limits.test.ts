// What a publisher holding a valid key can make the ingest hold and produce,
// on the real ingest process over a real socket (issue 17): an 8 MiB codec
// record, a GOP that never ends, timestamps that never advance, media hours
// ahead of the wall clock, a timeline that restarts at every keyframe, and an
// acknowledgement window of 1 byte. Each ends the publish with an onStatus
// error the streamer can read, the ingest's peak memory stays bounded, its
// /healthz answers, and another publisher still gets through. A 6 MiB
// keyframe (a 4K keyframe of a 20 Mbps stream) is still accepted.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { metricValue, startIngestProcess, writeKeyFile, type IngestProcess } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { enhancedVideo, HEVC, hevcFrame, mediaMessage, openPublish, receivedText, sendAndDrain } from '../../../harness/rtmp-media.ts';
import { chunk, command, peakRssBytes, rssBytes, type RawConnection } from '../../../harness/rtmp-wire.ts';
import { waitFor } from '../../../harness/wait.ts';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'tteok-publish-limits-'));
const keysFile = join(dir, 'keys.yaml');
const streams = ['av1c', 'hvcc', 'gop', 'frozen', 'ahead', 'restarts', 'big', 'acks', 'after'] as const;
const keyOf = (name: string) => `limits_${name}_key_aaaaaaaaaaaa`.slice(0, 32);
writeKeyFile(
  keysFile,
  streams.map((name) => ({ name, key: keyOf(name) })),
);

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

async function startIngest(name: string, env: Record<string, string> = {}): Promise<IngestProcess> {
  return startIngestProcess({
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(dir, name, 'origin'),
    TTEOK_KEYS_FILE: keysFile,
    TTEOK_MEDIA_DIR: join(dir, name, 'media'),
    TTEOK_LOG_LEVEL: 'info',
    TTEOK_RECONNECT_GRACE_SECONDS: '1',
    ...env,
  });
}

const alive = (ingest: IngestProcess) => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;

/** Resets the process's peak RSS to its current RSS (Linux ≥ 4.0), so VmHWM afterwards is the peak of what follows. */
function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted here: VmHWM then includes the start-up peak, which only makes the bound stricter.
  }
}

/** Polls /healthz every 100 ms while `work` runs: the slowest answer (Infinity when one failed). */
async function slowestHealthz<T>(ingest: IngestProcess, work: Promise<T>): Promise<{ result: T; slowestMs: number }> {
  let done = false;
  let slowestMs = 0;
  const poller = (async () => {
    for (let i = 0; i < 600 && !done; i++) {
      const started = Date.now();
      try {
        const res = await fetch(`http://127.0.0.1:${ingest.httpPort}/healthz`, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        slowestMs = Math.max(slowestMs, res.status === 200 ? Date.now() - started : Infinity);
      } catch {
        slowestMs = Infinity;
      }
      await sleep(100);
    }
  })();
  try {
    return { result: await work, slowestMs };
  } finally {
    done = true;
    await poller;
  }
}

/** Waits for the onStatus error the ingest ends a publish with; its description. */
async function refusal(conn: RawConnection, code = 'NetStream.Publish.Rejected'): Promise<string> {
  return waitFor(
    `an onStatus ${code}`,
    () => {
      const text = receivedText(conn);
      const at = text.indexOf(code);
      if (at < 0) return false;
      const description = /description\x02..([^\x00]+)/s.exec(text.slice(at));
      return description?.[1] ?? false;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

/** Segments the ingest stored for a stream (local origin). */
function storedSegments(ingestName: string, stream: string): number {
  const root = join(dir, ingestName, 'origin', 'default', stream);
  if (!existsSync(root)) return 0;
  let count = 0;
  for (const session of readdirSync(root)) {
    const folder = join(root, session);
    if (statSync(folder).isDirectory()) count += readdirSync(folder).filter((f) => f.endsWith('.m4s')).length;
  }
  return count;
}

/** Publishes 3 s of HEVC (the fixture's configuration, filler frames), paced; resolves once its final playlist is stored. */
async function publishesNormally(t: Test, ingest: IngestProcess, ingestName: string, stream: string): Promise<void> {
  const conn = await openPublish(ingest.rtmpPort, keyOf(stream));
  conn.send(mediaMessage(9, 0, HEVC.config));
  const started = Date.now();
  const keyframe = hevcFrame(true, 4000);
  const delta = hevcFrame(false, 800);
  for (let ms = 0; ms <= 3000; ms += 100) {
    await sendAndDrain(conn, mediaMessage(9, ms, ms % 1000 === 0 ? keyframe : delta));
    await sleep(Math.max(0, started + ms - Date.now()));
  }
  // As ffmpeg ends: deleteStream, then the connection closes.
  await sendAndDrain(conn, command(['deleteStream', 4, null, 1]));
  conn.socket.end();
  const playlist = join(dir, ingestName, 'origin', 'default', stream, 'index.m3u8');
  await waitFor(`${stream}'s final playlist`, () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST'));
  t.ok(storedSegments(ingestName, stream) >= 2, `another publisher (${stream}) is packaged and stored`);
}

t.test('an 8 MiB av1C and an hvcC of 4 million empty NAL units: refused with a sentence, memory and /healthz unaffected', async (t) => {
  const ingest = await startIngest('records');
  const pid = ingest.proc.child.pid!;
  // av1C header (version 1, main profile) then 2-byte empty OBUs (padding, obu_has_size_field, size 0).
  const av1C = Buffer.alloc(8 * MiB - 64, Buffer.from([0x7a, 0x00]));
  av1C.set([0x81, 0x00, 0x0c, 0x00]);
  // hvcC: a 23-byte header, then as many arrays of 65,535 empty NAL units as one 8 MiB message holds.
  const arrays = Math.floor((8 * MiB - 64 - 23) / (3 + 2 * 65535));
  const hvcC = Buffer.alloc(23 + arrays * (3 + 2 * 65535));
  hvcC[0] = 1;
  hvcC[22] = arrays;
  for (let a = 0, pos = 23; a < arrays; a++, pos += 3 + 2 * 65535) hvcC.set([32, 0xff, 0xff], pos);

  for (const [stream, fourcc, record] of [
    ['av1c', 'av01', av1C],
    ['hvcc', 'hvc1', hvcC],
  ] as const) {
    const rssBefore = await rssBytes(pid);
    resetPeak(pid);
    const conn = await openPublish(ingest.rtmpPort, keyOf(stream));
    const { result: description, slowestMs } = await slowestHealthz(
      ingest,
      (async () => {
        await sendAndDrain(conn, mediaMessage(9, 0, enhancedVideo(1, 0, fourcc, record)));
        return refusal(conn);
      })(),
    );
    t.match(description, /is \d+ bytes; at most 64 KiB is accepted/, `${stream}: the streamer reads why (${description})`);
    const peak = await peakRssBytes(pid);
    t.ok(
      peak - rssBefore < 150 * MiB,
      `${stream}: peak RSS grew ${((peak - rssBefore) / MiB).toFixed(0)} MiB (under 150 MiB; before ${(rssBefore / MiB).toFixed(0)} MiB)`,
    );
    t.ok(slowestMs < 1000, `${stream}: /healthz answered within ${slowestMs} ms throughout`);
    await conn.closed;
  }
  t.ok(alive(ingest), 'the ingest is still running');
  await publishesNormally(t, ingest, 'records', 'after');
  await ingest.proc.stop();
});

t.test('a GOP that never ends, and timestamps that never advance, end the publish telling the streamer the OBS setting', async (t) => {
  // Pacing out of the way (100 segments ahead), so only the open fragment's bounds apply.
  const ingest = await startIngest('gop', { TTEOK_MAX_AHEAD_SEGMENTS: '100', TTEOK_MAX_FRAGMENT_MIB: '16' });
  const pid = ingest.proc.child.pid!;

  // One keyframe, then 30 fps delta frames for 20 s of media time (sent at once).
  const gop = await openPublish(ingest.rtmpPort, keyOf('gop'));
  const delta = hevcFrame(false, 1000);
  gop.send(Buffer.concat([mediaMessage(9, 0, HEVC.config), mediaMessage(9, 0, hevcFrame(true, 4000))]));
  for (let i = 1; i <= 600 && !gop.isClosed(); i++) await sendAndDrain(gop, mediaMessage(9, Math.round(i * 33.3), delta));
  const gopDescription = await refusal(gop);
  t.match(
    gopDescription,
    /No keyframe for more than 12 s.*Settings > Output > Keyframe Interval/,
    `the streamer reads the setting to change (${gopDescription})`,
  );

  // One keyframe, then 1 MiB frames whose timestamps stay at 0: only the byte bound can end it.
  const rssBefore = await rssBytes(pid);
  resetPeak(pid);
  const frozen = await openPublish(ingest.rtmpPort, keyOf('frozen'));
  frozen.send(Buffer.concat([mediaMessage(9, 0, HEVC.config), mediaMessage(9, 0, hevcFrame(true, 4000))]));
  const frame = hevcFrame(false, MiB);
  for (let i = 0; i < 40 && !frozen.isClosed(); i++) await sendAndDrain(frozen, mediaMessage(9, 0, frame));
  const frozenDescription = await refusal(frozen);
  t.match(frozenDescription, /More than 16 MiB of media arrived without a keyframe.*Keyframe Interval/, `the streamer reads why (${frozenDescription})`);
  const peak = await peakRssBytes(pid);
  t.ok(peak - rssBefore < 150 * MiB, `peak RSS grew ${((peak - rssBefore) / MiB).toFixed(0)} MiB (under 150 MiB)`);
  const metrics = await ingest.metrics();
  t.equal(metricValue(metrics, 'tteok_ingest_publishes_total', 'outcome="gop_too_long"'), 1, 'counted: gop_too_long');
  t.equal(metricValue(metrics, 'tteok_ingest_publishes_total', 'outcome="fragment_too_large"'), 1, 'counted: fragment_too_large');
  await publishesNormally(t, ingest, 'gop', 'after');
  await ingest.proc.stop();
});

t.test('3,000 keyframes 2 s apart sent back to back: the publish ends with a sentence and few segments are stored', async (t) => {
  const ingest = await startIngest('pace');
  const conn = await openPublish(ingest.rtmpPort, keyOf('ahead'));
  conn.send(mediaMessage(9, 0, HEVC.config));
  const keyframe = hevcFrame(true, 4000);
  const burst = Buffer.concat(Array.from({ length: 3000 }, (_, i) => mediaMessage(9, i * 2000, keyframe)));
  await sendAndDrain(conn, burst);
  const description = await refusal(conn);
  t.match(description, /timestamps ran [\d.]+ s ahead of real time \(at most 3 s is allowed\).*-re/, `the streamer reads why (${description})`);
  await conn.closed;
  // Whatever was cut before the refusal is stored; wait for the run's end (its final playlist).
  const playlist = join(dir, 'pace', 'origin', 'default', 'ahead', 'index.m3u8');
  await waitFor('the run to end', () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST'));
  const segments = storedSegments('pace', 'ahead');
  t.ok(segments <= 6, `${segments} segments stored (of 3,000 keyframes)`);
  t.equal(metricValue(await ingest.metrics(), 'tteok_ingest_publishes_total', 'outcome="ahead_of_real_time"'), 1, 'counted');
  await ingest.proc.stop();
});

t.test('a timeline that restarts at every keyframe (a new init segment each) is bounded by the segment rate', async (t) => {
  const ingest = await startIngest('restarts');
  const conn = await openPublish(ingest.rtmpPort, keyOf('restarts'));
  conn.send(mediaMessage(9, 0, HEVC.config));
  // Keyframes at 0, 1, 0, 1 … ms: each step back starts a new timeline; media time barely advances.
  const keyframe = hevcFrame(true, 4000);
  const burst = Buffer.concat(Array.from({ length: 2000 }, (_, i) => mediaMessage(9, i % 2, keyframe)));
  await sendAndDrain(conn, burst);
  const description = await refusal(conn);
  t.match(description, /makes segments faster than real time/, `the streamer reads why (${description})`);
  await conn.closed;
  const playlist = join(dir, 'restarts', 'origin', 'default', 'restarts', 'index.m3u8');
  await waitFor('the run to end', () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST'));
  const segments = storedSegments('restarts', 'restarts');
  t.ok(segments <= 12, `${segments} segments stored (of 1,000 timeline restarts)`);
  await ingest.proc.stop();
});

t.test('a 6 MiB keyframe (4K at 20 Mbps) is accepted and stored', async (t) => {
  const ingest = await startIngest('big');
  const conn = await openPublish(ingest.rtmpPort, keyOf('big'));
  conn.send(mediaMessage(9, 0, HEVC.config));
  const keyframe = hevcFrame(true, 6 * MiB);
  const delta = hevcFrame(false, 60 * 1024);
  const started = Date.now();
  // 3 s at 30 fps, a keyframe each second, at the media's own pace.
  for (let i = 0; i <= 90; i++) {
    const ms = Math.round((i * 1000) / 30);
    await sendAndDrain(conn, mediaMessage(9, ms, i % 30 === 0 ? keyframe : delta));
    await sleep(Math.max(0, started + ms - Date.now()));
  }
  await sendAndDrain(conn, command(['deleteStream', 4, null, 1]));
  conn.socket.end();
  const playlist = join(dir, 'big', 'origin', 'default', 'big', 'index.m3u8');
  await waitFor('the final playlist', () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST'));
  t.notMatch(receivedText(conn), /NetStream\.Publish\.(Rejected|Failed)/, 'not refused');
  t.ok(storedSegments('big', 'big') >= 3, 'its segments are stored');
  const root = join(dir, 'big', 'origin', 'default', 'big');
  const sizes = readdirSync(root)
    .filter((f) => statSync(join(root, f)).isDirectory())
    .flatMap((s) =>
      readdirSync(join(root, s))
        .filter((f) => f.endsWith('.m4s'))
        .map((f) => statSync(join(root, s, f)).size),
    );
  t.ok(Math.max(...sizes) > 6 * MiB, `a segment holds the 6 MiB keyframe (largest ${(Math.max(...sizes) / MiB).toFixed(1)} MiB)`);
  await ingest.proc.stop();
});

t.test('a Window Acknowledgement Size of 1 does not make the ingest acknowledge every read', async (t) => {
  const ingest = await startIngest('acks');
  const conn = await openPublish(ingest.rtmpPort, keyOf('acks'));
  const window = Buffer.alloc(4);
  window.writeUInt32BE(1);
  await sendAndDrain(conn, chunk(window, { csid: 2, type: 5 }));
  // 2,000 small messages (Acknowledgements of our own, which the ingest ignores), one write each, a few at a time.
  const ours = Buffer.alloc(4);
  let sent = 0;
  for (let i = 0; i < 2000; i++) {
    const message = chunk(ours, { csid: 2, type: 3 });
    sent += message.length;
    await sendAndDrain(conn, message);
    if (i % 4 === 0) await sleep(1);
  }
  // Everything sent has been read once the ingest counted it (the handshake's 3,073 bytes included).
  await waitFor('the ingest to read every byte', async () => metricValue(await ingest.metrics(), 'tteok_ingest_received_bytes_total') >= sent + 3073, {
    timeoutMs: 15_000,
  });
  // Acknowledgement messages from the ingest: type 0 header on chunk stream 2, length 4, type 3.
  const received = conn.received();
  const pattern = Buffer.from([0x02, 0, 0, 0, 0, 0, 4, 0x03]);
  let acks = 0;
  for (let at = received.indexOf(pattern); at >= 0; at = received.indexOf(pattern, at + 1)) acks++;
  t.ok(acks <= Math.ceil(sent / (256 * 1024)) + 1, `${acks} acknowledgements for ${sent} bytes in 2,000 writes`);
  t.ok(alive(ingest), 'the ingest is still running');
  conn.socket.destroy();
  await ingest.proc.stop();
});
