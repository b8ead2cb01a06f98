// The uploader and its per-stream queues in process (ingest/upload/): real
// files on a real media volume, the local object store behind a wrapper that
// records every PUT in order and can fail them, as an S3 outage does.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { ObjectStore, PutOptions } from '../../../common/storage/object-store.ts';
import { REF, rig, storedPlaylist } from '../run-kit.ts';
import { waitFor } from '../../../harness/wait.ts';

/** The local store, with every PUT's key recorded in order; `down` makes PUTs fail as an unreachable S3 does. */
function recording(store: ObjectStore): ObjectStore & { puts: string[]; down: boolean } {
  const wrapped = {
    puts: [] as string[],
    down: false,
    description: store.description,
    async put(key: string, body: Uint8Array, options: PutOptions) {
      if (wrapped.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      await store.put(key, body, options);
      wrapped.puts.push(key);
    },
    get: (key: string) => store.get(key),
    delete: (key: string) => store.delete(key),
    deletePrefix: (prefix: string) => store.deletePrefix(prefix),
  };
  return wrapped;
}

const playlist = (names: string[], ended = false) =>
  '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n' +
  names.map((n) => (n.endsWith('.mp4') ? `#EXT-X-MAP:URI="${n}"\n` : `#EXTINF:1.000,\n${n}\n`)).join('') +
  (ended ? '#EXT-X-ENDLIST\n' : '');

/** Hands an object over as the packager does: written to the volume first, then in memory. */
async function hand(r: Awaited<ReturnType<typeof rig>>, uri: string, kind: 'segment' | 'init' | 'playlist', body: string, names?: string[]) {
  const path = join(r.mediaDir, REF.namespace, REF.name, uri);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, body);
  r.uploader.objectFinished(REF, { uri, kind, body: Buffer.from(body), completedAt: Date.now(), ...(names ? { names, targetDuration: 1 } : {}) });
}

t.test('a playlist is stored only after everything it names, and each stored segment leaves the volume', async (t) => {
  let store!: ReturnType<typeof recording>;
  const r = await rig(t, (s) => (store = recording(s)));
  await hand(r, 's1/init-1.mp4', 'init', 'init');
  await hand(r, 's1/0.m4s', 'segment', 'zero');
  await hand(r, 's1/1.m4s', 'segment', 'one');
  const names = ['s1/init-1.mp4', 's1/0.m4s', 's1/1.m4s'];
  await hand(r, 'index.m3u8', 'playlist', playlist(names), names);
  t.ok(await r.uploader.settled(REF), 'settled');
  t.same(store.puts, ['default/room/s1/init-1.mp4', 'default/room/s1/0.m4s', 'default/room/s1/1.m4s', 'default/room/index.m3u8']);
  t.notOk(existsSync(join(r.mediaDir, 'default/room/s1/0.m4s')), 'stored segments are deleted from the volume');
  t.equal(r.uploader.waitingBytes, 0, 'nothing waits');
});

t.test('while the store is down, objects wait (on the volume, and in memory up to the bound) and go out in order once it is back', async (t) => {
  let store!: ReturnType<typeof recording>;
  // A memory bound of 6 bytes: the first segment's bytes stay in memory, the next ones are read back from the volume.
  const r = await rig(t, (s) => (store = recording(s)), { memoryBytes: 6 });
  store.down = true;
  await hand(r, 's1/init-1.mp4', 'init', 'init');
  await hand(r, 's1/0.m4s', 'segment', 'zero');
  await hand(r, 's1/1.m4s', 'segment', 'one');
  const names = ['s1/init-1.mp4', 's1/0.m4s', 's1/1.m4s'];
  await hand(r, 'index.m3u8', 'playlist', playlist(names, true), names);
  t.equal(r.uploader.waitingBytes, 4 + 4 + 3, 'the backlog counts every waiting segment once');
  t.equal(await storedPlaylist(r), undefined, 'nothing stored while the store is down');
  store.down = false;
  await waitFor('the backlog stored', () => r.uploader.waitingBytes === 0 && store.puts.length === 4, { timeoutMs: 30_000, intervalMs: 50 });
  t.same(
    store.puts,
    ['default/room/s1/init-1.mp4', 'default/room/s1/0.m4s', 'default/room/s1/1.m4s', 'default/room/index.m3u8'],
    'in order, the playlist last',
  );
  t.ok((await storedPlaylist(r))?.ended);
});

t.test("an ended run's media is deleted after the delay, its final playlist with it; a kept run stays", async (t) => {
  const r = await rig(t, undefined, { deleteDelayMs: 50 });
  for (const session of ['kept', 'gone']) {
    await hand(r, `${session}/init-1.mp4`, 'init', 'init');
    await hand(r, `${session}/0.m4s`, 'segment', 'zero');
  }
  const names = ['gone/init-1.mp4', 'gone/0.m4s'];
  await hand(r, 'index.m3u8', 'playlist', playlist(names, true), names);
  await r.uploader.settled(REF);
  r.uploader.runEnded({ ref: REF, sessionFolders: ['kept'], keep: true });
  r.uploader.runEnded({ ref: REF, sessionFolders: ['gone'], keep: false });
  await waitFor('the run deleted', () => !existsSync(join(r.originDir, 'default/room/gone')), { timeoutMs: 10_000, intervalMs: 20 });
  await waitFor('its playlist deleted', () => !existsSync(join(r.originDir, 'default/room/index.m3u8')), { timeoutMs: 10_000, intervalMs: 20 });
  t.ok(existsSync(join(r.originDir, 'default/room/kept/0.m4s')), 'a kept run stays');
});
