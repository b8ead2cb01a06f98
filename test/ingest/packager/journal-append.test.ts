// The segment journal on a real, tiny tmpfs that runs full: an append cut by
// ENOSPC leaves only whole lines on disk and its entry is written with the
// next append once there is room; reading skips a cut line; the journal and
// a playlist that disagree are reconciled to keep every segment either names.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { PlaylistSegment } from '../../../common/media-playlist.ts';
import { readJournal, reconcileSegments, SegmentJournal } from '../../../ingest/packager/segment-journal.ts';

const dir = mkdtempSync(join(tmpdir(), 'tteok-journal-append-'));
const volume = join(dir, 'volume');
mkdirSync(volume);
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', volume]);
mkdirSync(join(volume, '.tmp'));
t.teardown(() => {
  execFileSync('umount', ['-l', volume]);
  rmSync(dir, { recursive: true, force: true });
});

/** A segment entry; its init URI is padded so that each line spans more than a page and an append needs new blocks. */
function entry(n: number, pad = 0): PlaylistSegment {
  return { uri: `s/${n}.m4s`, duration: 1, programDateTime: 1_700_000_000_000 + n * 1000, initUri: `s/init-1.mp4${'#'.repeat(pad)}`, discontinuity: false };
}

function fill(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < 1024; i++) writeSync(fd, Buffer.alloc(4096, 1));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

t.test('an append cut by a full volume leaves whole lines only, and is written once there is room', async (tt) => {
  const path = join(volume, '.segments.jsonl');
  const journal = new SegmentJournal(path, join(volume, '.tmp'));
  await journal.append(entry(0, 6000));
  await journal.append(entry(1, 6000));
  const ballast = join(volume, 'ballast');
  fill(ballast);
  await tt.rejects(journal.append(entry(2, 6000)), { code: 'ENOSPC' }, 'the append fails: the volume is full');
  await tt.rejects(journal.append(entry(3, 6000)), { code: 'ENOSPC' }, 'and the next one too');
  const whileFull = await readJournal(path);
  tt.equal(whileFull?.badLines, 0, 'no partial line is left in the journal');
  tt.same(
    whileFull?.entries.map((e) => e.uri),
    ['s/0.m4s', 's/1.m4s'],
    'the entries written before are intact',
  );
  rmSync(ballast);
  await journal.append(entry(4, 6000));
  const after = await readJournal(path);
  tt.equal(after?.badLines, 0, 'whole lines only');
  tt.same(
    after?.entries.map((e) => e.uri),
    ['s/0.m4s', 's/1.m4s', 's/2.m4s', 's/3.m4s', 's/4.m4s'],
    'the entries that failed are written with the next append, in order',
  );
  await journal.remove();
});

t.test('a cut last line is skipped when reading; lines after a repair append cleanly', async (tt) => {
  const path = join(volume, 'cut.jsonl');
  writeFileSync(path, JSON.stringify(entry(0)) + '\n' + JSON.stringify(entry(1)) + '\n' + JSON.stringify(entry(2)).slice(0, 25));
  const read = await readJournal(path);
  tt.equal(read?.badLines, 1, 'one line did not parse');
  tt.same(
    read?.entries.map((e) => e.uri),
    ['s/0.m4s', 's/1.m4s'],
  );
  const journal = new SegmentJournal(path, join(volume, '.tmp'));
  await journal.replace(read!.entries);
  await journal.append(entry(2));
  tt.same(
    readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as PlaylistSegment).uri),
    ['s/0.m4s', 's/1.m4s', 's/2.m4s'],
    'the repaired journal takes appends',
  );
  tt.equal(await readJournal(join(volume, 'missing.jsonl')), undefined, 'no journal reads as none');
});

t.test('journal and playlist window are reconciled to every segment either names, in sequence order', async (tt) => {
  const journal = [0, 1, 2, 3, 4, 5, 6].map((n) => entry(n));
  tt.same(
    reconcileSegments(
      journal,
      [4, 5].map((n) => entry(n)),
    ).map((e) => e.uri),
    journal.map((e) => e.uri),
    'journal one ahead of the playlist: the whole run',
  );
  tt.same(
    reconcileSegments(
      journal.slice(0, 5),
      [4, 5, 6].map((n) => entry(n)),
    ).map((e) => e.uri),
    journal.map((e) => e.uri),
    'journal behind (its last lines cut): the playlist supplies the rest',
  );
  tt.same(
    reconcileSegments(
      [],
      [8, 9, 10].map((n) => entry(n)),
    ).map((e) => e.uri),
    ['s/8.m4s', 's/9.m4s', 's/10.m4s'],
    'numeric, not string, order',
  );
  const window = [entry(5, 0)];
  window[0]!.discontinuity = true;
  tt.equal(reconcileSegments(journal, window)[5]!.discontinuity, true, "the playlist's copy of a segment wins");
});
