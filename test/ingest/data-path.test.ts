// The path a segment takes from the packager to the object store, watched at
// the system-call level: strace attached to the real ingest process while
// ffmpeg publishes and SeaweedFS stores. On the normal path the media volume
// is written once per object (a temporary file, then a rename) and nothing
// on it is read back, listed or stat'ed: the packager hands each finished
// object to the uploader in memory. (The volume is still read at start-up,
// which test/ingest/upload/s3.test.ts's SIGKILL test covers.)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parsePlaylist } from '../../harness/hls.ts';
import { startIngestProcess, writeKeyFile, type TestStream } from '../../harness/ingest-process.ts';
import { stopAll } from '../../harness/process.ts';
import { publishTestPattern } from '../../harness/publisher.ts';
import { getObject } from '../../harness/s3-objects.ts';
import { startS3Server } from '../../harness/s3-server.ts';
import { waitFor } from '../../harness/wait.ts';

const stream: TestStream = { name: 'path', key: 'path_key_aaaaaaaaaaaaaaaaaa1' };
const s3 = await startS3Server();
const dir = mkdtempSync(join(tmpdir(), 'tteok-data-path-'));
const mediaDir = join(dir, 'media');
writeKeyFile(join(dir, 'keys.yaml'), [stream]);
// As the chart runs it: an emptyDir's sizeLimit, which the ingest counts against the bytes under the media directory.
const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
  TTEOK_MEDIA_DIR: mediaDir,
  TTEOK_MEDIA_VOLUME_BYTES: '8Gi',
  TTEOK_LOG_LEVEL: 'info',
});

t.teardown(async () => {
  await stopAll();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function storedSegments(): Promise<number> {
  const obj = await getObject(s3.client, s3.bucket, `default/${stream.name}/index.m3u8`);
  return obj ? parsePlaylist(obj.body.toString('utf8')).mediaSequence + parsePlaylist(obj.body.toString('utf8')).segments.length : 0;
}

/** strace on the ingest's threads: file system calls, each with the paths its descriptors name (-y). */
function traceFileCalls(pid: number, out: string): { stop(): Promise<void> } {
  const child = spawn(
    'strace',
    [
      '-f',
      '-y',
      '-qq',
      '-e',
      'trace=openat,open,newfstatat,statx,stat,lstat,getdents64,inotify_add_watch,rename,renameat,renameat2',
      '-o',
      out,
      '-p',
      String(pid),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    async stop() {
      child.kill('SIGINT'); // detaches from the ingest, which goes on
      await exited;
    },
  };
}

t.test("on the normal path the media volume is written once per object and never read back, listed or stat'ed", async (tt) => {
  const pub = publishTestPattern({ url: ingest.rtmpUrl(stream.key), name: 'publisher' });
  await waitFor('the first segments stored', async () => ((await storedSegments()) >= 3 ? true : undefined), { timeoutMs: 30_000 });
  const log = join(dir, 'strace.log');
  const trace = traceFileCalls(ingest.proc.child.pid!, log);
  const from = await storedSegments();
  // A steady state of several segments and their playlists (bounded by the timeout).
  await waitFor('five more segments stored while traced', async () => ((await storedSegments()) >= from + 5 ? true : undefined), { timeoutMs: 40_000 });
  await trace.stop();
  await pub.stop('SIGINT');

  const calls = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.includes(mediaDir));
  const onVolume = (l: string) => !l.includes(`${mediaDir}/.tmp/`);
  const renames = calls.filter((l) => /\brename/.test(l) && /\.m4s"/.test(l));
  tt.ok(renames.length >= 5, `segments were written while traced (${renames.length} renamed into place)`);
  const reads = calls.filter((l) => /\bopen(at)?\(/.test(l) && onVolume(l) && /O_RDONLY/.test(l) && !/O_DIRECTORY/.test(l));
  tt.same(reads, [], 'no file on the media volume is opened for reading');
  const listings = calls.filter((l) => /getdents64|O_DIRECTORY|inotify_add_watch/.test(l));
  tt.same(listings, [], 'no directory of the media volume is listed or watched');
  const stats = calls.filter((l) => /stat/.test(l) && onVolume(l));
  tt.same(stats, [], "no file on the media volume is stat'ed");
});
