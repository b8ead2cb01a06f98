// Server-side renditions end to end on real parts: ffmpeg publishes RTMP, the
// real ingest process packages the source and has it transcoded — by ffmpeg
// child processes of its own (TTEOK_TRANSCODER=local, the one-machine mode)
// or by the transcoder role as its own process (remote) — and stores the
// ladder into SeaweedFS. The assertions read what viewers would get from the
// bucket: every rendition stored and at most one segment behind the source,
// decodable at its preset's size, a thumbnail with a short cache; and with
// the transcoder killed, the source flowing on and the missing renditions
// counted.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseMediaPlaylist, type ParsedMediaPlaylist } from '../../../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../../common/multivariant-playlist.ts';
import { metricValue, startIngestProcess, writeKeyFile, type TestStream } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { getObject } from '../../../harness/s3-objects.ts';
import { startS3Server } from '../../../harness/s3-server.ts';
import { startTranscoderProcess } from '../../../harness/transcoder-process.ts';
import { waitFor } from '../../../harness/wait.ts';
import { ffprobe, tempDir } from '../../fixtures/media.ts';

const s3 = await startS3Server();
t.teardown(async () => {
  await stopAll();
  await s3.stop();
});

// Light enough to keep up on a loaded 2-core machine (this one runs other work beside the test: a job with
// no encoding at all, the audio rendition, takes 0.3–0.5 s of process start there): a 360p source in 2 s
// segments, a 160p and an audio-only rendition.
const LADDER = ['160p', 'audio'];

async function stored(path: string): Promise<string | undefined> {
  return (await getObject(s3.client, s3.bucket, path))?.body.toString('utf8');
}

async function mediaPlaylist(folder: string, file: string): Promise<ParsedMediaPlaylist | undefined> {
  const text = await stored(`${folder}/${file}`);
  return text === undefined ? undefined : parseMediaPlaylist(text);
}

/** The sequence number of the newest segment a playlist lists with media (not a gap). */
function newestListed(list: ParsedMediaPlaylist): number {
  return list.segments.filter((s) => !s.gap).at(-1)?.sequence ?? -1;
}

async function startIngest(t: Test, stream: TestStream, env: Record<string, string>) {
  const dir = tempDir(t, 'tteok-ladder-');
  const keysFile = join(dir, 'keys.yaml');
  writeKeyFile(keysFile, [stream]);
  return startIngestProcess({ ...s3.ingestEnv, TTEOK_KEYS_FILE: keysFile, TTEOK_MEDIA_DIR: join(dir, 'media'), TTEOK_THUMBNAIL_SECONDS: '2', ...env });
}

t.test('TTEOK_TRANSCODER=local: every rendition stored, at most one segment behind the source, decodable at its size; a thumbnail', async (t) => {
  const stream: TestStream = { name: 'ladder', key: 'ladder_key_aaaaaaaaaaaaaaaa1', spec: { renditions: LADDER, hls: { segmentSeconds: 2 } } };
  const ingest = await startIngest(t, stream, { TTEOK_TRANSCODER: 'local' });
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(stream.key), size: '640x360', fps: 30, gopSeconds: 2, seconds: 60 });
  t.teardown(() => publisher.stop());
  const folder = `default/${stream.name}`;
  const variants = await waitFor(
    'the multivariant index.m3u8 with every rendition',
    async () => {
      const text = await stored(`${folder}/index.m3u8`);
      if (!text || !isMultivariant(text)) return undefined;
      const v = parseMultivariantPlaylist(text);
      return LADDER.every((r) => v.some((x) => x.name === r)) ? v : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  t.same(
    variants.map((v) => v.name),
    ['source', ...LADDER],
    'source first, then the renditions',
  );
  t.same(variants.find((v) => v.name === '160p')?.resolution, { width: 284, height: 160 }, 'square pixels, even width');
  t.equal(variants.find((v) => v.name === 'audio')?.resolution, undefined, 'audio: no resolution');
  // Sampled while the stream runs: each rendition at most one segment behind the source.
  let samples = 0;
  await waitFor(
    'twenty samples of the stored playlists',
    async () => {
      const source = await mediaPlaylist(folder, 'source.m3u8');
      if (!source || source.segments.length === 0) return false;
      for (const r of LADDER) {
        const list = await mediaPlaylist(folder, `${r}.m3u8`);
        t.ok(list, `${r}.m3u8 stored`);
        const behind = newestListed(source) - newestListed(list!);
        if (behind > 1) t.fail(`${r} is ${behind} segments behind the source (source at ${newestListed(source)})`);
      }
      samples++;
      return samples >= 20;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  const dir = tempDir(t);
  for (const r of LADDER) {
    const list = (await mediaPlaylist(folder, `${r}.m3u8`))!;
    t.equal(list.segments.filter((s) => s.gap).length, 0, `${r}: no gap while the transcoder keeps up`);
    const last = list.segments.filter((s) => !s.gap).at(-1)!;
    const init = (await getObject(s3.client, s3.bucket, `${folder}/${last.initUri}`))!.body;
    const media = (await getObject(s3.client, s3.bucket, `${folder}/${last.uri}`))!.body;
    const file = join(dir, `${r}.mp4`);
    writeFileSync(file, Buffer.concat([init, media]));
    const probed = await ffprobe<{ streams: Array<{ codec_type: string; width?: number; height?: number }> }>(['-show_streams', file]);
    const video = probed.streams.find((s) => s.codec_type === 'video');
    if (r === 'audio') t.equal(video, undefined, 'audio: no video');
    else t.equal(video?.height, Number.parseInt(r, 10), `${r}: ffprobe reads the stored segment at its height`);
    t.ok(
      probed.streams.some((s) => s.codec_type === 'audio'),
      `${r}: the audio is muxed`,
    );
  }
  const thumbnail = await getObject(s3.client, s3.bucket, `${folder}/thumbnail.jpg`);
  t.ok(thumbnail, 'thumbnail.jpg is stored beside the playlist');
  t.equal(thumbnail?.contentType, 'image/jpeg');
  t.equal(thumbnail?.cacheControl, 'public, max-age=5');
  t.same([...thumbnail!.body.subarray(0, 2)], [0xff, 0xd8]);
  const metrics = await ingest.metrics();
  t.ok(metricValue(metrics, 'tteok_ingest_rendition_segment_latency_seconds_count', 'rendition="160p"') >= 5, 'a latency per rendition segment');
});

t.test(
  'TTEOK_TRANSCODER=remote, the transcoder process killed mid-stream: the source flows on, the missing renditions are counted and marked as gaps',
  async (t) => {
    const transcoder = await startTranscoderProcess();
    const stream: TestStream = { name: 'remote', key: 'remote_key_bbbbbbbbbbbbbbbb2', spec: { renditions: ['160p'] } };
    const ingest = await startIngest(t, stream, { TTEOK_TRANSCODER: 'remote', TTEOK_TRANSCODER_URL: transcoder.url });
    const publisher = publishTestPattern({ url: ingest.rtmpUrl(stream.key), size: '426x240', fps: 30, gopSeconds: 1, seconds: 60 });
    t.teardown(() => publisher.stop());
    const folder = `default/${stream.name}`;
    await waitFor('160p segments stored', async () => ((await mediaPlaylist(folder, '160p.m3u8'))?.segments.length ?? 0) >= 3, {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    await transcoder.proc.stop('SIGKILL');
    const sourceAtKill = newestListed((await mediaPlaylist(folder, 'source.m3u8'))!);
    const source = await waitFor(
      'the source to go on five more segments',
      async () => {
        const list = await mediaPlaylist(folder, 'source.m3u8');
        return list && newestListed(list) >= sourceAtKill + 5 ? list : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    t.notOk(source.ended, 'the source is live');
    const rendition = (await mediaPlaylist(folder, '160p.m3u8'))!;
    t.ok(
      rendition.segments.some((s) => s.gap),
      'the rendition playlist marks what is missing as gaps (hls.js switches away from it)',
    );
    // The packager waits one segment (its RENDITION_PATIENCE_SEGMENTS) before it marks a gap.
    t.ok(newestListed(source) - (rendition.segments.at(-1)?.sequence ?? -1) <= 2, 'the rendition playlist keeps up with the source (gaps included)');
    const metrics = await ingest.metrics();
    t.ok(
      metricValue(metrics, 'tteok_ingest_rendition_segments_missing_total', 'rendition="160p",reason="unreachable"') >= 3,
      'the missing segments are counted',
    );
    t.ok(metricValue(metrics, 'tteok_ingest_transcoder_requests_total', 'kind="renditions",outcome="unreachable"') >= 3);
  },
);
