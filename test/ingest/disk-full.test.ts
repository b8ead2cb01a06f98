// A full media volume with the object store unreachable, on real parts: the
// real ingest process with its media volume on a small tmpfs, real ffmpeg
// publishing, SeaweedFS stopped and started again. What a streamer and an
// operator must see: nothing accepted is lost (the final playlist with
// EXT-X-ENDLIST is stored and lists every stored segment), new publishes are
// refused with a clear RTMP error and /readyz says not ready while the
// volume is above its high-water mark, the metrics show it, and no
// temporary file is left behind.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parsePlaylist, type ParsedPlaylist } from '../../harness/hls.ts';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { getObject, listKeys } from '../../harness/s3-objects.ts';
import { startS3Server } from '../../harness/s3-server.ts';
import { waitFor } from '../../harness/wait.ts';

const streams: Record<string, TestStream> = {
  full: { name: 'full', key: 'full_key_aaaaaaaaaaaaaaaaaa1', spec: { retention: { keepAfterEnd: true } } },
  other: { name: 'other', key: 'other_key_bbbbbbbbbbbbbbbbb2', spec: { retention: { keepAfterEnd: true } } },
};

const dir = mkdtempSync(join(tmpdir(), 'tteok-disk-'));
const keysFile = join(dir, 'keys.yaml');
const mediaDir = join(dir, 'media');
const ballast = join(mediaDir, 'ballast');
mkdirSync(mediaDir);
// A 3 MiB volume holds about 30 one-second segments of the test pattern.
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mediaDir]);
writeKeyFile(keysFile, Object.values(streams));

const s3 = await startS3Server();
t.teardown(async () => {
  await stopAll();
  await s3.stop();
  execFileSync('umount', ['-l', mediaDir]);
  rmSync(dir, { recursive: true, force: true });
});

const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: mediaDir,
  TTEOK_MEDIA_HIGH_WATER_PERCENT: '60',
  TTEOK_RECONNECT_GRACE_SECONDS: '2',
  TTEOK_DELETE_DELAY_SECONDS: '3600',
  TTEOK_S3_REQUEST_TIMEOUT_MS: '1000',
});

const readyz = async () => (await fetch(`http://127.0.0.1:${ingest.httpPort}/readyz`)).status;

async function storedPlaylist(s: TestStream): Promise<ParsedPlaylist | undefined> {
  const obj = await getObject(s3.client, s3.bucket, `default/${s.name}/index.m3u8`);
  return obj ? parsePlaylist(obj.body.toString('utf8')) : undefined;
}

/** Polls like waitFor, but reports instead of throwing, so one run shows every outcome. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T | undefined> {
  return waitFor(what, probe, { timeoutMs, intervalMs: 200 }).catch(() => undefined);
}

/** Fills what is left of the volume, as another writer or a runaway backlog would. */
function fillVolume(): number {
  const fd = openSync(ballast, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (let i = 0; i < 1024; i++) written += writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  return written;
}

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}

const skippedSegments = (text: string) =>
  metricValue(text, 'tteok_ingest_skipped_segments_total', 'reason="volume_full"') +
  metricValue(text, 'tteok_ingest_skipped_segments_total', 'reason="write_failed"');
const writeFailures = (text: string) =>
  ['segment', 'playlist', 'init', 'journal'].reduce((a, kind) => a + metricValue(text, 'tteok_ingest_media_write_failures_total', `kind="${kind}"`), 0);

t.test('a volume filled while S3 is down loses nothing that was accepted', async (tt) => {
  const s = streams.full!;
  tt.equal(await readyz(), 200, 'ready while the volume has room');
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 45, name: 'publisher-full' });
  await waitFor('the first segments stored', async () => ((await storedPlaylist(s))?.segments.length ?? 0) >= 2, { timeoutMs: 30_000 });

  await s3.pause();
  await waitFor('segments waiting on the volume', async () => metricValue(await ingest.metrics(), 'tteok_ingest_upload_backlog_segments') >= 3, {
    timeoutMs: 20_000,
  });
  const filled = fillVolume();
  tt.ok(filled > 0, `the rest of the volume filled (${filled} bytes)`);

  tt.ok(await eventually('/readyz to say not ready', async () => (await readyz()) === 503), '/readyz is 503 while the volume is above its high-water mark');
  const body = (await (await fetch(`http://127.0.0.1:${ingest.httpPort}/readyz`)).json()) as { reason?: string };
  tt.match(body.reason ?? '', /media volume/, '/readyz says why');
  const during = await ingest.metrics();
  tt.ok(metricValue(during, 'tteok_ingest_media_volume_used_bytes') > 0, 'the volume use is a metric');
  tt.ok(metricValue(during, 'tteok_ingest_media_volume_size_bytes') > 0, 'the volume size is a metric');
  tt.equal(metricValue(during, 'tteok_ingest_media_volume_above_high_water'), 1, 'being above the high-water mark is a metric');

  const refused = publishTestPattern({ url: ingest.rtmpUrl(streams.other!.key), seconds: 3, name: 'publisher-refused' });
  tt.not((await refused.exited).code, 0, 'a new publish is refused');
  tt.match(refused.lines.join('\n'), /media volume is full/, 'the publisher is told why, in RTMP');
  tt.equal(metricValue(await ingest.metrics(), 'tteok_ingest_publishes_total', 'outcome="volume_full"'), 1, 'the refusal is counted');
  const skippedFirst = await eventually('segments to be skipped', async () => {
    const n = skippedSegments(await ingest.metrics());
    return n >= 2 ? n : undefined;
  });
  tt.ok(skippedFirst, `segments that cannot be written are skipped and counted (${skippedFirst})`);

  // Room comes back while the stream is live (still with S3 down), then the
  // volume fills again and the publisher stops while it is full.
  rmSync(ballast);
  tt.ok(
    await eventually('segments to be written again', () => ingest.proc.lines.some((l) => l.includes('writing segments to the media volume again'))),
    'the stream writes segments again once the volume has room',
  );
  fillVolume();
  tt.ok(
    await eventually('segments to be skipped again', async () => skippedSegments(await ingest.metrics()) > skippedFirst!),
    'and skips them again when it is full again',
  );

  tt.equal((await pub.exited).code, 0, 'the live publisher was not cut off');
  const afterEnd = await ingest.metrics();
  tt.ok(writeFailures(afterEnd) > 0, `failed writes are counted (${writeFailures(afterEnd)})`);
  tt.same(filesUnder(join(mediaDir, '.tmp')), [], 'no temporary file is left on the volume');

  // The publisher's exit and the packager's attempt to write the final playlist race: wait for the attempt.
  tt.ok(
    await eventually('the final playlist to be refused by the volume', () =>
      ingest.proc.lines.some((l) => l.includes('the media volume cannot take the final playlist')),
    ),
    'the volume could not take the final playlist: it goes to the store from memory',
  );

  await s3.resume();
  const final = await eventually(
    'the final playlist with EXT-X-ENDLIST to be stored',
    async () => {
      const p = await storedPlaylist(s);
      return p?.ended ? p : undefined;
    },
    60_000,
  );
  tt.ok(final, 'the final playlist is stored although the volume is still full');
  if (final) {
    const listed = final.segments.map((x) => `default/${s.name}/${x.uri}`).sort();
    const stored = await eventually('every listed segment stored', async () => {
      const keys = (await listKeys(s3.client, s3.bucket, `default/${s.name}/`)).filter((k) => k.endsWith('.m4s')).sort();
      return listed.every((k) => keys.includes(k)) ? keys : undefined;
    });
    tt.ok(stored, `every one of the ${listed.length} listed segments is stored`);
    tt.same(listed, stored, 'and every stored segment is listed');
    tt.ok(final.segments.length >= 8, `the VOD holds the run, not a live window (${final.segments.length})`);
    tt.equal(final.mediaSequence, 0, "from the run's first segment");
    tt.ok(
      final.segments.every((x, i) => i === 0 || x.sequence === final.segments[i - 1]!.sequence + 1),
      'media sequence numbers are continuous',
    );
    tt.equal(final.segments.filter((x) => x.discontinuity).length, 1, 'the gap where segments were skipped is marked with a discontinuity');
  }

  rmSync(ballast);
  tt.ok(await eventually('/readyz to be ready again', async () => (await readyz()) === 200), 'ready again once the volume has room');
  tt.equal(metricValue(await ingest.metrics(), 'tteok_ingest_media_volume_above_high_water'), 0, 'the high-water metric clears');
  const leftover = () => filesUnder(mediaDir).filter((f) => /\.(m4s|mp4|jsonl)$/.test(f) || f.includes(`${join(mediaDir, '.tmp')}/`));
  tt.ok(
    await eventually('the volume to hold no media', () => leftover().length === 0),
    'every segment was stored and removed, the journal is gone, nothing temporary is left',
  );
  tt.same(leftover(), []);

  const again = publishTestPattern({ url: ingest.rtmpUrl(streams.other!.key), seconds: 3, name: 'publisher-after' });
  tt.equal((await again.exited).code, 0, 'a new publish is accepted again');
  tt.ok(await eventually('its final playlist', async () => (await storedPlaylist(streams.other!))?.ended), 'and stored');
});
