// Property-based fuzzing (fast-check) of what an ADMITTED publisher sends, on
// the real ingest process: each case publishes with a valid key, then sends
// audio and video messages built from legacy FLV and Enhanced RTMP v1/v2 tags
// (every packet type, ModEx prefixes, multitrack with one or many codecs),
// codec configuration records (the real ones ffmpeg 9 wrote, mutated ones,
// absurd ones, oversized ones), frames small and large, and timestamps that
// advance, stand still, jump back and forth or leap hours ahead. Meanwhile a
// legitimate publisher streams on the same ingest.
//
// The properties: the ingest stays up and answers /healthz; it never reports
// a fault of its own (a protocol "fault in the ingest", or "packaging
// failed"); its peak RSS stays within a bound; and the legitimate publisher is
// never ended and its stream is stored. The run's seed is printed;
// TTEOK_FUZZ_SEED=<seed> replays it, TTEOK_FUZZ_ADMITTED_CASES=<n> changes the
// count (default 2,000).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import t from 'tap';
import { startIngestProcess, writeKeyFile } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import {
  enhancedVideo,
  fixtureTags,
  HEVC,
  hevcFrame,
  mediaMessage,
  openPublish,
  PUBLISH_CHUNK_SIZE,
  receivedText,
  sendAndDrain,
} from '../../../harness/rtmp-media.ts';
import {
  chunk,
  clientHandshake,
  command,
  connectCommand,
  createStreamCommand,
  openRaw,
  peakRssBytes,
  publishCommand,
  rssBytes,
} from '../../../harness/rtmp-wire.ts';
import { waitFor } from '../../../harness/wait.ts';

const CASES = Number(process.env.TTEOK_FUZZ_ADMITTED_CASES ?? 2000);
const SEED = Number(process.env.TTEOK_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Publishes at once: one key each (a key has one publisher at a time). */
const WORKERS = 6;
const MiB = 1024 * 1024;
/** Peak RSS growth the whole run may cause: six publishes at once, each bounded by the publish limits. */
const PEAK_GROWTH_BOUND = 300 * MiB;

const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmp-fuzz-admitted-'));
const keysFile = join(dir, 'keys.yaml');
const originDir = join(dir, 'origin');
const fuzzKey = (i: number) => `fuzz_admitted_key_${i}_aaaaaaaaaaaa`;
const LEGIT_KEY = 'fuzz_admitted_legit_aaaaaaaaaaaa';
writeKeyFile(keysFile, [...Array.from({ length: WORKERS }, (_, i) => ({ name: `fuzz${i}`, key: fuzzKey(i) })), { name: 'legit', key: LEGIT_KEY }]);
const ingest = await startIngestProcess({
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: originDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info',
  TTEOK_RECONNECT_GRACE_SECONDS: '1',
  TTEOK_TAKEOVER_SILENCE_SECONDS: '0.2',
  TTEOK_MAX_FRAGMENT_MIB: '16',
});
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

// ---- what an admitted publisher sends -----------------------------------------

/** Real encoder output: every tag of the fixtures ffmpeg 9 wrote (HEVC+AAC, AV1+Opus, multitrack). */
const REAL_TAGS = ['hevc-aac.flv', 'av1-opus.flv', 'multitrack.flv', 'opus-only.flv'].flatMap((name) => fixtureTags(name));
const REAL_CONFIGS = REAL_TAGS.filter(
  (tag) => (tag.type === 9 && (tag.body[0]! & 0x8f) === 0x80) || (tag.type === 8 && tag.body[0]! >> 4 === 9 && (tag.body[0]! & 0x0f) === 0),
);

const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));

const mutation = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete'),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
  length: fc.integer({ min: 1, max: 32 }),
});
function mutate(input: Buffer, mutations: Array<{ kind: string; at: number; value: number; length: number }>): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') b[at] = b[at]! ^ (1 << (m.value % 8));
    else if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.length, m.value), b.subarray(at)]);
    else b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
  }
  return b;
}

/** The records of the reported attack, 4 MiB each: an av1C of empty OBUs, an hvcC of 30 arrays of 65,535 empty NAL units. */
const HUGE_AV1C = Buffer.concat([Buffer.from([0x81, 0x00, 0x0c, 0x00]), Buffer.alloc(4 * MiB, Buffer.from([0x7a, 0x00]))]);
const HUGE_HVCC = (() => {
  const b = Buffer.alloc(23 + 30 * (3 + 2 * 65535));
  b[0] = 1;
  b[22] = 30;
  for (let a = 0, pos = 23; a < 30; a++, pos += 3 + 2 * 65535) b.set([32, 0xff, 0xff], pos);
  return b;
})();

/** Decoder configuration records: real, mutated, absurd (huge counts, empty units) and oversized. */
const record = fc.oneof(
  fc.constantFrom(...REAL_CONFIGS.filter((c) => c.type === 9).map((c) => c.body.subarray(5))),
  fc.tuple(fc.constantFrom(...REAL_CONFIGS.map((c) => c.body.subarray(5))), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([r, m]) => mutate(r, m)),
  bytes(512),
  // hvcC: a valid header, then arrays that claim 65,535 NAL units each.
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 30_000 })).map(([arrays, empties]) => {
    const b = Buffer.alloc(23 + 3 + empties * 2);
    b[0] = 1;
    b[22] = arrays;
    b.set([33, 0xff, 0xff], 23);
    return b;
  }),
  // av1C: a valid header, then empty OBUs.
  fc.integer({ min: 0, max: 32_000 }).map((obus) => Buffer.concat([Buffer.from([0x81, 0x00, 0x0c, 0x00]), Buffer.alloc(obus * 2, Buffer.from([0x7a, 0x00]))])),
  // Just over the 64 KiB bound, and far over it.
  fc.constantFrom(Buffer.alloc(64 * 1024 + 1, 1), Buffer.alloc(2 * MiB, 0x7a), HUGE_AV1C, HUGE_HVCC),
);

// Mostly codecs the ingest packages, so cases get past the codec check; sometimes one it refuses.
const videoFourcc = fc.oneof(
  { arbitrary: fc.constantFrom('hvc1', 'av01', 'avc1'), weight: 8 },
  { arbitrary: fc.constantFrom('vp09', 'vvc1'), weight: 1 },
  { arbitrary: fc.string({ minLength: 4, maxLength: 4 }), weight: 1 },
);
const audioFourcc = fc.oneof(
  { arbitrary: fc.constantFrom('Opus', 'mp4a'), weight: 8 },
  { arbitrary: fc.constantFrom('fLaC', '.mp3', 'ac-3'), weight: 1 },
  { arbitrary: fc.string({ minLength: 4, maxLength: 4 }), weight: 1 },
);
const frameData = fc.oneof({ arbitrary: bytes(4096), weight: 20 }, { arbitrary: fc.constant(hevcFrame(true, MiB).subarray(5)), weight: 1 });

/** ModEx prefixes (Enhanced RTMP v2): modifier data of any size, then the real packet type. */
const modEx = fc.array(fc.tuple(bytes(300), fc.integer({ min: 0, max: 15 })), { maxLength: 2 }).map((mods) =>
  Buffer.concat(
    mods.map(([data, type]) => {
      const size = data.length === 0 ? Buffer.alloc(0) : data;
      const header = size.length <= 256 ? Buffer.from([Math.max(0, size.length - 1)]) : Buffer.from([0xff, (size.length - 1) >> 8, (size.length - 1) & 0xff]);
      return Buffer.concat([header, size, Buffer.from([(type << 4) | 7])]);
    }),
  ),
);

/** Multitrack bodies (Enhanced RTMP v2): one track, many tracks of one codec, many of many codecs. */
const multitrack = (fourcc: fc.Arbitrary<string>) =>
  fc
    .tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 7 }),
      fourcc,
      fc.array(fc.tuple(fourcc, fc.integer({ min: 0, max: 255 }), fc.oneof(record, frameData), fc.boolean()), { minLength: 1, maxLength: 4 }),
    )
    .map(([type, packetType, shared, tracks]) => {
      const parts: Buffer[] = [Buffer.from([(type << 4) | packetType])];
      if (type !== 2) parts.push(Buffer.from(shared, 'latin1'));
      for (const [own, id, data, lie] of tracks) {
        if (type === 2) parts.push(Buffer.from(own, 'latin1'));
        parts.push(Buffer.from([id]));
        if (type !== 0) {
          const size = Buffer.alloc(3);
          size.writeUIntBE(lie ? (data.length * 7 + 1) & 0xffffff : data.length, 0, 3);
          parts.push(size);
        }
        parts.push(data);
      }
      return Buffer.concat(parts);
    });

const videoTag = fc.oneof(
  // Legacy AVC: sequence header, NALUs, end of sequence.
  fc
    .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), bytes(3), fc.oneof(record, frameData))
    .map(([frame, packet, cts, data]) => Buffer.concat([Buffer.from([(frame << 4) | 7, packet]), Buffer.concat([cts, Buffer.alloc(3)]).subarray(0, 3), data])),
  // Enhanced single-track: any frame type, any packet type, with or without ModEx.
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 5 }), modEx, videoFourcc, fc.oneof(record, frameData))
    .map(([frame, packet, mods, fourcc, data]) =>
      mods.length > 0
        ? Buffer.concat([
            Buffer.from([0x80 | (frame << 4) | 7]),
            mods.subarray(0, mods.length - 1),
            Buffer.from([(mods[mods.length - 1]! & 0xf0) | packet]),
            Buffer.from(fourcc, 'latin1'),
            data,
          ])
        : enhancedVideo(frame, packet, fourcc, data),
    ),
  // Enhanced multitrack.
  fc.tuple(fc.integer({ min: 1, max: 2 }), multitrack(videoFourcc)).map(([frame, body]) => Buffer.concat([Buffer.from([0x80 | (frame << 4) | 6]), body])),
  // Anything at all, now and then.
  fc.tuple(fc.integer({ min: 0, max: 9 }), bytes(64)).map(([n, b]) => (n === 0 ? b : enhancedVideo(1 + (n % 2), 1, 'hvc1', b))),
);

const audioTag = fc.oneof(
  // Legacy AAC: AudioSpecificConfig or raw frames; other legacy codecs.
  fc
    .tuple(fc.constantFrom(0xaf, 0xaf, 0xaf, 0xae, 0x2f), fc.integer({ min: 0, max: 2 }), fc.oneof(record, bytes(700)))
    .map(([first, packet, data]) => Buffer.concat([Buffer.from([first, packet]), data])),
  // Enhanced audio: sequence start, coded frames, multichannel config, ModEx.
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), audioFourcc, fc.oneof(record, bytes(700)))
    .map(([packet, fourcc, data]) => Buffer.concat([Buffer.from([0x90 | packet]), Buffer.from(fourcc, 'latin1'), data])),
  multitrack(audioFourcc).map((body) => Buffer.concat([Buffer.from([0x95]), body])),
);

/** How timestamps move from one message to the next. */
const timestamps = fc.oneof(
  fc.record({ mode: fc.constant('steady' as const), step: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ mode: fc.constant('frozen' as const), step: fc.constant(0) }),
  fc.record({ mode: fc.constant('random' as const), step: fc.constant(0) }),
  fc.record({ mode: fc.constant('leaps' as const), step: fc.integer({ min: 1000, max: 3_600_000 }) }),
  fc.record({ mode: fc.constant('back-and-forth' as const), step: fc.integer({ min: 1, max: 5000 }) }),
);

const message = fc.oneof(
  { arbitrary: videoTag.map((body) => ({ type: 9 as const, body })), weight: 5 },
  { arbitrary: audioTag.map((body) => ({ type: 8 as const, body })), weight: 3 },
  { arbitrary: fc.constantFrom(...REAL_TAGS).map((tag) => ({ type: tag.type, body: tag.body })), weight: 4 },
);

/** What most cases start with: a real sequence start of each kind and a frame, so what follows meets a configured packager. */
const prelude = fc.oneof(
  { arbitrary: fc.constant([] as Array<{ type: 8 | 9; body: Buffer }>), weight: 1 },
  {
    arbitrary: fc
      .subarray(REAL_CONFIGS, { minLength: 1 })
      .map((configs) => [...configs.map((c) => ({ type: c.type, body: c.body })), { type: 9 as const, body: hevcFrame(true, 2000) }]),
    weight: 4,
  },
);

const fuzzCase = fc.record({
  prelude,
  clock: timestamps,
  start: fc.integer({ min: 0, max: 0xfffff0 }),
  randomTimes: fc.array(fc.integer({ min: 0, max: 0xffffff }), { minLength: 40, maxLength: 40 }),
  messages: fc.array(message, { minLength: 1, maxLength: 40 }),
});

type FuzzCase = typeof fuzzCase extends fc.Arbitrary<infer T> ? T : never;

/** The case's media messages, after the publish's own commands. */
function caseBytes(c: FuzzCase): Buffer {
  let time = c.start;
  return Buffer.concat(
    [...c.prelude, ...c.messages].map((m, i) => {
      if (c.clock.mode === 'steady' || c.clock.mode === 'leaps') time += c.clock.step;
      else if (c.clock.mode === 'random') time = c.randomTimes[i % c.randomTimes.length]!;
      else if (c.clock.mode === 'back-and-forth') time = c.start + (i % 2) * c.clock.step;
      return mediaMessage(m.type, time & 0xffffff, m.body);
    }),
  );
}

const setChunkSize = (() => {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(PUBLISH_CHUNK_SIZE);
  return chunk(size, { csid: 2, type: 1 });
})();

/** One case on its own connection: publish, send, give the ingest a moment, close. True when the publish was admitted. */
async function runCase(worker: number, media: Buffer): Promise<boolean> {
  const conn = await openRaw(ingest.rtmpPort, '127.0.0.1', `127.0.0.${2 + worker}`);
  conn.send(Buffer.concat([clientHandshake(), connectCommand(), createStreamCommand(), publishCommand(fuzzKey(worker)), setChunkSize]));
  const admitted = await waitFor(
    'the publish to be answered',
    () => {
      const text = receivedText(conn);
      return text.includes('NetStream.Publish.Start') ? 'yes' : text.includes('NetStream.Publish.') || conn.isClosed() ? 'no' : false;
    },
    { timeoutMs: 10_000, intervalMs: 10 },
  ).catch(() => 'no');
  if (admitted === 'yes') {
    await sendAndDrain(conn, media);
    // Until the ingest ends the publish, or briefly.
    await Promise.race([conn.closed, sleep(100)]);
  }
  conn.socket.destroy();
  await conn.closed;
  return admitted === 'yes';
}

/** A legitimate publisher at the media's own pace, for as long as `running()` and at least 4 s; its key, as ffmpeg would send it. */
async function legitPublisher(running: () => boolean): Promise<{ description: string | undefined }> {
  const conn = await openPublish(ingest.rtmpPort, LEGIT_KEY, { localAddress: '127.0.0.9' });
  conn.send(mediaMessage(9, 0, HEVC.config));
  const keyframe = hevcFrame(true, 8000);
  const delta = hevcFrame(false, 1500);
  const started = Date.now();
  // Bounded: at most 10 minutes of media at 10 frames a second.
  for (let i = 0; i < 6000 && (running() || i <= 40) && !conn.isClosed(); i++) {
    const ms = i * 100;
    await sendAndDrain(conn, mediaMessage(9, ms, i % 10 === 0 ? keyframe : delta));
    await sleep(Math.max(0, started + ms - Date.now()));
  }
  const text = receivedText(conn);
  const refused = /NetStream\.Publish\.(Rejected|Failed|Stop)[\s\S]*?description\x02..([^\x00]+)/.exec(text);
  await sendAndDrain(conn, command(['deleteStream', 4, null, 1]));
  conn.socket.end();
  await conn.closed;
  return { description: refused?.[2] };
}

const alive = () => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;
const faults = () => ingest.proc.lines.filter((l) => l.includes('a fault in the ingest') || l.includes('packaging failed') || l.includes('"level":"fatal"'));

t.test(`${CASES} fuzzed admitted publishes leave the ingest up, bounded and serving (seed ${SEED})`, async (t) => {
  t.comment(`replay with TTEOK_FUZZ_SEED=${SEED}`);
  const pid = ingest.proc.child.pid!;
  const rssBefore = await rssBytes(pid);
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // the peak from here on
  } catch {
    // VmHWM then includes start-up, which only makes the bound stricter.
  }
  let fuzzing = true;
  const legit = legitPublisher(() => fuzzing);

  // Cases are drawn up front (they share the big records) and turned into bytes one at a time.
  const cases = fc.sample(fuzzCase, { numRuns: CASES, seed: SEED });
  let next = 0;
  let admitted = 0;
  const started = Date.now();
  t.comment(`${CASES} cases drawn`);
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, worker) => {
      while (next < cases.length && alive()) if (await runCase(worker, caseBytes(cases[next++]!))) admitted++;
    }),
  );
  fuzzing = false;
  const { description } = await legit;
  t.comment(`${CASES} cases in ${((Date.now() - started) / 1000).toFixed(0)} s, ${admitted} admitted; how publishes ended:`);
  t.ok(alive(), 'the ingest is still running');
  if (!alive()) return;
  const metrics = await ingest.metrics();
  for (const line of metrics.split('\n').filter((l) => /^tteok_ingest_(publishes_total|dropped_packets_total|muxer_restarts_total)/.test(l)))
    t.comment(`  ${line}`);
  t.ok(admitted >= CASES / 2, `most cases ran as an admitted publish (${admitted} of ${CASES})`);
  const health = await fetch(`http://127.0.0.1:${ingest.httpPort}/healthz`);
  t.equal(health.status, 200, '/healthz answers');
  t.same(faults(), [], 'no publish ended in a fault of the ingest itself');
  const peak = await peakRssBytes(pid);
  t.ok(
    peak - rssBefore < PEAK_GROWTH_BOUND,
    `peak RSS grew ${((peak - rssBefore) / MiB).toFixed(0)} MiB (bound ${PEAK_GROWTH_BOUND / MiB} MiB; before ${(rssBefore / MiB).toFixed(0)} MiB)`,
  );

  t.equal(description, undefined, 'the legitimate publisher was never ended');
  const playlist = join(originDir, 'default', 'legit', 'index.m3u8');
  await waitFor("the legitimate stream's final playlist", () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST'));
  const root = join(originDir, 'default', 'legit');
  const segments = readdirSync(root)
    .filter((f) => statSync(join(root, f)).isDirectory())
    .flatMap((s) => readdirSync(join(root, s)).filter((f) => f.endsWith('.m4s')));
  t.ok(segments.length >= 3, `the legitimate stream is stored (${segments.length} segments)`);
});
