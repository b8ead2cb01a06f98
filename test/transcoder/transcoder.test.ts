// The transcoder role as its own process with real ffmpeg, fed the segments
// the ingest's own packager writes: renditions ffprobe decodes at the
// preset's size, starting with a keyframe at the source's decode time; bad
// media answered 422 while the process keeps serving; a full transcoder
// answering 503; a job past its time limit killed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decodeStarts, initTracks } from '../../common/fmp4-boxes.ts';
import { decodeRenditionsBody, encodeSegmentBody, SEGMENT_CONTENT_TYPE } from '../../common/transcode/wire.ts';
import { metricValue } from '../../harness/ingest-process.ts';
import { stopAll } from '../../harness/process.ts';
import { startTranscoderProcess, type TranscoderProcess } from '../../harness/transcoder-process.ts';
import { waitFor } from '../../harness/wait.ts';
import { ffprobe, tempDir } from '../fixtures/media.ts';
import { sourceSegments } from './source-segments.ts';

t.teardown(stopAll);

/** The pids of a process's children (its ffmpeg jobs). */
function childPids(pid: number): string[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
}

function post(tc: TranscoderProcess, path: string, segment: { init: Uint8Array; data: Uint8Array }): Promise<Response> {
  return fetch(`${tc.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': SEGMENT_CONTENT_TYPE },
    body: Buffer.from(encodeSegmentBody({ init: segment.init, segment: segment.data })),
  });
}

interface Probed {
  streams: Array<{ codec_type: string; codec_name: string; width?: number; height?: number }>;
  packets: Array<{ stream_index: number; dts_time: string; flags: string }>;
}

t.test('renditions of a 480p source: each preset below it at its size, a keyframe first, at the source decode time; init segments repeat', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 4 });
  const tc = await startTranscoderProcess();
  const dir = tempDir(t);
  const inits = new Map<string, string>();
  for (const source of segments.slice(1, 3)) {
    const res = await post(tc, '/v1/renditions?presets=720p,480p,360p,160p,audio', source);
    t.equal(res.status, 200, res.ok ? 'encoded' : await res.clone().text());
    const renditions = decodeRenditionsBody(new Uint8Array(await res.arrayBuffer()));
    t.same(
      renditions.map((r) => r.rendition),
      ['360p', '160p', 'audio'],
      '720p and 480p (not below the 480p source) are skipped, the rest in the order asked',
    );
    const sourceStarts = decodeStarts(source.data, initTracks(source.init));
    for (const r of renditions) {
      const file = join(dir, `${r.rendition}-${source.sequence}.mp4`);
      writeFileSync(file, Buffer.concat([r.init, r.segment]));
      const probed = await ffprobe<Probed>(['-show_streams', '-show_packets', file]);
      const video = probed.streams.findIndex((s) => s.codec_type === 'video');
      const audio = probed.streams.findIndex((s) => s.codec_type === 'audio');
      t.ok(audio >= 0 && probed.streams[audio]!.codec_name === 'aac', `${r.rendition}: the source's AAC audio is carried`);
      if (r.rendition === 'audio') {
        t.equal(video, -1, 'audio: no video track');
      } else {
        const stream = probed.streams[video]!;
        const height = Number.parseInt(r.rendition, 10);
        t.equal(stream.codec_name, 'h264');
        t.equal(stream.height, height, `${r.rendition}: height ${height}`);
        t.equal(stream.width, 2 * Math.floor((854 * height) / 480 / 2), `${r.rendition}: width keeps the aspect, even`);
        const first = probed.packets.find((p) => p.stream_index === video)!;
        t.match(first.flags, /^K/, `${r.rendition}: the first video frame is a keyframe`);
        t.ok(
          Math.abs(Number(first.dts_time) - sourceStarts.get('video')!) < 1e-3,
          `${r.rendition}: decode starts at the source's ${sourceStarts.get('video')} (got ${first.dts_time})`,
        );
        t.equal(probed.packets.filter((p) => p.stream_index === video && p.flags.startsWith('K')).length, 1, `${r.rendition}: one keyframe`);
      }
      const firstAudio = probed.packets.find((p) => p.stream_index === audio)!;
      t.ok(Math.abs(Number(firstAudio.dts_time) - sourceStarts.get('audio')!) < 1e-3, `${r.rendition}: audio at the source's time`);
      const hex = Buffer.from(r.init).toString('hex');
      if (inits.has(r.rendition)) t.equal(hex, inits.get(r.rendition), `${r.rendition}: the same init segment bytes as for the segment before`);
      inits.set(r.rendition, hex);
    }
  }
  t.ok(metricValue(await tc.metrics(), 'tteok_transcoder_cpu_seconds_total') > 0.1, "the transcoder's CPU counts ffmpeg's");
});

t.test('a thumbnail: a JPEG 640 px wide from the first keyframe', async (t) => {
  const [, source] = await sourceSegments(t, { size: '1280x720', seconds: 2 });
  const tc = await startTranscoderProcess();
  const res = await post(tc, '/v1/thumbnail', source!);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'image/jpeg');
  const file = join(tempDir(t), 'thumb.jpg');
  const jpeg = Buffer.from(await res.arrayBuffer());
  writeFileSync(file, jpeg);
  const probed = await ffprobe<Probed>(['-show_streams', file]);
  t.equal(probed.streams[0]?.codec_name, 'mjpeg');
  t.equal(probed.streams[0]?.width, 640);
  t.equal(probed.streams[0]?.height, 360);
  t.ok(jpeg.length > 5_000 && jpeg.length < 120_000, `${jpeg.length} bytes`);
});

t.test('bad media gets 422 with a sentence, bad requests 400/415, and the process keeps serving', async (t) => {
  const segments = await sourceSegments(t, { size: '426x240', seconds: 2 });
  const good = segments[1]!;
  const tc = await startTranscoderProcess();
  const garbage = await post(tc, '/v1/renditions?presets=160p', { init: new TextEncoder().encode('not an mp4 at all'), data: good.data });
  t.equal(garbage.status, 422);
  t.match(((await garbage.json()) as { message: string }).message, /not a fragmented MP4/);
  // Boxes intact, the coded pictures zeroed: ffmpeg itself cannot decode it.
  const zeroed = new Uint8Array(good.data);
  const mdat = Buffer.from(zeroed).indexOf('mdat');
  zeroed.fill(0, mdat + 4);
  const broken = await post(tc, '/v1/renditions?presets=160p', { init: good.init, data: zeroed });
  t.equal(broken.status, 422, 'ffmpeg failing on the media is the input being refused');
  const brokenBody = (await broken.json()) as { message: string };
  t.match(brokenBody.message, /ffmpeg/, `the sentence says what happened: ${brokenBody.message}`);
  const unknown = await post(tc, '/v1/renditions?presets=4k', good);
  t.equal(unknown.status, 400);
  t.match(((await unknown.json()) as { message: string }).message, /"4k" is not a preset; use 1080p, 720p/);
  const wrongType = await fetch(`${tc.url}/v1/renditions?presets=160p`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(wrongType.status, 415);
  const framing = await fetch(`${tc.url}/v1/thumbnail`, {
    method: 'POST',
    headers: { 'content-type': SEGMENT_CONTENT_TYPE },
    body: Buffer.from([0, 0, 9, 9, 1]),
  });
  t.equal(framing.status, 400);
  t.match(((await framing.json()) as { message: string }).message, /runs past the end of the body/);
  const after = await post(tc, '/v1/renditions?presets=160p', good);
  t.equal(after.status, 200, 'a good segment after the bad ones is encoded');
  t.equal(decodeRenditionsBody(new Uint8Array(await after.arrayBuffer()))[0]?.rendition, '160p');
  t.equal(tc.proc.child.exitCode, null, 'the process is still running');
  t.equal(
    metricValue(await tc.metrics(), 'tteok_transcoder_requests_total', 'kind="renditions",outcome="refused"'),
    3,
    'two unusable segments and an unknown preset are counted as refused',
  );
});

t.test('over TTEOK_TRANSCODER_MAX_JOBS: 503 at once, while the running job finishes', async (t) => {
  const segments = await sourceSegments(t, { size: '1280x720', seconds: 3 });
  const tc = await startTranscoderProcess({ TTEOK_TRANSCODER_MAX_JOBS: '1' });
  const slow = post(tc, '/v1/renditions?presets=480p,360p,160p', segments[1]!);
  await waitFor('the first job to run', async () => metricValue(await tc.metrics(), 'tteok_transcoder_jobs_in_flight') === 1, {
    timeoutMs: 10_000,
    intervalMs: 10,
  });
  const refused = await post(tc, '/v1/renditions?presets=160p', segments[2]!);
  t.equal(refused.status, 503);
  t.equal(refused.headers.get('retry-after'), '1');
  t.match(((await refused.json()) as { message: string }).message, /maximum of 1 jobs/);
  t.equal((await slow).status, 200, 'the job that held the slot is answered');
  const next = await post(tc, '/v1/renditions?presets=160p', segments[2]!);
  t.equal(next.status, 200, 'the slot is free again');
});

t.test('a job past its time limit is killed: 504 with a sentence, no ffmpeg left behind', async (t) => {
  const segments = await sourceSegments(t, { size: '854x480', seconds: 2 });
  const tc = await startTranscoderProcess({ TTEOK_TRANSCODER_JOB_TIMEOUT_SECONDS: '0.1' });
  const res = await post(tc, '/v1/renditions?presets=360p,160p', segments[1]!);
  t.equal(res.status, 504);
  t.match(((await res.json()) as { message: string }).message, /took longer than its limit of 100 ms and was stopped/);
  await waitFor('no ffmpeg child left', () => childPids(tc.proc.child.pid!).length === 0, { timeoutMs: 5_000 });
  t.equal(metricValue(await tc.metrics(), 'tteok_transcoder_requests_total', 'kind="renditions",outcome="timeout"'), 1);
  t.equal((await fetch(`${tc.url}/healthz`)).status, 200);
});
