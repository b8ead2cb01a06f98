// A retained run's segment journal (.segments.jsonl) after a crash, on the
// real ingest process killed with SIGKILL and restarted, with real ffmpeg
// publishing. The journal is appended to while live, so a kill (or a full
// volume) can cut its last line anywhere, and a kill between the journal
// append and the playlist's rename leaves the journal one entry ahead of
// the playlist. Either way the restarted ingest must start, and end the run
// with a VOD playlist that lists every segment of the run.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parsePlaylist, type ParsedPlaylist } from '../../../harness/hls.ts';
import { startIngestProcess, writeKeyFile, type IngestProcess, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

const retained = { retention: { keepAfterEnd: true }, hls: { segmentSeconds: 1, playlistLength: 3 } };
const streams: Record<string, TestStream> = {
  truncated: { name: 'truncated', key: 'truncated_key_aaaaaaaaaaaa1', spec: retained },
  ahead: { name: 'ahead', key: 'ahead_key_bbbbbbbbbbbbbbbbbb2', spec: retained },
};

const dir = mkdtempSync(join(tmpdir(), 'tteok-journal-'));
const keysFile = join(dir, 'keys.yaml');
const mediaDir = join(dir, 'media');
const originDir = join(dir, 'origin');
writeKeyFile(keysFile, Object.values(streams));
const ingestEnv = {
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: originDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: mediaDir,
  TTEOK_RECONNECT_GRACE_SECONDS: '2',
  TTEOK_DELETE_DELAY_SECONDS: '3600',
};
let ingest: IngestProcess = await startIngestProcess(ingestEnv);

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const streamDir = (s: TestStream) => join(mediaDir, 'default', s.name);
const journalPath = (s: TestStream) => join(streamDir(s), '.segments.jsonl');

function storedPlaylist(s: TestStream): ParsedPlaylist | undefined {
  try {
    return parsePlaylist(readFileSync(join(originDir, 'default', s.name, 'index.m3u8'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every media segment stored for the stream, as playlist URIs ("<session>/<n>.m4s"). */
function storedSegments(s: TestStream): string[] {
  const root = join(originDir, 'default', s.name);
  const out: string[] = [];
  for (const session of readdirSync(root, { withFileTypes: true })) {
    if (!session.isDirectory()) continue;
    for (const file of readdirSync(join(root, session.name))) if (file.endsWith('.m4s')) out.push(`${session.name}/${file}`);
  }
  return out.sort();
}

/** Publishes until the journal holds at least `segments` lines, then kills the ingest and the publisher. */
async function crashMidStream(s: TestStream, segments: number): Promise<void> {
  const pub = publishTestPattern({ url: ingest.rtmpUrl(s.key), name: `publisher-${s.name}` });
  await waitFor(
    `${s.name}: ${segments} journal lines`,
    () => existsSync(journalPath(s)) && readFileSync(journalPath(s), 'utf8').split('\n').filter(Boolean).length >= segments,
    { timeoutMs: 40_000 },
  );
  await ingest.proc.stop('SIGKILL');
  await pub.stop('SIGKILL');
}

async function restart(): Promise<void> {
  ingest = await startIngestProcess(ingestEnv, { rtmpPort: ingest.rtmpPort, httpPort: ingest.httpPort });
}

async function assertWholeRunListed(tt: Test, s: TestStream, journalUris: string[]): Promise<void> {
  const p = await waitFor(
    `${s.name}: the final playlist`,
    () => {
      const x = storedPlaylist(s);
      return x?.ended ? x : undefined;
    },
    { timeoutMs: 30_000 },
  );
  const listed = p.segments.map((x) => x.uri);
  tt.equal(p.mediaSequence, 0, "the VOD starts at the run's first segment");
  for (const uri of journalUris) tt.ok(listed.includes(uri), `${uri}, journalled before the crash, is in the final playlist`);
  tt.same([...listed].sort(), storedSegments(s), `the final playlist lists exactly the ${listed.length} stored segments`);
  tt.ok(
    p.segments.every((x, i) => i === 0 || x.sequence === p.segments[i - 1]!.sequence + 1),
    'media sequence numbers are continuous',
  );
  await waitFor(`${s.name}: the journal to be removed once the run is ended`, () => !existsSync(journalPath(s)));
}

t.test('a journal whose last line was cut is read up to the cut, with a warning', async (tt) => {
  const s = streams.truncated!;
  await crashMidStream(s, 6);
  const journalUris = readFileSync(journalPath(s), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { uri: string }).uri);
  // The append of the next entry cut short by the kill (or by a full volume).
  appendFileSync(journalPath(s), '{"uri":"' + journalUris.at(-1)!.split('/')[0] + '/99.m4s","durat');
  await restart();
  await ingest.proc.waitForLine(/"level":"warn".*journal/);
  await assertWholeRunListed(tt, s, journalUris);
});

t.test('a journal one entry ahead of the playlist (killed between the append and the rename) keeps the whole run', async (tt) => {
  const s = streams.ahead!;
  await crashMidStream(s, 7);
  const journalUris = readFileSync(journalPath(s), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { uri: string }).uri);
  // Put the volume in the state a kill right after the journal append leaves:
  // the playlist on the volume does not list the newest segment yet.
  const playlistPath = join(streamDir(s), 'index.m3u8');
  const lines = readFileSync(playlistPath, 'utf8').split('\n');
  const last = journalUris.at(-1)!;
  const at = lines.indexOf(last);
  if (at >= 0) {
    // The segment's EXT-X-PROGRAM-DATE-TIME, EXTINF and URI lines.
    lines.splice(at - 2, 3);
    writeFileSync(playlistPath, lines.join('\n'));
  } else {
    tt.comment('the playlist did not list the newest journal entry yet: already one behind');
  }
  tt.notOk(readFileSync(playlistPath, 'utf8').includes(last), 'the playlist on the volume is one entry behind the journal');
  await restart();
  await assertWholeRunListed(tt, s, journalUris);
});
