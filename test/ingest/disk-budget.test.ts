// The media volume as Kubernetes gives it by default: an emptyDir on the
// node's disk with a sizeLimit. The filesystem is large, so statfs never says
// full, but the kubelet evicts the pod (and deletes the volume) past the
// limit. With TTEOK_MEDIA_VOLUME_BYTES set to the limit, the ingest bounds
// its own backlog under the media directory: real ingest process, real ffmpeg,
// and an object store that refuses connections, so the backlog only grows.
import { type Dirent, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { freePort } from '../../harness/ports.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { waitFor } from '../../harness/wait.ts';

const streams: Record<string, TestStream> = {
  busy: { name: 'busy', key: 'busy_key_aaaaaaaaaaaaaaaaaa1', spec: { retention: { keepAfterEnd: true } } },
  late: { name: 'late', key: 'late_key_bbbbbbbbbbbbbbbbbb2' },
};
const BUDGET = 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'tteok-budget-'));
const keysFile = join(dir, 'keys.yaml');
const mediaDir = join(dir, 'media');
writeKeyFile(keysFile, Object.values(streams));
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

// Nothing listens there: every upload fails with ECONNREFUSED.
const deadPort = await freePort();
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 's3',
  TTEOK_S3_BUCKET: 'unreachable',
  TTEOK_S3_ENDPOINT: `http://127.0.0.1:${deadPort}`,
  TTEOK_S3_FORCE_PATH_STYLE: 'true',
  AWS_ACCESS_KEY_ID: 'x',
  AWS_SECRET_ACCESS_KEY: 'y',
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: mediaDir,
  TTEOK_MEDIA_VOLUME_BYTES: '1Mi',
  TTEOK_MEDIA_HIGH_WATER_PERCENT: '50',
  TTEOK_MEDIA_FULL_PERCENT: '80',
  TTEOK_RECONNECT_GRACE_SECONDS: '10',
});

/** Bytes the files under `root` take; the ingest writes meanwhile, so a file or folder gone since its listing counts nothing. */
function bytesUnder(root: string): number {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  for (const e of entries) {
    const path = join(root, e.name);
    if (e.isDirectory()) total += bytesUnder(path);
    else total += (statSync(path, { throwIfNoEntry: false })?.blocks ?? 0) * 512;
  }
  return total;
}

t.test('the backlog stays within TTEOK_MEDIA_VOLUME_BYTES although the filesystem has room', async (tt) => {
  const pub = publishTestPattern({ url: ingest.rtmpUrl(streams.busy!.key), seconds: 30, name: 'publisher-busy' });
  const readyz = async () => fetch(`http://127.0.0.1:${ingest.httpPort}/readyz`);
  const notReady = await waitFor(
    '/readyz to say not ready',
    async () => {
      const res = await readyz();
      return res.status === 503 ? ((await res.json()) as { reason?: string }) : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 200 },
  );
  tt.match(notReady.reason ?? '', /media volume is \d+(\.\d)?% full \(high-water mark 50%\)/, '/readyz is 503 at half the budget, and says why');
  const late = publishTestPattern({ url: ingest.rtmpUrl(streams.late!.key), seconds: 3, name: 'publisher-late' });
  tt.not((await late.exited).code, 0, 'a new publish is refused');
  tt.match(late.lines.join('\n'), /media volume is full/, 'with a clear RTMP error');

  const skipped = await waitFor(
    'segments skipped at the bound',
    async () => {
      const n = metricValue(await ingest.metrics(), 'tteok_ingest_skipped_segments_total', 'reason="volume_full"');
      return n >= 2 ? n : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 200 },
  );
  tt.ok(skipped >= 2, `segments beyond the bound are skipped and counted (${skipped})`);
  const metrics = await ingest.metrics();
  tt.equal(metricValue(metrics, 'tteok_ingest_media_volume_size_bytes'), BUDGET, 'the volume size metric is the configured size');
  tt.ok(metricValue(metrics, 'tteok_ingest_media_volume_used_bytes') >= 0.8 * BUDGET, 'the used metric counts the backlog');
  // The bound is checked once a second: allow what one second of media adds.
  const onDisk = bytesUnder(mediaDir);
  tt.ok(onDisk <= BUDGET, `the media directory holds ${onDisk} bytes, within the ${BUDGET}-byte volume`);
  tt.equal(pub.child.exitCode, null, 'the live publisher is still publishing');

  // The streamer's connection drops; it comes back within the reconnect grace
  // period: its run continues here although new streams are refused.
  await pub.stop('SIGKILL');
  await ingest.proc.waitForLine(/publisher dropped/);
  const back = publishTestPattern({ url: ingest.rtmpUrl(streams.busy!.key), seconds: 4, name: 'publisher-back' });
  tt.equal((await back.exited).code, 0, 'a publisher reconnecting within its grace period is accepted');
  tt.ok(bytesUnder(mediaDir) <= BUDGET, `the backlog stayed within the volume (${bytesUnder(mediaDir)} bytes)`);
  const again = publishTestPattern({ url: ingest.rtmpUrl(streams.late!.key), seconds: 3, name: 'publisher-late-again' });
  tt.not((await again.exited).code, 0, 'while a new stream is still refused');
});
