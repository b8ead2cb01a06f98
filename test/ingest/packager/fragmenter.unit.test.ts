// The in-process CMAF packager: a real FLV (x264 with B-frames, 1 s GOP, AAC)
// goes through Fragmenter, and what comes out must be an HLS stream ffmpeg
// plays without a single error, cut where the stream's settings say.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import t from 'tap';
import { readFlvTags } from '../../../harness/flv-file.ts';
import { parseAudioSpecificConfig, type AacConfig } from '../../../ingest/media/aac.ts';
import { parseAudioTag, parseVideoTag } from '../../../ingest/media/flv-tag.ts';
import { parseFragmentTiming, parseInitSegment } from '../../../ingest/media/fmp4.ts';
import { parseAvcDecoderConfigurationRecord, type AvcConfig } from '../../../ingest/media/h264.ts';
import { Fragmenter, type DropReason, type SegmentOutput } from '../../../ingest/packager/fragmenter.ts';
import { MediaPlaylist } from '../../../common/media-playlist.ts';
import { encodeFlv, ffmpeg, ffprobe, tempDir } from '../../fixtures/media.ts';

type Packet =
  | { type: 'video-config'; config: AvcConfig }
  | { type: 'audio-config'; config: AacConfig }
  | { type: 'video'; dts: number; cts: number; key: boolean; data: Uint8Array }
  | { type: 'audio'; dts: number; data: Uint8Array };

/** The FLV's tags, decoded as the publish session does, in arrival order. */
function packetsOf(path: string): Packet[] {
  const packets: Packet[] = [];
  for (const tag of readFlvTags(path)) {
    if (tag.type === 9) {
      const v = parseVideoTag(tag.body);
      if (v.kind === 'video-config') packets.push({ type: 'video-config', config: parseAvcDecoderConfigurationRecord(v.record) });
      else if (v.kind === 'video-frame') packets.push({ type: 'video', dts: tag.timestampMs, cts: v.compositionOffsetMs, key: v.keyframe, data: v.data });
    } else if (tag.type === 8) {
      const a = parseAudioTag(tag.body);
      if (a.kind === 'audio-config') packets.push({ type: 'audio-config', config: parseAudioSpecificConfig(a.config) });
      else if (a.kind === 'audio-frame') packets.push({ type: 'audio', dts: tag.timestampMs, data: a.data });
    }
  }
  return packets;
}

interface Packaged {
  inits: Array<{ init: Uint8Array; generation: number }>;
  segments: SegmentOutput[];
  drops: DropReason[];
  errors: unknown[];
}

async function packageAll(packets: Packet[], segmentSeconds: number): Promise<Packaged> {
  const out: Packaged = { inits: [], segments: [], drops: [], errors: [] };
  const fragmenter = new Fragmenter(segmentSeconds, {
    onInit: (init, generation) => out.inits.push({ init, generation }),
    onSegment: (segment) => out.segments.push(segment),
    onDroppedPacket: (reason) => out.drops.push(reason),
    onMuxerError: (error) => out.errors.push(error),
  });
  for (const p of packets) {
    if (p.type === 'video-config') fragmenter.setVideoConfig(p.config);
    else if (p.type === 'audio-config') fragmenter.setAudioConfig(p.config);
    else if (p.type === 'video') fragmenter.video(p.dts, p.cts, p.key, p.data, Date.now());
    else fragmenter.audio(p.dts, p.data);
  }
  await fragmenter.close();
  return out;
}

/** Writes init + segments + an ended playlist, as the stream packager lays them out. */
function writeHls(dir: string, packaged: Packaged, segmentSeconds: number): string {
  mkdirSync(dir, { recursive: true });
  const playlist = new MediaPlaylist(segmentSeconds, 0);
  for (const { init, generation } of packaged.inits) writeFileSync(join(dir, `init-${generation}.mp4`), init);
  packaged.segments.forEach((segment, i) => {
    writeFileSync(join(dir, `${i}.m4s`), segment.data);
    playlist.append({
      uri: `${i}.m4s`,
      duration: segment.duration,
      programDateTime: segment.arrivedAt,
      initUri: `init-${segment.initGeneration}.mp4`,
      discontinuity: i > 0 && segment.initGeneration !== packaged.segments[i - 1]!.initGeneration,
    });
  });
  playlist.ended = true;
  const path = join(dir, 'live.m3u8');
  writeFileSync(path, playlist.render());
  return path;
}

/** The top-level boxes of a segment, by type; a box that runs past the end is named 'truncated'. */
function topBoxes(data: Uint8Array): string[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const types: string[] = [];
  for (let pos = 0; pos < data.length; ) {
    const size = view.getUint32(pos);
    const type = String.fromCharCode(...data.subarray(pos + 4, pos + 8));
    types.push(size < 8 || pos + size > data.length ? 'truncated' : type);
    if (size < 8) break;
    pos += size;
  }
  return types;
}

interface FrameCount {
  streams: Array<{ codec_type: string; nb_read_frames?: string; nb_read_packets?: string }>;
}

/** Decodes the whole playlist: ffmpeg's complaints, and the frames ffprobe counts. */
async function play(playlist: string): Promise<{ errors: string; videoFrames: number; audioPackets: number }> {
  const [errors, video, audio] = await Promise.all([
    ffmpeg(['-i', playlist, '-f', 'null', '-']),
    ffprobe<FrameCount>(['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_type,nb_read_frames', playlist]),
    ffprobe<FrameCount>(['-count_packets', '-select_streams', 'a:0', '-show_entries', 'stream=codec_type,nb_read_packets', playlist]),
  ]);
  return {
    errors: errors.trim(),
    videoFrames: Number(video.streams[0]?.nb_read_frames ?? 0),
    audioPackets: Number(audio.streams[0]?.nb_read_packets ?? 0),
  };
}

const dir = tempDir(t);
// 5 s, 30 fps, 1 s GOP, 2 B-frames, AAC 44.1 kHz stereo.
const source = await encodeFlv(dir, 'source.flv', { seconds: 5 });
const sourcePackets = packetsOf(source);
const sourceProbe = await ffprobe<{ format: { duration: string } }>(['-show_entries', 'format=duration', source]);
const inputDuration = Number(sourceProbe.format.duration);
const videoFrameCount = sourcePackets.filter((p) => p.type === 'video').length;
const audioFrameCount = sourcePackets.filter((p) => p.type === 'audio').length;

/** The clean source packaged once per segment length, shared by the tests that only read it. */
const packagedSource = new Map<number, Promise<Packaged>>();
const packageSource = (segmentSeconds: number): Promise<Packaged> => {
  if (!packagedSource.has(segmentSeconds)) packagedSource.set(segmentSeconds, packageAll(sourcePackets, segmentSeconds));
  return packagedSource.get(segmentSeconds)!;
};

t.test('the source is what the tests assume', async (t) => {
  t.equal(videoFrameCount, 150);
  t.equal(sourcePackets.filter((p) => p.type === 'video' && p.key).length, 5, 'five 1 s GOPs');
  t.ok(
    sourcePackets.some((p) => p.type === 'video' && p.cts > 0),
    'B-frames',
  );
  t.ok(inputDuration > 4.9 && inputDuration < 5.2, `duration ${inputDuration}`);
});

for (const segmentSeconds of [1, 2]) {
  t.test(`segmentSeconds ${segmentSeconds}: real FLV to playable CMAF HLS`, async (t) => {
    const packaged = await packageSource(segmentSeconds);
    t.same(packaged.errors, [], 'no muxer error');
    t.same(packaged.drops, [], 'no packet dropped');
    t.equal(packaged.inits.length, 1, 'one init segment');
    t.equal(packaged.inits[0]?.generation, 1);
    t.ok(packaged.segments.length >= Math.floor(5 / segmentSeconds), `${packaged.segments.length} segments`);
    t.ok(
      packaged.segments.every((s) => s.initGeneration === 1),
      'every segment belongs to the one init',
    );

    const durations = packaged.segments.map((s) => s.duration);
    const total = durations.reduce((a, b) => a + b, 0);
    t.ok(Math.abs(total - inputDuration) <= 0.1, `segment durations sum to ${total.toFixed(3)} s, input is ${inputDuration} s`);
    durations.slice(0, -1).forEach((d, i) => {
      t.ok(d >= 0.9 * segmentSeconds && d <= 1.5 * segmentSeconds, `segment ${i} lasts ${d.toFixed(3)} s, target ${segmentSeconds} s`);
    });

    for (const [i, segment] of packaged.segments.entries()) {
      t.same(topBoxes(segment.data), ['moof', 'mdat'], `segment ${i} is one moof and one mdat that ends where the segment does`);
    }

    const playlist = writeHls(join(dir, `seg${segmentSeconds}`), packaged, segmentSeconds);
    const played = await play(playlist);
    t.equal(played.errors, '', 'ffmpeg decodes the playlist without an error');
    t.ok(Math.abs(played.videoFrames - videoFrameCount) <= 2, `ffprobe decodes ${played.videoFrames} video frames of ${videoFrameCount}`);
    t.ok(Math.abs(played.audioPackets - audioFrameCount) <= 2, `ffprobe reads ${played.audioPackets} audio packets of ${audioFrameCount}`);
  });
}

t.test('fmp4 timing agrees with ffprobe on the same bytes', async (t) => {
  const packaged = await packageSource(1);
  const init = packaged.inits[0]!.init;
  const tracks = parseInitSegment(init);
  const kinds = [...tracks.values()].map((tr) => tr.kind).sort();
  t.same(kinds, ['audio', 'video'], 'a video and an audio track');

  // One file: init then every segment, so ffprobe reports byte positions.
  const all = join(dir, 'all.mp4');
  const offsets: number[] = [];
  let size = init.length;
  for (const s of packaged.segments) {
    offsets.push(size);
    size += s.data.length;
  }
  writeFileSync(all, Buffer.concat([init, ...packaged.segments.map((s) => s.data)]));
  const probe = await ffprobe<{
    streams: Array<{ index: number; codec_type: string; time_base: string }>;
    packets: Array<{ stream_index: number; pts_time: string; dts_time: string; duration_time?: string; pos: string }>;
  }>(['-show_entries', 'stream=index,codec_type,time_base:packet=stream_index,pts_time,dts_time,duration_time,pos', all]);

  for (const stream of probe.streams) {
    const track = [...tracks.values()].find((tr) => tr.kind === stream.codec_type);
    t.equal(stream.time_base, `1/${track?.timescale}`, `${stream.codec_type} timescale matches ffprobe's time base`);
  }
  const kindOf = new Map(probe.streams.map((s) => [s.index, s.codec_type]));
  const segmentOf = (pos: number) => offsets.findLastIndex((o) => o <= pos);

  let shift: number | undefined;
  packaged.segments.forEach((segment, i) => {
    const timing = parseFragmentTiming(segment.data, tracks);
    const packets = probe.packets.filter((p) => segmentOf(Number(p.pos)) === i);
    const video = packets.filter((p) => kindOf.get(p.stream_index) === 'video');
    // ffprobe leaves the very first audio packet's duration unset: take it from the next packet's dts.
    const sum = (ps: typeof packets) =>
      ps.reduce((a, p, k) => a + (p.duration_time !== undefined ? Number(p.duration_time) : Number(ps[k + 1]!.dts_time) - Number(p.dts_time)), 0);
    const longest = Math.max(sum(video), sum(packets.filter((p) => kindOf.get(p.stream_index) === 'audio')));
    t.ok(Math.abs(timing.duration - longest) < 0.002, `segment ${i}: duration ${timing.duration.toFixed(4)} vs ffprobe ${longest.toFixed(4)}`);
    t.equal(segment.duration, timing.duration, `segment ${i}: the SegmentOutput duration is the fragment's`);
    if (video.length > 0) {
      // ffprobe applies the init's edit list; the shift must be the same for every segment.
      const firstPts = Math.min(...video.map((p) => Number(p.pts_time)));
      t.ok(timing.videoStart !== undefined, `segment ${i} has a video start`);
      shift ??= firstPts - timing.videoStart!;
      t.ok(Math.abs(firstPts - timing.videoStart! - shift) < 0.002, `segment ${i}: video starts at ${timing.videoStart!.toFixed(4)} (ffprobe ${firstPts})`);
    }
  });
  t.ok(shift !== undefined && Math.abs(shift) < 0.2, `constant shift ${shift}`);
});

t.test('timestamp regressions are dropped and packaging continues', async (t) => {
  const packets = [...sourcePackets];
  const videoIndex = (n: number) => {
    let seen = -1;
    return packets.findIndex((p) => p.type === 'video' && ++seen === n);
  };
  // In GOP 2: a repeated frame whose dts goes back 100 ms.
  const at45 = videoIndex(45);
  const frame45 = packets[at45] as Extract<Packet, { type: 'video' }>;
  t.notOk(frame45.key, 'frame 45 is not a keyframe');
  packets.splice(at45 + 1, 0, { ...frame45, dts: frame45.dts - 100 });
  // In GOP 3: a frame 1 ms later whose presentation time falls 2 s back, before the previous GOP.
  const at75 = videoIndex(75);
  const frame75 = packets[at75] as Extract<Packet, { type: 'video' }>;
  packets.splice(at75 + 1, 0, { ...frame75, dts: frame75.dts + 1, cts: -2000 });
  // And an audio frame 200 ms back.
  let audioSeen = -1;
  const atAudio = packets.findIndex((p) => p.type === 'audio' && ++audioSeen === 100);
  const audio100 = packets[atAudio] as Extract<Packet, { type: 'audio' }>;
  packets.splice(atAudio + 1, 0, { ...audio100, dts: audio100.dts - 200 });

  const clean = await packageSource(1);
  const packaged = await packageAll(packets, 1);
  t.same(packaged.drops, ['timestamp_regression', 'timestamp_regression', 'timestamp_regression'], 'each bad packet is dropped as a timestamp regression');
  t.same(packaged.errors, [], 'the muxer never saw them');
  t.equal(packaged.inits.length, 1, 'no restart was needed');
  t.equal(packaged.segments.length, clean.segments.length, 'later segments still come');
  t.same(
    packaged.segments.map((s) => s.duration.toFixed(3)),
    clean.segments.map((s) => s.duration.toFixed(3)),
    'and are cut exactly as without the bad packets',
  );
  const played = await play(writeHls(join(dir, 'regression'), packaged, 1));
  t.equal(played.errors, '', 'the result plays without an error');
  t.ok(Math.abs(played.videoFrames - videoFrameCount) <= 2, `${played.videoFrames} video frames`);
});

t.test('joining mid-GOP: frames before the first keyframe are dropped', async (t) => {
  let videoSeen = -1;
  const startAt = sourcePackets.findIndex((p) => p.type === 'video' && ++videoSeen === 10);
  const packets = [
    ...sourcePackets.filter((p) => p.type === 'video-config' || p.type === 'audio-config'),
    ...sourcePackets.slice(startAt).filter((p) => p.type === 'video' || p.type === 'audio'),
  ];
  const packaged = await packageAll(packets, 1);
  t.ok(packaged.drops.length >= 20, `${packaged.drops.length} packets dropped`);
  t.ok(
    packaged.drops.every((r) => r === 'before_first_keyframe'),
    'all before the first keyframe',
  );
  t.same(packaged.errors, []);
  const played = await play(writeHls(join(dir, 'join'), packaged, 1));
  t.equal(played.errors, '', 'plays without an error');
  t.ok(Math.abs(played.videoFrames - 120) <= 2, `${played.videoFrames} video frames: the 4 GOPs after the first keyframe`);
});

t.test('an AAC sequence header after the first keyframe does not lose audio silently', async (t) => {
  // Publishers normally send both sequence headers first, but one whose audio
  // starts late sends the AAC header after video has begun. Its audio must
  // then either be packaged (from some later init segment on) or be counted
  // as dropped, never vanish without a trace in the metrics.
  const audioConfig = sourcePackets.find((p) => p.type === 'audio-config')!;
  const rest = sourcePackets.filter((p) => p !== audioConfig);
  const firstKey = rest.findIndex((p) => p.type === 'video' && p.key);
  const packets = [...rest.slice(0, firstKey + 1), audioConfig, ...rest.slice(firstKey + 1)];
  const audioAfterConfig = packets.slice(firstKey + 2).filter((p) => p.type === 'audio').length;

  const packaged = await packageAll(packets, 1);
  t.same(packaged.errors, []);
  t.ok(packaged.segments.length >= 5, 'video is packaged');
  const withAudio = packaged.inits.filter(({ init }) => [...parseInitSegment(init).values()].some((track) => track.kind === 'audio'));
  const dropped = packaged.drops.length;
  t.ok(
    withAudio.length > 0 || dropped >= audioAfterConfig,
    `audio packaged (${withAudio.length} of ${packaged.inits.length} init segments have an audio track) or counted (${dropped} drops for ${audioAfterConfig} audio packets)`,
  );
});

t.test('a timeline that jumps back at a keyframe restarts packaging after a discontinuity', async (t) => {
  // An encoder restarted without reconnecting (or a 32-bit timestamp wrap):
  // from some keyframe on, every timestamp is far below what came before.
  // Dropping them all would end the stream; instead a new init segment starts.
  let videoSeen = -1;
  const resetAt = sourcePackets.findIndex((p) => p.type === 'video' && ++videoSeen === 60);
  t.ok((sourcePackets[resetAt] as { key: boolean }).key, 'the 61st frame is a keyframe');
  const shift = (sourcePackets[resetAt] as { dts: number }).dts;
  const packets = sourcePackets.map((p, i) => (i >= resetAt && (p.type === 'video' || p.type === 'audio') ? { ...p, dts: p.dts - shift } : p));
  const packaged = await packageAll(packets, 1);
  t.same(packaged.errors, [], 'the muxer never failed');
  t.equal(packaged.inits.length, 2, 'a second init segment for the new timeline');
  const total = packaged.segments.reduce((a, s) => a + s.duration, 0);
  t.ok(Math.abs(total - inputDuration) < 0.3, `nothing after the jump is lost (${total.toFixed(2)} of ${inputDuration.toFixed(2)} s)`);
  // ffmpeg's HLS demuxer does not rebase timestamps at a discontinuity (hls.js
  // does), so each side of it is played on its own.
  let frames = 0;
  for (const generation of [1, 2]) {
    const part: Packaged = {
      ...packaged,
      inits: packaged.inits.filter((i) => i.generation === generation),
      segments: packaged.segments.filter((s) => s.initGeneration === generation),
    };
    const played = await play(writeHls(join(dir, `reset-${generation}`), part, 1));
    t.equal(played.errors, '', `timeline ${generation} plays without an error`);
    frames += played.videoFrames;
  }
  t.ok(Math.abs(frames - videoFrameCount) <= 3, `${frames} of ${videoFrameCount} video frames play`);
});

t.test('a segment is handed over as the keyframe that ends it arrives, not after the audio past it', async (t) => {
  // mediabunny alone cuts a fragment only once the first audio frame at or
  // after the next keyframe's presentation time has been fed: with B-frames,
  // several packets after the keyframe. Packets are fed one at a time here,
  // each once the muxer has done all it can with the one before.
  const packets = sourcePackets;
  const keyframesAt = packets.flatMap((p, i) => (p.type === 'video' && p.key ? [i] : []));
  const keyframe = packets[keyframesAt[1]!] as Extract<Packet, { type: 'video' }>;
  const packetsBeforeTheAudioPast = packets.slice(keyframesAt[1]! + 1).findIndex((p) => p.type === 'audio' && p.dts >= keyframe.dts + keyframe.cts);
  t.ok(
    keyframe.cts > 0 && packetsBeforeTheAudioPast >= 1,
    `the source's keyframes are shown after later-arriving packets (composition offset ${keyframe.cts} ms)`,
  );
  const emittedAfter: number[] = [];
  let fed = -1;
  const fragmenter = new Fragmenter(1, {
    onInit: () => undefined,
    onSegment: () => emittedAfter.push(fed),
    onDroppedPacket: (reason) => t.fail(`dropped a packet: ${reason}`),
    onMuxerError: (error) => t.fail(`muxer error: ${String(error)}`),
  });
  for (const [i, p] of packets.entries()) {
    fed = i;
    if (p.type === 'video-config') fragmenter.setVideoConfig(p.config);
    else if (p.type === 'audio-config') fragmenter.setAudioConfig(p.config);
    else if (p.type === 'video') fragmenter.video(p.dts, p.cts, p.key, p.data, Date.now());
    else fragmenter.audio(p.dts, p.data);
    await setImmediate(); // the muxer works in promise callbacks only: they have all run by now
  }
  const whileFeeding = emittedAfter.length;
  await fragmenter.close();
  t.ok(emittedAfter.length > whileFeeding, 'the last segment comes at the close');
  t.same(
    emittedAfter.slice(0, whileFeeding),
    keyframesAt.slice(1),
    'every other segment is handed over once the keyframe after it has been fed, before any packet after that keyframe',
  );
});
