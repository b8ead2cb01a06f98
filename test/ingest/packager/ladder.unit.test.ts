// The packager's adaptive ladder in process (ingest/packager/stream-packager.ts):
// a run with renditions writes index.m3u8 as a multivariant playlist, the
// source's media playlist as source.m3u8 and each rendition's beside it,
// through the real uploader into the local object store. The renditions'
// segments are real: Debian's ffmpeg encodes each source segment the packager
// hands out (onSourceSegment) to a smaller picture, as the transcoder does.
// Every playlist PUT is checked: it names only objects already stored.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parseMediaPlaylist } from '../../../common/media-playlist.ts';
import { isMultivariant, parseMultivariantPlaylist } from '../../../common/multivariant-playlist.ts';
import type { ObjectStore } from '../../../common/storage/object-store.ts';
import type { SourceSegment } from '../../../ingest/packager/stream-packager.ts';
import { StreamRun } from '../../../ingest/stream-run.ts';
import type { FlvTag } from '../../../harness/flv-file.ts';
import { waitFor } from '../../../harness/wait.ts';
import { ffmpeg, ffprobe, tempDir } from '../../fixtures/media.ts';
import { Uploader } from '../../../ingest/upload/uploader.ts';
import { clipTags, log, publish, REF, rig, settings, storedText, volumeFiles, type Rig } from '../run-kit.ts';

/** Splits an fMP4 file into its init segment (ftyp + moov) and the rest (moof + mdat…). */
function splitInit(file: Uint8Array): { init: Uint8Array; data: Uint8Array } {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let pos = 0;
  while (pos + 8 <= file.length) {
    const size = view.getUint32(pos);
    const type = String.fromCharCode(...file.subarray(pos + 4, pos + 8));
    pos += size;
    if (type === 'moov') return { init: file.subarray(0, pos), data: file.subarray(pos) };
  }
  throw new Error('no moov');
}

/** One source segment encoded to `height` lines with libx264, audio copied, as fMP4 (what the transcoder hands back). */
async function transcode(dir: string, segment: SourceSegment, height: number): Promise<{ init: Uint8Array; data: Uint8Array }> {
  const input = join(dir, `in-${segment.sequence}.mp4`);
  const output = join(dir, `out-${segment.sequence}.mp4`);
  await writeFile(input, Buffer.concat([segment.init, segment.data]));
  await ffmpeg([
    '-copyts',
    '-i',
    input,
    '-vf',
    `scale=-2:${height}`,
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-b:v',
    '60k',
    '-maxrate',
    '80k',
    '-bufsize',
    '160k',
    '-force_key_frames',
    'expr:eq(n,0)',
    '-c:a',
    'copy',
    '-f',
    'mp4',
    '-movflags',
    '+frag_keyframe+empty_moov+default_base_moof+skip_trailer',
    output,
  ]);
  return splitInit(new Uint8Array(await readFile(output)));
}

/** The clip's tags cut before each video keyframe after the first: feeding group k completes source segment k-1. */
function groups(tags: FlvTag[]): FlvTag[][] {
  const out: FlvTag[][] = [[]];
  let seenKey = false;
  for (const tag of tags) {
    const key = tag.type === 9 && tag.body[0]! >> 4 === 1 && tag.body[1] === 1;
    if (key && seenKey) out.push([]);
    if (key) seenKey = true;
    out.at(-1)!.push(tag);
  }
  return out;
}

/** Wraps the store: every playlist PUT must name only objects the store already has; `outage.down` fails every PUT as an unreachable S3 does. */
function checkingStore(violations: string[], originDir: () => string, outage: { down: boolean }): (store: ObjectStore) => ObjectStore {
  return (store) =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== 'put') return Reflect.get(target, prop, receiver);
        return async (key: string, body: Uint8Array, options: unknown) => {
          if (outage.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
          if (key.endsWith('.m3u8')) {
            const text = Buffer.from(body).toString('utf8');
            const folder = key.split('/').slice(0, -1).join('/');
            const names = isMultivariant(text) ? parseMultivariantPlaylist(text).map((v) => v.uri) : parseMediaPlaylist(text).uris;
            for (const name of names) if (!existsSync(join(originDir(), folder, name))) violations.push(`${key} named ${name} before it was stored`);
          }
          return (target.put as (k: string, b: Uint8Array, o: unknown) => Promise<void>)(key, body, options);
        };
      },
    });
}

interface Ladder {
  r: Rig;
  violations: string[];
  sources: SourceSegment[];
  outcomes: string[];
  notEncoded: Set<number>;
  outage: { down: boolean };
}

/** A rig whose runs get each source segment transcoded to 160 lines (unless `transcodeWhile` says no). */
async function ladderRig(
  t: Parameters<typeof tempDir>[0],
  transcodeWhile: (s: SourceSegment) => boolean = () => true,
  options: Parameters<typeof rig>[2] = {},
): Promise<Ladder> {
  const violations: string[] = [];
  let origin = '';
  const outage = { down: false };
  const r = await rig(
    t,
    checkingStore(violations, () => origin, outage),
    options,
  );
  origin = r.originDir;
  const dir = tempDir(t, 'tteok-ladder-');
  const sources: SourceSegment[] = [];
  const outcomes: string[] = [];
  const transcodes: Array<Promise<void>> = [];
  const notEncoded = new Set<number>();
  // Registered after the rig's and the directory's teardowns, so it runs before them.
  t.teardown(() => Promise.allSettled(transcodes).then(() => undefined));
  r.ctx.onSourceSegment = (run, segment) => {
    sources.push(segment);
    if (!run.isLadder || !transcodeWhile(segment)) return;
    transcodes.push(
      transcode(dir, segment, 160).then(
        async ({ init, data }) => {
          outcomes.push(await run.addRenditionSegment('160p', segment.sequence, init, data));
        },
        // The last, partial segment of a clip may hold too little to encode; its place stays a gap.
        () => {
          notEncoded.add(segment.sequence);
          outcomes.push('not encoded');
        },
      ),
    );
  };
  return { r, violations, sources, outcomes, notEncoded, outage };
}

/** Publishes the clip one keyframe interval at a time, each after the renditions of the segments before it are in. */
async function publishPaced(l: Ladder, session: Parameters<typeof publish>[0], tags: FlvTag[], offsetMs = 0, expectRenditions = true): Promise<void> {
  const parts = groups(tags);
  for (let i = 0; i < parts.length; i++) {
    const before = l.sources.length;
    const outcomesBefore = l.outcomes.length;
    publish(session, parts[i]!, offsetMs);
    if (i === 0) continue;
    await waitFor('the source segment', () => l.sources.length > before || undefined, { timeoutMs: 20_000, intervalMs: 10 });
    if (expectRenditions) await waitFor('its rendition', () => l.outcomes.length > outcomesBefore || undefined, { timeoutMs: 20_000, intervalMs: 10 });
  }
}

t.test('a run with renditions: index.m3u8 is multivariant, every rendition has its playlist, numbered like the source, described from its media', async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  t.ok(run.isLadder);
  const session = run.beginSession();
  await publishPaced(l, session, tags);
  await run.endSession(session, true);
  await run.settled;

  t.same(l.violations, [], 'no playlist PUT named an object not yet stored');
  const index = (await storedText(r, 'index.m3u8'))!;
  t.ok(isMultivariant(index), 'index.m3u8 is a multivariant playlist');
  const variants = parseMultivariantPlaylist(index);
  t.same(
    variants.map((v) => [v.name, v.uri]),
    [
      ['source', 'source.m3u8'],
      ['160p', '160p.m3u8'],
    ],
    'the source first, then the rendition',
  );
  const [source, low] = variants as [(typeof variants)[0], (typeof variants)[0]];
  t.same(source.resolution, { width: 426, height: 240 }, "the source's picture size");
  t.same(low.resolution, { width: 284, height: 160 }, "the rendition's picture size, from its media");
  t.equal(source.frameRate, 30, 'frame rate from the timestamps');
  t.match(source.codecs, [/^avc1\.[0-9a-f]{6}$/, 'mp4a.40.2'], 'codecs from the configs: H.264 and AAC-LC');
  t.match(low.codecs, [/^avc1\./, 'mp4a.40.2'], 'the rendition carries the audio too');
  t.ok(source.bandwidth >= source.averageBandwidth!, 'BANDWIDTH is the peak, at least the average');
  t.ok(low.bandwidth < source.bandwidth, 'the smaller picture takes fewer bits');

  const sourceList = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  const lowList = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  t.ok(sourceList.ended && lowList.ended, 'both media playlists end with the run');
  t.ok(sourceList.segments.length >= 3, `source segments (${sourceList.segments.length})`);
  t.same(
    lowList.segments.map((s) => [s.sequence, s.duration, s.programDateTime, s.discontinuity]),
    sourceList.segments.map((s) => [s.sequence, s.duration, s.programDateTime, s.discontinuity]),
    'the rendition lists the same stretches under the same sequence numbers',
  );
  t.same(
    lowList.segments.filter((s) => s.gap).map((s) => s.sequence),
    [...l.notEncoded],
    'no gap but where ffmpeg could not encode (the clip ends in a sliver of audio): the end of the run waited for the last renditions',
  );
  t.ok(
    lowList.segments.every((s, i) => s.uri === `${sourceList.segments[i]!.uri.split('/')[0]}/160p/${s.sequence}.m4s`),
    'rendition segments sit in the session folder under the rendition',
  );
  const folder = join(r.originDir, REF.namespace, REF.name);
  const last = lowList.segments.findLast((s) => !s.gap)!;
  const probed = await ffprobe<{ streams: Array<{ codec_type: string; height?: number }> }>([
    '-show_streams',
    `concat:${join(folder, last.initUri)}|${join(folder, last.uri)}`,
  ]);
  t.same(
    probed.streams.map((s) => [s.codec_type, s.height]),
    [
      ['video', 160],
      ['audio', undefined],
    ],
    'ffprobe reads the stored rendition segment: 160 lines, with audio',
  );
  t.ok(
    l.sources.every((s, i) => s.sequence === i && s.init.length > 0 && s.data.length > 0),
    'onSourceSegment got every source segment once, numbered, with its init segment',
  );
});

t.test('a rendition that stops: its playlist marks the missing stretch as gaps and keeps up with the source; a late segment is dropped', async (t) => {
  const l = await ladderRig(t, (s) => s.sequence === 0);
  const { r } = l;
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  const session = run.beginSession();
  const parts = groups(tags);
  publish(session, parts[0]!);
  publish(session, parts[1]!);
  await waitFor('the first rendition segment', () => l.outcomes.length > 0 || undefined, { timeoutMs: 20_000, intervalMs: 10 });
  for (const part of parts.slice(2)) publish(session, part);
  // The clip twice over: source segments enough for the rendition to fall behind.
  publish(session, tags, 4000);
  await waitFor('the source segments', () => l.sources.length >= 6 || undefined, { timeoutMs: 20_000, intervalMs: 10 });
  await run.flushed();
  await r.uploader.drain(10_000);
  const live = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  const sourceLive = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  t.equal(
    live.segments.at(-1)!.sequence,
    sourceLive.segments.at(-1)!.sequence - 2,
    'the live rendition playlist is padded with gaps up to one segment behind the source',
  );
  t.ok(
    live.segments.slice(1).every((s) => s.gap),
    'every segment after the first is a gap',
  );
  t.equal(await run.addRenditionSegment('160p', 1, l.sources[0]!.init, l.sources[0]!.data), 'late', 'a segment whose place is a gap already is dropped');
  t.equal(await run.addRenditionSegment('source', 5, new Uint8Array(1), new Uint8Array(1)), 'refused', "'source' is not another rendition");
  await run.endSession(session, true);
  await run.settled;
  const final = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  const sourceFinal = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  t.ok(final.ended, 'ended with the run');
  t.equal(final.segments.at(-1)!.sequence, sourceFinal.segments.at(-1)!.sequence, "the final rendition playlist covers the source's timeline");
  t.same(l.violations, [], 'no playlist PUT named an object not yet stored (gaps are no objects)');
  t.match(await storedText(r, '160p.m3u8'), /#EXT-X-GAP\n#EXT-X-PROGRAM-DATE-TIME/, 'EXT-X-GAP marks the missing segments');
  const metrics = await r.metrics.registry.getSingleMetricAsString('tteok_ingest_rendition_gaps_total');
  t.match(metrics, /tteok_ingest_rendition_gaps_total\{rendition="160p"\} [1-9]/, 'the gaps are counted');
});

t.test('a ladder run left on the volume by a killed process resumes as a ladder; its renditions go on with the next segment', async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  const tags = await clipTags(t);
  const killed = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  const s1 = killed.beginSession();
  await publishPaced(l, s1, tags);
  await killed.flushed();
  await r.uploader.drain(10_000);
  const before = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  // The process dies here: nothing more of `killed` runs.
  const resumed = await StreamRun.resume(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  t.ok(resumed?.isLadder, 'resumed as a ladder (from the multivariant index.m3u8 and source.m3u8 on the volume)');
  const s2 = resumed!.beginSession();
  await publishPaced(l, s2, tags, 10_000);
  await resumed!.endSession(s2, true);
  await resumed!.settled;
  t.same(l.violations, []);
  const sourceList = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  const lowList = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  t.ok(isMultivariant((await storedText(r, 'index.m3u8'))!), 'index.m3u8 stays multivariant');
  const firstNew = sourceList.segments.find((s) => s.uri.startsWith(s2.id))!;
  t.ok(firstNew.discontinuity, 'the source goes on after a discontinuity');
  const lowNew = lowList.segments.find((s) => s.sequence === firstNew.sequence)!;
  t.ok(lowNew && !lowNew.gap && lowNew.discontinuity, 'the rendition goes on at the same sequence, after the same discontinuity');
  t.equal(lowList.discontinuitySequence, sourceList.discontinuitySequence, 'the same discontinuity sequence as the source');
  t.ok(
    lowList.segments.some((s) => s.uri === before.segments.at(-1)!.uri) || lowList.mediaSequence > before.segments.at(-1)!.sequence,
    "the rendition's playlist continues the one it had",
  );
});

t.test('taken over: the new run follows the stored multivariant playlist to source.m3u8 and continues every playlist', async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  const tags = await clipTags(t);
  const before = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  const s1 = before.beginSession();
  await publishPaced(l, s1, tags);
  await before.handOver();
  await before.settled;
  const stored = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  const next = stored.segments.at(-1)!.sequence + 1;
  const after = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) }, { continueStored: true });
  const s2 = after.beginSession();
  await publishPaced(l, s2, tags, 10_000);
  await after.endSession(s2, true);
  await after.settled;
  t.same(l.violations, []);
  const sourceList = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  const firstNew = sourceList.segments.find((s) => s.uri.startsWith(s2.id))!;
  t.equal(firstNew.sequence, next, 'the media sequence goes on');
  t.ok(firstNew.discontinuity);
  const lowList = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  t.ok(
    lowList.segments.some((s) => s.uri.startsWith(s1.id)) && lowList.segments.some((s) => s.uri.startsWith(s2.id)),
    "the rendition's playlist lists both ingests' segments",
  );
  t.ok(r.ended.at(-1)!.sessionFolders.includes(s1.id));
});

t.test('without renditions nothing changes: index.m3u8 is the media playlist and no rendition is taken', async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  t.notOk(run.isLadder);
  const session = run.beginSession();
  publish(session, tags);
  await run.endSession(session, true);
  await run.settled;
  t.equal(await run.addRenditionSegment('160p', 0, new Uint8Array(1), new Uint8Array(1)), 'refused');
  const index = (await storedText(r, 'index.m3u8'))!;
  t.notOk(isMultivariant(index));
  t.ok(parseMediaPlaylist(index).ended);
  t.equal(await storedText(r, 'source.m3u8'), undefined, 'no source.m3u8');
  t.ok(l.sources.length >= 3, 'onSourceSegment is called without a ladder too (thumbnails)');
});

t.test("a kept run's VOD has every rendition, each over the source's whole timeline", async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'], keepAfterEnd: true, playlistLength: 3 }) });
  const session = run.beginSession();
  await publishPaced(l, session, tags);
  await run.endSession(session, true);
  await run.settled;
  const sourceList = parseMediaPlaylist((await storedText(r, 'source.m3u8'))!);
  const lowList = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  t.match(await storedText(r, '160p.m3u8'), /#EXT-X-PLAYLIST-TYPE:VOD/);
  t.equal(lowList.mediaSequence, 0);
  t.same(
    lowList.segments.map((s) => s.sequence),
    sourceList.segments.map((s) => s.sequence),
    'every segment of the run, more than the live window',
  );
  t.ok(sourceList.segments.length > 3);
  for (const uri of lowList.uris) t.ok(existsSync(join(r.originDir, REF.namespace, REF.name, uri)), `${uri} is stored`);
});

t.test(
  'S3 down, then the process dies: the next one finds the ladder on the media volume (rendition folders, every playlist) and stores it in order',
  async (t) => {
    const l = await ladderRig(t);
    const { r } = l;
    const tags = await clipTags(t);
    l.outage.down = true;
    const killed = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
    const session = killed.beginSession();
    await publishPaced(l, session, tags);
    await killed.flushed();
    t.equal(await storedText(r, 'index.m3u8'), undefined, 'nothing stored while S3 is down');
    // The process dies: its uploader with it. The next process's uploader starts on the same volume.
    await r.uploader.close();
    l.outage.down = false;
    const next = new Uploader({
      mediaDir: r.mediaDir,
      store: r.store,
      prefix: '',
      playlistMaxAgeSeconds: undefined,
      concurrency: 4,
      backlogWarnSegments: 30,
      memoryBytes: 64 * 1024 * 1024,
      deleteDelayMs: 60_000,
      settleTimeoutMs: 10_000,
      metrics: r.metrics,
      log,
    });
    t.teardown(() => next.close());
    await next.start();
    t.ok(await next.drain(20_000), 'everything the volume held is stored');
    t.same(l.violations, [], 'each playlist stored after what it names (the multivariant after the media playlists)');
    const index = (await storedText(r, 'index.m3u8'))!;
    t.ok(isMultivariant(index));
    const low = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
    t.ok(low.uris.length >= 4, `the rendition's playlist and its ${low.uris.length} objects`);
    for (const uri of low.uris) t.ok(existsSync(join(r.originDir, REF.namespace, REF.name, uri)), `${uri} stored from the volume`);
    t.same(
      (await volumeFiles(r)).filter((f) => f.endsWith('.m4s')),
      [],
      'no segment left on the volume once stored',
    );
  },
);

t.test('a ladder run that is not kept: its media and every playlist of the ladder are deleted after the delay', async (t) => {
  const l = await ladderRig(t, () => true, { deleteDelayMs: 50 });
  const { r } = l;
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  const session = run.beginSession();
  await publishPaced(l, session, tags);
  await run.endSession(session, true);
  await run.settled;
  const folder = join(r.originDir, REF.namespace, REF.name);
  await waitFor('the run deleted', () => ['index.m3u8', 'source.m3u8', '160p.m3u8', session.id].every((f) => !existsSync(join(folder, f))) || undefined, {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  t.pass('index.m3u8, source.m3u8, 160p.m3u8 and the session folder (with its rendition folder) are gone from the store');
  await waitFor('the volume emptied', async () => ((await volumeFiles(r)).length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
  t.pass('and from the media volume');
});

t.test("a rendition whose first segment could not be written starts its playlist with the next one, under that one's number", async (t) => {
  const l = await ladderRig(t);
  const { r } = l;
  // A file where the rendition's folder goes: its first init segment and segment cannot be written; gone once the next source segment is.
  const transcode = r.ctx.onSourceSegment!;
  r.ctx.onSourceSegment = (run, segment) => {
    const blocker = join(r.mediaDir, REF.namespace, REF.name, segment.sessionFolder, '160p');
    if (segment.sequence === 0) writeFileSync(blocker, '');
    if (segment.sequence === 1) rmSync(blocker);
    transcode(run, segment);
  };
  const tags = await clipTags(t);
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings({ renditions: ['160p'] }) });
  const session = run.beginSession();
  await publishPaced(l, session, tags);
  await run.endSession(session, true);
  await run.settled;
  t.equal(l.outcomes[0], 'skipped', "the rendition's first segment could not be written");
  const low = parseMediaPlaylist((await storedText(r, '160p.m3u8'))!);
  t.equal(low.segments[0]!.sequence, 1, 'its playlist starts at the next sequence number');
  t.ok(
    low.segments.filter((s) => !s.gap).every((s) => s.uri.endsWith(`/160p/${s.sequence}.m4s`)),
    'every segment listed under its own sequence number',
  );
  t.same(l.violations, []);
});
