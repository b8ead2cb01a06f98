// What OBS 30+ can send besides H.264 + AAC, end to end on real parts: ffmpeg 9
// (test/tools/install-ffmpeg9.sh) publishes HEVC, AV1 and Opus over Enhanced
// RTMP, and audio-only streams, to the real ingest process, which packages
// them in process and stores them into a real S3-compatible server
// (SeaweedFS). The assertions read back what the server holds: the playlist,
// the init segment's sample entries, and every segment decoded by ffmpeg
// over HTTP.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { parsePlaylist, type ParsedPlaylist } from '../../../harness/hls.ts';
import { startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { spawnManaged, stopAll } from '../../../harness/process.ts';
import { FFMPEG9, publishTestPattern, type PublishOptions } from '../../../harness/publisher.ts';
import { getObject, headObject, listKeys } from '../../../harness/s3-objects.ts';
import { startS3Server } from '../../../harness/s3-server.ts';
import { waitFor } from '../../../harness/wait.ts';

const run = promisify(execFile);

if (!existsSync(FFMPEG9)) throw new Error(`${FFMPEG9} is missing: run test/tools/install-ffmpeg9.sh (make deps does)`);

const stream = (name: string, n: number): TestStream => ({
  name,
  key: `${name.replace(/-/g, '_')}_key_${String(n).repeat(20)}`,
  spec: { retention: { keepAfterEnd: true } },
});
const streams = {
  hevcAac: stream('hevc-aac', 1),
  av1Opus: stream('av1-opus', 2),
  h264Opus: stream('h264-opus', 3),
  aacOnly: stream('aac-only', 4),
  opusOnly: stream('opus-only', 5),
  reconnect: stream('reconnect', 6),
  vp9: stream('vp9', 7),
  multitrack: stream('multitrack', 8),
};

const s3 = await startS3Server();
const dir = mkdtempSync(join(tmpdir(), 'tteok-codecs-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, Object.values(streams));
const ingest = await startIngestProcess({
  ...s3.ingestEnv,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_RECONNECT_GRACE_SECONDS: '4',
  TTEOK_DELETE_DELAY_SECONDS: '3600',
});

t.teardown(async () => {
  await stopAll();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

// Small pictures, 15 fps and fast presets: this runs on a shared 2-core machine.
const SMALL = { size: '320x180', fps: 15, gopSeconds: 1, binary: FFMPEG9 } as const;
// What OBS announces in its connect command when it offers Enhanced RTMP.
const ENHANCED = ['-rtmp_enhanced_codecs', 'hvc1,av01,Opus'];
const X265 = ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error:bframes=2:scenecut=0:keyint=15:min-keyint=15', '-b:v', '300k'];
const SVT_AV1 = ['-c:v', 'libsvtav1', '-preset', '12', '-b:v', '300k'];
const X264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-sc_threshold', '0', '-b:v', '300k'];
const AAC = ['-c:a', 'aac', '-b:a', '64k', '-ar', '48000', '-ac', '2'];
const OPUS = ['-c:a', 'libopus', '-b:a', '64k', '-ar', '48000', '-ac', '2'];

const playlistKey = (s: TestStream) => `default/${s.name}/index.m3u8`;
const objectKey = (s: TestStream, uri: string) => `default/${s.name}/${uri}`;
const playlistUrl = (s: TestStream) => `${s3.endpoint}/${s3.bucket}/${playlistKey(s)}`;

async function storedPlaylist(s: TestStream): Promise<ParsedPlaylist | undefined> {
  const obj = await getObject(s3.client, s3.bucket, playlistKey(s));
  return obj ? parsePlaylist(obj.body.toString('utf8')) : undefined;
}

function waitForPlaylist(s: TestStream, what: string, ok: (p: ParsedPlaylist) => boolean, timeoutMs = 60_000): Promise<ParsedPlaylist> {
  return waitFor(
    `${s.name}: ${what}`,
    async () => {
      const p = await storedPlaylist(s);
      return p && ok(p) ? p : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

function publish(s: TestStream, options: Omit<PublishOptions, 'url'>) {
  return publishTestPattern({ ...SMALL, url: ingest.rtmpUrl(s.key), name: `ffmpeg9-${s.name}`, outputArgs: ENHANCED, ...options });
}

/** The sample entries (codec FourCCs) of a stored init segment's tracks. */
async function sampleEntries(s: TestStream, initUri: string): Promise<string[]> {
  const init = (await getObject(s3.client, s3.bucket, objectKey(s, initUri)))?.body;
  if (!init) return [];
  return ['avc1', 'hvc1', 'hev1', 'av01', 'vp09', 'mp4a', 'Opus', '.mp3'].filter((fourcc) => init.includes(fourcc, 0, 'latin1'));
}

interface Expected {
  codecs: string[]; // ffprobe codec names, sorted
  entries: string[]; // sample entries of the init segment
  seconds: number;
}

/** The stored run, as a viewer's player and ffmpeg see it. */
async function assertStoredRun(tt: Test, s: TestStream, p: ParsedPlaylist, expected: Expected): Promise<void> {
  tt.ok(p.ended, 'the playlist is ended');
  tt.ok(p.segments.length >= expected.seconds - 1, `${p.segments.length} segments for ${expected.seconds} s`);
  const total = p.segments.reduce((a, x) => a + x.duration, 0);
  tt.ok(Math.abs(total - expected.seconds) < 0.6, `segment durations add up to the ${expected.seconds} s published (${total.toFixed(2)})`);
  for (const seg of p.segments.slice(0, -1)) tt.ok(seg.duration >= 0.9 && seg.duration <= 1.5, `${seg.uri} lasts ${seg.duration} s, near the 1 s target`);
  const pdts = p.segments.map((x) => x.programDateTime);
  tt.ok(
    pdts.every((v, i) => i === 0 || v > pdts[i - 1]!),
    'program date times increase',
  );
  for (const map of new Set(p.maps)) tt.same(await sampleEntries(s, map), expected.entries, `${map} has the ${expected.entries.join(' + ')} sample entries`);
  let missing = 0;
  for (const seg of p.segments) if (!(await headObject(s3.client, s3.bucket, objectKey(s, seg.uri)))) missing++;
  tt.equal(missing, 0, 'every segment is stored');

  const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', playlistUrl(s)]);
  tt.same(
    [...new Set(probe.stdout.split('\n').filter(Boolean))].sort(),
    expected.codecs,
    `ffprobe reads ${expected.codecs.join(' and ')} from the stored playlist over HTTP`,
  );
  const decode = await run('ffmpeg', ['-v', 'error', '-i', playlistUrl(s), '-f', 'null', '-']);
  tt.equal(decode.stderr.trim(), '', 'ffmpeg decodes every segment with no error');
}

const cases: Array<{ title: string; s: TestStream; options: Omit<PublishOptions, 'url'>; expected: Expected }> = [
  {
    title: 'HEVC + AAC',
    s: streams.hevcAac,
    options: { video: X265, audio: AAC },
    expected: { codecs: ['aac', 'hevc'], entries: ['hvc1', 'mp4a'], seconds: 5 },
  },
  {
    title: 'AV1 + Opus',
    s: streams.av1Opus,
    options: { video: SVT_AV1, audio: OPUS },
    expected: { codecs: ['av1', 'opus'], entries: ['av01', 'Opus'], seconds: 5 },
  },
  {
    title: 'H.264 + Opus',
    s: streams.h264Opus,
    options: { video: X264, audio: OPUS },
    expected: { codecs: ['h264', 'opus'], entries: ['avc1', 'Opus'], seconds: 5 },
  },
  { title: 'audio-only AAC', s: streams.aacOnly, options: { video: false, audio: AAC }, expected: { codecs: ['aac'], entries: ['mp4a'], seconds: 5 } },
  { title: 'audio-only Opus', s: streams.opusOnly, options: { video: false, audio: OPUS }, expected: { codecs: ['opus'], entries: ['Opus'], seconds: 5 } },
];

for (const c of cases) {
  t.test(`${c.title} over ${c.options.video === false ? 'RTMP' : 'Enhanced RTMP'}: stored as CMAF HLS with those codecs, decodes`, async (tt) => {
    const pub = publish(c.s, { ...c.options, seconds: c.expected.seconds });
    tt.equal((await pub.exited).code, 0, `ffmpeg 9 published until the end of its input${(await pub.exited).code === 0 ? '' : `:\n${pub.lines.join('\n')}`}`);
    const p = await waitForPlaylist(c.s, 'ENDLIST', (x) => x.ended);
    await assertStoredRun(tt, c.s, p, c.expected);
  });
}

t.test('HEVC: a publisher that drops and reconnects within the grace period continues after a discontinuity', async (tt) => {
  const s = streams.reconnect;
  const first = publish(s, { video: X265, audio: AAC, name: 'hevc-dropping' });
  await waitForPlaylist(s, '3 segments', (p) => p.segments.length >= 3);
  await first.stop('SIGKILL');
  await ingest.proc.waitForLine(/publisher dropped/);
  await sleep(1000);
  const again = publish(s, { video: X265, audio: AAC, seconds: 4, name: 'hevc-reconnected' });
  tt.equal((await again.exited).code, 0, 'the reconnect is accepted');
  const p = await waitForPlaylist(s, 'ENDLIST', (x) => x.ended);
  tt.equal(p.segments.filter((x) => x.discontinuity).length, 1, 'one discontinuity where the publisher came back');
  const maps = [...new Set(p.maps)];
  tt.equal(maps.length, 2, 'a new init segment after the discontinuity');
  for (const map of maps) tt.same(await sampleEntries(s, map), ['hvc1', 'mp4a'], `${map} is HEVC + AAC`);
  tt.ok(
    p.segments.every((x, i) => i === 0 || x.sequence === p.segments[i - 1]!.sequence + 1),
    'media sequence numbers are continuous',
  );
  let missing = 0;
  for (const seg of p.segments) if (!(await headObject(s3.client, s3.bucket, objectKey(s, seg.uri)))) missing++;
  tt.equal(missing, 0, `all ${p.segments.length} segments are stored`);
  // ffmpeg's HLS demuxer does not rebase timestamps at a discontinuity (hls.js does): decode the part after it on its own.
  const after = p.segments.filter((x) => x.map === maps[1]);
  tt.ok(after.length >= 3, `${after.length} segments after the reconnect`);
  const parts = await Promise.all([maps[1]!, ...after.map((x) => x.uri)].map(async (uri) => (await getObject(s3.client, s3.bucket, objectKey(s, uri)))!.body));
  const file = join(dir, 'after-reconnect.mp4');
  writeFileSync(file, Buffer.concat(parts));
  const decode = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
  tt.equal(decode.stderr.trim(), '', 'the run after the reconnect decodes with no error');
});

t.test(
  'multitrack (Enhanced RTMP v2): each video track is a rendition of the ladder (test/ingest/packager/multitrack.test.ts checks it in depth)',
  async (tt) => {
    const s = streams.multitrack;
    // ffmpeg 9 sends a second video stream as multitrack track 1, as OBS's multitrack video does.
    const pub = spawnManaged('ffmpeg9-multitrack', FFMPEG9, [
      '-hide_banner',
      '-nostats',
      '-loglevel',
      'warning',
      '-re',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x180:rate=15',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=160x90:rate=15',
      '-f',
      'lavfi',
      '-i',
      'sine=sample_rate=48000',
      '-t',
      '4',
      '-map',
      '0:v',
      '-map',
      '1:v',
      '-map',
      '2:a',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '15',
      '-b:v',
      '200k',
      '-c:a',
      'aac',
      '-b:a',
      '64k',
      ...ENHANCED,
      '-f',
      'flv',
      ingest.rtmpUrl(s.key),
    ]);
    tt.equal((await pub.exited).code, 0, 'ffmpeg 9 published both tracks');
    const line = await ingest.proc.waitForLine(/multitrack publish: video track 1 is the rendition track1/, 10_000);
    tt.match(line, /"stream":"default\/multitrack"/, 'logged once, naming the stream');
    tt.equal(ingest.proc.lines.filter((l) => /video track 1 is the rendition/.test(l)).length, 1, 'once, not per message');
    // index.m3u8 is the ladder's multivariant playlist; the source's media playlist is the run's timeline.
    const p = await waitFor(
      'multitrack: the source playlist ends',
      async () => {
        const obj = await getObject(s3.client, s3.bucket, objectKey(s, 'source.m3u8'));
        const list = obj ? parsePlaylist(obj.body.toString('utf8')) : undefined;
        return list?.ended ? list : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await assertStoredRun(tt, s, p, { codecs: ['aac', 'h264'], entries: ['avc1', 'mp4a'], seconds: 4 });
    const size = await run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', playlistUrl(s)]);
    tt.same([...new Set(size.stdout.split('\n').filter(Boolean))].sort(), ['160,90', '320,180'], 'both tracks are stored, each at its size');
  },
);

t.test('VP9 is still refused: the ingest names the codec and the OBS setting to change, nothing is stored', async (tt) => {
  const s = streams.vp9;
  const pub = publish(s, {
    video: ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '200k'],
    audio: false,
    seconds: 3,
    name: 'ffmpeg9-vp9',
  });
  await pub.exited;
  const line = await ingest.proc.waitForLine(/VP9/, 20_000);
  tt.match(line, /video codec VP9 .*is not supported; set Settings > Output > Video Encoder to H\.264.*HEVC or AV1/i, 'the log line says what to set instead');
  tt.ok(
    pub.lines.some((l) => /Server error: Video codec VP9 .*is not supported; set Settings > Output > Video Encoder to H\.264.*HEVC or AV1/.test(l)),
    `the publisher is told the same in an RTMP onStatus error:\n${pub.lines.join('\n')}`,
  );
  await sleep(500);
  tt.same(await listKeys(s3.client, s3.bucket, `default/${s.name}/`), [], 'nothing stored for it');
});

t.test('no stream key in any object key or log line', async (tt) => {
  const keys = await listKeys(s3.client, s3.bucket);
  tt.ok(keys.length > 10, `objects were stored (${keys.length})`);
  for (const s of Object.values(streams)) {
    tt.notOk(
      keys.some((k) => k.includes(s.key)),
      `no object key holds ${s.name}'s key`,
    );
    tt.notOk(
      ingest.proc.lines.some((l) => l.includes(s.key)),
      `no log line holds ${s.name}'s key`,
    );
  }
});
