// The ingest end to end on real parts: ffmpeg publishes RTMP the way OBS does,
// the real ingest process packages CMAF HLS and stores it into a real
// S3-compatible server (SeaweedFS), and the assertions read back what the
// server holds — through a recording proxy that tells exactly when each
// object was stored.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { parsePlaylist, type ParsedPlaylist } from '../../../harness/hls.ts';
import { metricValue, startIngestProcess, writeKeyFile, type IngestProcess, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { getObject, headObject, listKeys } from '../../../harness/s3-objects.ts';
import { startS3Recorder } from '../../../harness/s3-recorder.ts';
import { startS3Server } from '../../../harness/s3-server.ts';
import { waitFor } from '../../../harness/wait.ts';

const run = promisify(execFile);

const streams: Record<string, TestStream> = {
  live: { name: 'live', key: 'live_key_aaaaaaaaaaaaaaaa1', spec: { title: 'Live' } },
  vod: { name: 'vod', key: 'vod_key_bbbbbbbbbbbbbbbbbb2', spec: { retention: { keepAfterEnd: true } } },
  reconnect: { name: 'reconnect', key: 'reconnect_key_cccccccccccc3', spec: { retention: { keepAfterEnd: true } } },
  outage: { name: 'outage', key: 'outage_key_dddddddddddddd4', spec: { retention: { keepAfterEnd: true } } },
  crash: { name: 'crash', key: 'crash_key_eeeeeeeeeeeeeeee5', spec: { retention: { keepAfterEnd: true } } },
  term: { name: 'term', key: 'term_key_ffffffffffffffffff6', spec: { retention: { keepAfterEnd: true } } },
};
const WRONG_KEY = 'wrong_key_zzzzzzzzzzzzzzzzz9';
const ALL_KEYS = [...Object.values(streams).map((s) => s.key), WRONG_KEY];

const s3 = await startS3Server();
const recorder = await startS3Recorder(s3.endpoint, s3.bucket);
const dir = mkdtempSync(join(tmpdir(), 'tteok-ingest-'));
const keysFile = join(dir, 'keys.yaml');
const mediaDir = join(dir, 'media');
writeKeyFile(keysFile, Object.values(streams));
const ingestEnv = {
  ...s3.ingestEnv,
  TTEOK_S3_ENDPOINT: recorder.endpoint,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: mediaDir,
  TTEOK_RECONNECT_GRACE_SECONDS: '4',
  TTEOK_DELETE_DELAY_SECONDS: '3600',
  TTEOK_S3_REQUEST_TIMEOUT_MS: '2000',
  // A small memory for waiting segments: during the S3 outage below, the
  // backlog outgrows it and the rest is read back from the media volume.
  TTEOK_UPLOAD_MEMORY_MIB: '0.25',
};
let ingest: IngestProcess = await startIngestProcess(ingestEnv);
const allLogLines: string[][] = [ingest.proc.lines];

t.teardown(async () => {
  await stopAll();
  await recorder.close();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

const playlistKey = (s: TestStream) => `default/${s.name}/index.m3u8`;
const objectKey = (s: TestStream, uri: string) => `default/${s.name}/${uri}`;

async function storedPlaylist(s: TestStream): Promise<ParsedPlaylist | undefined> {
  const obj = await getObject(s3.client, s3.bucket, playlistKey(s));
  return obj ? parsePlaylist(obj.body.toString('utf8')) : undefined;
}

async function waitForPlaylist(s: TestStream, what: string, ok: (p: ParsedPlaylist) => boolean, timeoutMs = 40_000): Promise<ParsedPlaylist> {
  return waitFor(
    `${s.name}: ${what}`,
    async () => {
      const p = await storedPlaylist(s);
      return p && ok(p) ? p : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  try {
    walk(root);
  } catch {
    // no media dir yet
  }
  return out;
}

/** Every playlist version stored named only segments that were already stored when its PUT began. */
function assertUploadOrder(tt: Test, s: TestStream): void {
  const prefix = `default/${s.name}/`;
  const segmentStoredAt = new Map<string, number>();
  for (const r of recorder.puts((k) => k.startsWith(prefix) && !k.endsWith('.m3u8'))) {
    if (!segmentStoredAt.has(r.key)) segmentStoredAt.set(r.key, r.finishedAt);
  }
  const playlists = recorder.puts((k) => k === playlistKey(s));
  tt.ok(playlists.length > 0, `${s.name}: playlists were stored`);
  let violations = 0;
  for (const p of playlists) {
    const parsed = parsePlaylist(p.body ?? '');
    for (const uri of [...parsed.maps, ...parsed.segments.map((x) => x.uri)]) {
      const storedAt = segmentStoredAt.get(prefix + uri);
      if (storedAt === undefined || storedAt > p.startedAt) violations++;
    }
  }
  tt.equal(violations, 0, `${s.name}: every one of ${playlists.length} playlist versions named only segments already stored`);
}

t.test('a wrong key is refused before media flows: nothing stored, nothing written', async (tt) => {
  const pub = publishTestPattern({ url: ingest.rtmpUrl(WRONG_KEY), seconds: 3 });
  const { code } = await pub.exited;
  tt.not(code, 0, 'ffmpeg fails to publish');
  tt.match(pub.lines.join('\n'), /Unknown stream key/, 'the publisher is told why');
  await ingest.proc.waitForLine(/publish refused/);
  await sleep(500);
  tt.same(await listKeys(s3.client, s3.bucket), [], 'the bucket holds no object');
  tt.same(filesUnder(mediaDir), [], 'the media volume holds no file');
  const malformed = publishTestPattern({ url: ingest.rtmpUrl('short'), seconds: 2 });
  tt.not((await malformed.exited).code, 0, 'a malformed key is refused too');
  tt.match(await ingest.metrics(), /tteok_ingest_publishes_total\{outcome="unknown_key"\} 1/);
});

t.test('a publish becomes CMAF HLS in S3 with the right headers, durations and order', async (tt) => {
  const s = streams.vod!;
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 6 });
  tt.equal((await pub.exited).code, 0, 'ffmpeg published until the end of its input');
  const playlist = await waitForPlaylist(s, 'ENDLIST', (p) => p.ended);

  const head = await headObject(s3.client, s3.bucket, playlistKey(s));
  tt.equal(head?.contentType, 'application/vnd.apple.mpegurl', 'playlist Content-Type');
  tt.equal(head?.cacheControl, 'public, max-age=0', 'playlist cached at most half a 1 s segment');
  const uris = [...new Set(playlist.maps), ...playlist.segments.map((x) => x.uri)];
  for (const uri of uris) {
    const h = await headObject(s3.client, s3.bucket, objectKey(s, uri));
    tt.equal(h?.contentType, 'video/mp4', `${uri} Content-Type`);
    tt.equal(h?.cacheControl, 'public, max-age=31536000, immutable', `${uri} Cache-Control`);
  }
  tt.equal(playlist.maps.length, 1, 'one init segment');
  tt.ok(playlist.segments.length >= 5, `kept all ${playlist.segments.length} segments (retention)`);
  const total = playlist.segments.reduce((a, x) => a + x.duration, 0);
  tt.ok(Math.abs(total - 6) < 0.5, `segment durations add up to the 6 s published (${total.toFixed(2)})`);
  for (const seg of playlist.segments.slice(0, -1)) {
    tt.ok(seg.duration >= 0.9 && seg.duration <= 1.5, `${seg.uri} lasts ${seg.duration} s, near the 1 s target`);
  }
  const pdts = playlist.segments.map((x) => x.programDateTime);
  tt.ok(
    pdts.every((v, i) => i === 0 || v > pdts[i - 1]!),
    'program date times increase',
  );
  tt.ok(Math.abs(pdts[0]! - Date.now()) < 60_000, 'program date time is the wall clock');
  assertUploadOrder(tt, s);

  const url = `${s3.endpoint}/${s3.bucket}/${playlistKey(s)}`;
  const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', url]);
  // ffprobe lists each stream once per program and once on its own.
  tt.same([...new Set(probe.stdout.split('\n').filter(Boolean))].sort(), ['aac', 'h264'], 'ffprobe reads H.264 and AAC over HTTP');
  const decode = await run('ffmpeg', ['-v', 'error', '-i', url, '-map', '0:v', '-map', '0:a', '-f', 'null', '-']);
  tt.equal(decode.stderr.trim(), '', 'ffmpeg decodes every segment with no error');
  const frames = await run('ffprobe', [
    '-v',
    'error',
    '-count_frames',
    '-select_streams',
    'v:0',
    '-show_entries',
    'stream=nb_read_frames',
    '-of',
    'csv=p=0',
    url,
  ]);
  const count = Math.max(...frames.stdout.split('\n').filter(Boolean).map(Number));
  tt.ok(count >= 170 && count <= 185, `all ~180 frames of 6 s at 30 fps decode (${count})`);
  tt.same(
    filesUnder(mediaDir).filter((f) => f.endsWith('.m4s')),
    [],
    'stored segments are removed from the media volume',
  );
});

t.test('a second publisher on a live key is refused; the first goes on', async (tt) => {
  const s = streams.live!;
  const first = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 10, name: 'first' });
  await waitForPlaylist(s, '2 segments', (p) => p.segments.length >= 2);
  const second = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 5, name: 'second' });
  tt.not((await second.exited).code, 0, 'the second publisher is refused');
  tt.match(second.lines.join('\n'), /already has a publisher/);
  tt.equal((await first.exited).code, 0, 'the first publisher ran to the end');
  const p = await waitForPlaylist(s, 'ENDLIST', (x) => x.ended);
  tt.ok(p.mediaSequence + p.segments.length >= 9, `the first publish kept producing segments (${p.mediaSequence + p.segments.length})`);
  tt.equal(p.segments.length, 6, 'the live window holds playlistLength segments');
  tt.equal(p.maps.length, 1, 'one session, one init segment');
  assertUploadOrder(tt, s);
});

t.test('a publisher that drops and reconnects within the grace period continues the playlist', async (tt) => {
  const s = streams.reconnect!;
  const first = publishTestPattern({ url: ingest.rtmpUrl(s.key), name: 'dropping' });
  await waitForPlaylist(s, '3 segments', (p) => p.segments.length >= 3);
  await first.stop('SIGKILL');
  await ingest.proc.waitForLine(/publisher dropped/);
  await sleep(1000);
  const again = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 4, name: 'reconnected' });
  tt.equal((await again.exited).code, 0, 'the reconnect is accepted');
  const p = await waitForPlaylist(s, 'ENDLIST', (x) => x.ended);
  const discontinuities = p.segments.filter((x) => x.discontinuity);
  tt.equal(discontinuities.length, 1, 'one discontinuity where the publisher came back');
  tt.equal(new Set(p.maps).size, 2, 'a new init segment after the discontinuity');
  tt.not(p.maps[0]!.split('/')[0], p.maps[1]!.split('/')[0], 'each publish session has a folder of its own');
  tt.ok(
    p.segments.every((x, i) => i === 0 || x.sequence === p.segments[i - 1]!.sequence + 1),
    'media sequence numbers are continuous',
  );
  tt.equal(p.segments[0]!.sequence, 0, 'the same playlist from its first segment');
  for (const seg of p.segments) tt.ok(await headObject(s3.client, s3.bucket, objectKey(s, seg.uri)), `${seg.uri} is stored`);
  assertUploadOrder(tt, s);
});

t.test('S3 down for 10 s mid-stream: every segment is stored afterwards, in order', async (tt) => {
  const s = streams.outage!;
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 20, name: 'outage' });
  await waitForPlaylist(s, '3 segments', (p) => p.segments.length >= 3);
  await s3.pause();
  await sleep(10_000);
  const during = await ingest.metrics();
  tt.ok(metricValue(during, 'tteok_ingest_upload_backlog_segments') >= 5, 'segments wait on the media volume while S3 is down');
  tt.ok(
    ingest.proc.lines.some((l) => l.includes('further segments wait on the media volume only')),
    'the backlog outgrew its memory: the rest is read back from the volume',
  );
  await s3.resume();
  tt.equal((await pub.exited).code, 0, 'the publisher never noticed');
  const p = await waitForPlaylist(s, 'ENDLIST', (x) => x.ended, 60_000);
  const total = p.segments.reduce((a, x) => a + x.duration, 0);
  tt.ok(Math.abs(total - 20) < 1, `the playlist covers the whole 20 s (${total.toFixed(2)})`);
  tt.ok(
    p.segments.every((x, i) => i === 0 || x.sequence === p.segments[i - 1]!.sequence + 1),
    'no gap in the playlist',
  );
  tt.equal(p.segments.filter((x) => x.discontinuity).length, 0, 'no discontinuity: nothing was lost');
  let missing = 0;
  for (const seg of p.segments) if (!(await headObject(s3.client, s3.bucket, objectKey(s, seg.uri)))) missing++;
  tt.equal(missing, 0, `all ${p.segments.length} segments are stored`);
  const after = await ingest.metrics();
  tt.ok(
    metricValue(after, 'tteok_ingest_upload_failures_total', 'kind="segment",reason="server_error"') +
      metricValue(after, 'tteok_ingest_upload_failures_total', 'kind="segment",reason="network"') >
      0,
    'failed attempts are counted',
  );
  await waitFor('backlog to drain', async () => metricValue(await ingest.metrics(), 'tteok_ingest_upload_backlog_segments') === 0);
  assertUploadOrder(tt, s);
  const url = `${s3.endpoint}/${s3.bucket}/${playlistKey(s)}`;
  const decode = await run('ffmpeg', ['-v', 'error', '-i', url, '-f', 'null', '-']);
  tt.equal(decode.stderr.trim(), '', 'the recovered stream decodes with no error');
});

t.test('the ingest killed with SIGKILL mid-stream: what it left on the volume is uploaded after a restart', async (tt) => {
  const s = streams.crash!;
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), name: 'crash' });
  await waitForPlaylist(s, '2 segments', (p) => p.segments.length >= 2);
  // Hold uploads back so segments are waiting on the volume when the process dies.
  await s3.pause();
  await sleep(4000);
  await ingest.proc.stop('SIGKILL');
  await pub.stop('SIGKILL');
  const left = filesUnder(join(mediaDir, 'default', s.name)).filter((f) => f.endsWith('.m4s'));
  tt.ok(left.length >= 3, `segments were waiting on the media volume (${left.length})`);
  await s3.resume();
  ingest = await startIngestProcess(ingestEnv, { rtmpPort: ingest.rtmpPort, httpPort: ingest.httpPort });
  allLogLines.push(ingest.proc.lines);
  const p = await waitForPlaylist(s, 'ENDLIST after the grace period', (x) => x.ended, 60_000);
  for (const file of left) {
    const uri = file.split(`${s.name}/`)[1]!;
    tt.ok(await headObject(s3.client, s3.bucket, objectKey(s, uri)), `${uri}, left on the volume, is stored`);
    tt.ok(
      p.segments.some((x) => x.uri === uri),
      `${uri} is in the final playlist`,
    );
  }
  tt.ok(
    p.segments.every((x, i) => i === 0 || x.sequence === p.segments[i - 1]!.sequence + 1),
    'the final playlist is continuous',
  );
  await waitFor('the media volume to empty', () => filesUnder(join(mediaDir, 'default', s.name)).filter((f) => f.endsWith('.m4s')).length === 0);
});

t.test('SIGTERM ends live streams, finishes uploads and exits cleanly', async (tt) => {
  const s = streams.term!;
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), name: 'term' });
  await waitForPlaylist(s, '2 segments', (p) => p.segments.length >= 2);
  await ingest.proc.stop('SIGTERM', 30_000);
  const { code } = await ingest.proc.exited;
  tt.equal(code, 0, 'the ingest exits 0');
  await pub.stop('SIGKILL');
  const p = await storedPlaylist(s);
  tt.ok(p?.ended, 'the playlist was ended and stored before exit');
  for (const seg of p?.segments ?? []) tt.ok(await headObject(s3.client, s3.bucket, objectKey(s, seg.uri)), `${seg.uri} is stored`);
});

t.test('no stream key appears in any object key or log line', async (tt) => {
  const keys = await listKeys(s3.client, s3.bucket);
  tt.ok(keys.length > 20, `objects were stored (${keys.length})`);
  const lines = allLogLines.flat();
  tt.ok(lines.length > 10, 'the ingest logged');
  for (const key of ALL_KEYS) {
    tt.notOk(
      keys.some((k) => k.includes(key)),
      `no object key holds ${key.slice(0, 6)}…`,
    );
    tt.notOk(
      lines.some((l) => l.includes(key)),
      `no log line holds ${key.slice(0, 6)}…`,
    );
    tt.notOk(
      recorder.requests.some((r) => r.key.includes(key)),
      `no S3 request path holds ${key.slice(0, 6)}…`,
    );
  }
});
