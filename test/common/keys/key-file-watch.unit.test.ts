// The local key file is watched with chokidar: a stream added by rewriting the
// file in place, by an editor's save through a temporary file and a rename, or
// by deleting and re-creating the file, is picked up without a restart; a
// broken file keeps the last good keys. Real files, a real watcher.
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../../../common/log.ts';
import { FileKeySource } from '../../../common/keys/file-key-source.ts';
import { writeKeyFile } from '../../../harness/ingest-process.ts';
import { waitFor } from '../../../harness/wait.ts';

const dir = await mkdtemp(join(tmpdir(), 'tteok-key-watch-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const file = join(dir, 'keys.yaml');
const logLines: string[] = [];
const log = createLogger('key-watch-test', 'info', { write: (line: string) => void logLines.push(line) });

const first = { name: 'first', key: 'first-key-0123456789' };
const second = { name: 'second', key: 'second-key-0123456789' };
const third = { name: 'third', key: 'third-key-0123456789' };
const fourth = { name: 'fourth', key: 'fourth-key-0123456789' };

writeKeyFile(file, [first]);
const keys = new FileKeySource(file, log);
t.teardown(() => keys.close());
await keys.ready();

const appears = (key: string, how: string) =>
  waitFor(`${how}: the key to be accepted`, async () => keys.lookup(key) ?? undefined, { timeoutMs: 10_000, intervalMs: 50 });

t.test('the first load', async (t) => {
  t.equal(keys.lookup(first.key)?.ref.name, 'first');
  t.equal(keys.lookup(second.key), undefined);
});

t.test('a rewrite in place is picked up', async (t) => {
  let changes = 0;
  keys.onChange(() => changes++);
  writeKeyFile(file, [first, second]);
  t.equal((await appears(second.key, 'rewrite')).ref.name, 'second');
  t.ok(changes >= 1, 'listeners are told');
});

t.test("an editor's save (write a temporary file, rename it over) is picked up", async (t) => {
  const temp = join(dir, '.keys.yaml.tmp');
  writeKeyFile(temp, [first, second, third]);
  await rename(temp, file);
  t.equal((await appears(third.key, 'rename over')).ref.name, 'third');
});

t.test('a file deleted and created again is picked up', async (t) => {
  await unlink(file);
  writeKeyFile(file, [first, fourth]);
  t.equal((await appears(fourth.key, 'delete and re-create')).ref.name, 'fourth');
  t.equal(keys.lookup(third.key), undefined, 'a stream no longer listed is gone');
});

t.test('a broken file keeps the last good keys', async (t) => {
  const refusals = () => logLines.filter((l) => l.includes('key file not reloaded')).length;
  const before = refusals();
  await writeFile(file, 'apiVersion: tteok.dev/v1alpha1\nkind: LiveStream\nmetadata: { name: BAD }\nstreamKey: x\n');
  await waitFor('the broken file to be refused', async () => refusals() > before || undefined, { timeoutMs: 10_000, intervalMs: 50 });
  t.equal(keys.lookup(fourth.key)?.ref.name, 'fourth', 'the last good keys stay');
  t.equal(keys.lookup(first.key)?.ref.name, 'first');
  writeKeyFile(file, [first, fourth, second]);
  t.equal((await appears(second.key, 'good file after a broken one')).ref.name, 'second', 'and the next good file loads');
});
