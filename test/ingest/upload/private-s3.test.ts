// A private stream through the real ingest into a real S3 server (SeaweedFS):
// ffmpeg publishes over RTMP, and every object of the private stream is
// stored under <prefix>/_private/ (none on the public path), while a public
// stream's objects stay where they always were. The CDN's rule
// (common/playback-token.ts, the CloudFront Function's twin) turns a
// tokenized viewer URL into exactly the stored key, and refuses the stored
// key asked for without a token.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { authorizeMediaPath, mintPlaybackToken } from '../../../common/playback-token.ts';
import { parsePlaylist } from '../../../harness/hls.ts';
import { startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { getObject, listKeys } from '../../../harness/s3-objects.ts';
import { startS3Server } from '../../../harness/s3-server.ts';
import { waitFor } from '../../../harness/wait.ts';

const members: TestStream = {
  name: 'members',
  key: 'members_key_aaaaaaaaaaaaaaa1',
  spec: { playback: { access: 'private' }, retention: { keepAfterEnd: true } },
};
const open: TestStream = { name: 'open', key: 'open_key_bbbbbbbbbbbbbbbbbbb2', spec: { retention: { keepAfterEnd: true } } };

const s3 = await startS3Server('tteok-private-ingest');
const dir = mkdtempSync(join(tmpdir(), 'tteok-private-ingest-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, [members, open]);
const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_S3_PREFIX: 'live',
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
});
t.teardown(async () => {
  await stopAll();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

t.test('a private stream is stored under <prefix>/_private/, a public one where it always was', async (t) => {
  const publishers = [members, open].map((s) => publishTestPattern({ url: ingest.rtmpUrl(s.key), seconds: 5, name: `ffmpeg-${s.name}` }));
  const playlistOf = async (key: string) => {
    const obj = await getObject(s3.client, s3.bucket, key);
    return obj ? parsePlaylist(obj.body.toString('utf8')) : undefined;
  };
  const privatePlaylist = await waitFor(
    'the private playlist, ended',
    async () => {
      const p = await playlistOf('live/_private/default/members/index.m3u8');
      return p?.ended ? p : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  await waitFor('the public playlist, ended', async () => (await playlistOf('live/default/open/index.m3u8'))?.ended, { timeoutMs: 60_000, intervalMs: 250 });
  await Promise.all(publishers.map((p) => p.exited));

  const privateKeys = await listKeys(s3.client, s3.bucket, 'live/_private/');
  t.ok(privateKeys.length >= 4, `${privateKeys.length} objects under live/_private/`);
  t.ok(
    privateKeys.every((k) => k.startsWith('live/_private/default/members/')),
    "only the private stream's",
  );
  t.same(await listKeys(s3.client, s3.bucket, 'live/default/members/'), [], 'nothing of it on the public path');
  t.ok((await listKeys(s3.client, s3.bucket, 'live/default/open/')).length >= 4, 'the public stream where it always was');
  for (const segment of privatePlaylist.segments) {
    t.ok(privateKeys.includes(`live/_private/default/members/${segment.uri}`), `${segment.uri} stored privately`);
    t.ok(privateKeys.includes(`live/_private/default/members/${segment.map}`), `its init segment ${segment.map} too`);
  }

  // The CDN's rule maps a viewer's tokenized URI onto exactly these keys.
  const key = { id: 'k1', secret: 'a-shared-secret-0123456789abcdefghijklmnop' };
  const secretOf = (id: string) => (id === key.id ? key.secret : undefined);
  const token = mintPlaybackToken(key, { prefix: 'live', namespace: 'default', name: 'members' }, 600).token;
  for (const stored of privateKeys) {
    const decision = authorizeMediaPath(`/_t/${token}/${stored}`, secretOf);
    t.same(decision, { allow: true, uri: `/${stored}` }, `/_t/<token>/${stored} → the stored key`);
    t.equal(authorizeMediaPath(`/${stored}`, secretOf).allow, false, `${stored} without a token is refused`);
  }
});
