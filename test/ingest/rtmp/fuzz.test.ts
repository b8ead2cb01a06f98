// Property-based fuzzing of the RTMP port (fast-check) against the real ingest
// process, as a user runs it: at least 20,000 sessions — raw random bytes, a
// valid handshake followed by random bytes, hand-built chunk streams with
// lying headers, AMF0 commands with malformed values, and mutations of a real
// ffmpeg publish (test/ingest/rtmp/fuzz/seeds/) — each on its own connection, many at
// once. The property: the ingest stays up, answers /healthz, never reports a
// fault of its own, and a legitimate ffmpeg publisher is accepted afterwards
// and its stream stored.
//
// Known crashers (test/ingest/rtmp/fuzz/regressions.ts) run first. The run's seed is
// printed; TTEOK_FUZZ_SEED=<seed> replays it, TTEOK_FUZZ_CASES=<n> changes
// the count. When the ingest dies, the batch that killed it is replayed one
// case at a time and the crashing bytes are written out for a new
// regression case.
import { readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { REGRESSIONS } from './fuzz/regressions.ts';
import { startIngestProcess, writeKeyFile, type IngestProcess } from '../../../harness/ingest-process.ts';
import { stopAll } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { amf0, chunk, clientHandshake, connectCommand, createStreamCommand, rssBytes } from '../../../harness/rtmp-wire.ts';
import { waitFor } from '../../../harness/wait.ts';

const CASES = Number(process.env.TTEOK_FUZZ_CASES ?? 20_000);
const SEED = Number(process.env.TTEOK_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CONCURRENCY = 32;
const BATCH = 500;
/** How long a case's connection waits for the ingest to close it before the client closes it. */
const CASE_WAIT_MS = 150;
/** Source addresses on loopback, so 20,000 short connections do not run out of ephemeral ports. */
const SOURCE_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

const SEED_KEY = 'fuzz_seed_key_aaaaaaaaaaaa1'; // the key the seed capture published with
const FINAL_KEY = 'fuzz_final_key_aaaaaaaaaaa2';
const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmp-fuzz-'));
const keysFile = join(dir, 'keys.yaml');
const originDir = join(dir, 'origin');
writeKeyFile(keysFile, [
  { name: 'seeded', key: SEED_KEY },
  { name: 'final', key: FINAL_KEY },
]);
const ingestEnv = {
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: originDir,
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info', // the harness waits for the info line "ingest ready"
  TTEOK_RECONNECT_GRACE_SECONDS: '1',
  TTEOK_RTMP_PUBLISH_DEADLINE_SECONDS: '2',
  TTEOK_RTMP_MAX_CONNECTIONS: '10000',
  TTEOK_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '10000',
};
let ingest: IngestProcess = await startIngestProcess(ingestEnv);

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

// ---- what a session looks like ----------------------------------------------

const HANDSHAKE = clientHandshake();
const SEED_SESSION = readFileSync(join(import.meta.dirname, 'fuzz', 'seeds', 'ffmpeg-publish.bin'));
const SEED_BODY = SEED_SESSION.subarray(1 + 1536 + 1536); // after C0, C1, C2

const bytes = (maxLength: number) => fc.uint8Array({ minLength: 1, maxLength }).map((b) => Buffer.from(b));

/** A chunk as an attacker writes it: any header form, any declared length, payload unrelated to it. */
const rawChunk = fc
  .record({
    fmt: fc.integer({ min: 0, max: 3 }),
    csid: fc.oneof(fc.integer({ min: 2, max: 10 }), fc.integer({ min: 2, max: 63 }), fc.integer({ min: 64, max: 319 }), fc.integer({ min: 320, max: 65599 })),
    timestamp: fc.oneof(fc.constant(0xffffff), fc.integer({ min: 0, max: 0xffffff })),
    extended: fc.integer({ min: 0, max: 0xffffffff }),
    length: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 4, 128, 129, 4096, 65536, 65537, 0xffffff)),
    type: fc.oneof(fc.constantFrom(1, 2, 3, 4, 5, 6, 8, 9, 15, 16, 17, 18, 19, 20, 22), fc.integer({ min: 0, max: 255 })),
    streamId: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 0xffffffff })),
    payload: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constant(new Uint8Array([0, 0, 0, 0])), fc.constant(new Uint8Array([0xff, 0xff, 0xff, 0xff]))),
  })
  .map((c) => {
    const basic =
      c.csid < 64
        ? Buffer.from([(c.fmt << 6) | c.csid])
        : c.csid < 320
          ? Buffer.from([c.fmt << 6, c.csid - 64])
          : Buffer.from([(c.fmt << 6) | 1, (c.csid - 64) & 0xff, (c.csid - 64) >> 8]);
    const header = Buffer.alloc([11, 7, 3, 0][c.fmt]!);
    if (c.fmt <= 2) header.writeUIntBE(c.timestamp, 0, 3);
    if (c.fmt <= 1) {
      header.writeUIntBE(c.length, 3, 3);
      header[6] = c.type;
    }
    if (c.fmt === 0) header.writeUInt32LE(c.streamId, 7);
    const extended = c.timestamp === 0xffffff ? Buffer.alloc(4) : Buffer.alloc(0);
    if (extended.length) extended.writeUInt32BE(c.extended);
    return Buffer.concat([basic, header, extended, Buffer.from(c.payload)]);
  });

/** AMF0 values, well-formed or not: every type marker, lying lengths and counts, deep nesting. */
const amfValue: fc.Arbitrary<Buffer> = fc.letrec<{ value: Buffer }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.double().map((n) => {
      const b = Buffer.alloc(9);
      b.writeDoubleBE(n, 1);
      return b;
    }),
    fc.boolean().map((v) => Buffer.from([1, v ? 1 : 0])),
    fc.string({ maxLength: 40 }).map((s) => amf0(s)),
    fc.constantFrom(Buffer.from([5]), Buffer.from([6]), Buffer.from([9]), Buffer.from([0, 0, 9])),
    fc.tuple(fc.integer({ min: 0, max: 255 }), bytes(16)).map(([marker, rest]) => Buffer.concat([Buffer.from([marker]), rest])),
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), bytes(8)).map(([len, rest]) => {
      const b = Buffer.alloc(3);
      b[0] = 2;
      b.writeUInt16BE(len, 1);
      return Buffer.concat([b, rest]);
    }),
    fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), bytes(8)).map(([len, rest]) => {
      const b = Buffer.alloc(5);
      b[0] = 12;
      b.writeUInt32BE(len, 1);
      return Buffer.concat([b, rest]);
    }),
    fc
      .tuple(fc.constantFrom(3, 8), fc.array(fc.tuple(fc.string({ maxLength: 12 }), tie('value')), { maxLength: 4 }), fc.boolean())
      .map(([marker, props, closed]) => {
        const parts: Buffer[] = [Buffer.from([marker])];
        if (marker === 8) parts.push(Buffer.from([0, 0, 0, props.length]));
        for (const [k, v] of props) parts.push(amf0(k).subarray(1), v);
        if (closed) parts.push(Buffer.from([0, 0, 9]));
        return Buffer.concat(parts);
      }),
    fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.array(tie('value'), { maxLength: 4 })).map(([count, values]) => {
      const b = Buffer.alloc(5);
      b[0] = 10;
      b.writeUInt32BE(count, 1);
      return Buffer.concat([b, ...values]);
    }),
    fc.integer({ min: 1, max: 3000 }).map((depth) => Buffer.concat([Buffer.from([3]), Buffer.from('000003'.repeat(depth), 'hex')])),
  ),
})).value;

const commandName = fc.oneof(
  fc.constantFrom(
    'connect',
    'createStream',
    'publish',
    'play',
    'deleteStream',
    'releaseStream',
    'FCPublish',
    'FCUnpublish',
    '@setDataFrame',
    '_checkbw',
    '__proto__',
    '',
  ),
  fc.string({ maxLength: 16 }),
);

const amfCommand = fc
  .record({
    name: commandName,
    transactionId: fc.oneof(
      fc.integer({ min: 0, max: 10 }).map((n) => amf0(n)),
      amfValue,
    ),
    args: fc.array(amfValue, { maxLength: 4 }),
    key: fc.oneof(fc.constant(undefined), fc.constant(SEED_KEY), fc.string({ maxLength: 140 })),
    amf3: fc.boolean(),
    csid: fc.integer({ min: 2, max: 63 }),
    streamId: fc.constantFrom(0, 1, 2),
  })
  .map((c) => {
    const payload = Buffer.concat([amf0(c.name), c.transactionId, ...c.args, ...(c.key !== undefined ? [amf0(null, c.key)] : [])]);
    return chunk(c.amf3 ? Buffer.concat([Buffer.from([0]), payload]) : payload, { type: c.amf3 ? 17 : 20, csid: c.csid, streamId: c.streamId });
  });

/** Byte-level mutations of a real session: flips, overwrites, inserts, deletes, repeats. */
const mutation = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'repeat'),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
  length: fc.integer({ min: 1, max: 64 }),
});
function mutate(input: Buffer, mutations: Array<{ kind: string; at: number; value: number; length: number }>): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') b[at] = b[at]! ^ (1 << (m.value % 8));
    else if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.length, m.value), b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
    else b = Buffer.concat([b.subarray(0, at + m.length), b.subarray(at)]);
  }
  return b;
}

const session = fc.oneof(
  { arbitrary: bytes(2048), weight: 10 },
  { arbitrary: bytes(2048).map((b) => Buffer.concat([Buffer.from([3]), b])), weight: 5 },
  { arbitrary: bytes(4096).map((b) => Buffer.concat([HANDSHAKE, b])), weight: 10 },
  { arbitrary: fc.array(rawChunk, { minLength: 1, maxLength: 12 }).map((cs) => Buffer.concat([HANDSHAKE, ...cs])), weight: 25 },
  {
    arbitrary: fc
      .record({ connected: fc.boolean(), commands: fc.array(amfCommand, { minLength: 1, maxLength: 4 }), flips: fc.array(mutation, { maxLength: 3 }) })
      .map(({ connected, commands, flips }) =>
        Buffer.concat([HANDSHAKE, ...(connected ? [connectCommand(), createStreamCommand()] : []), mutate(Buffer.concat(commands), flips)]),
      ),
    weight: 25,
  },
  {
    arbitrary: fc
      .record({ cut: fc.integer({ min: 1, max: SEED_BODY.length }), mutations: fc.array(mutation, { minLength: 1, maxLength: 8 }) })
      .map(({ cut, mutations }) => Buffer.concat([HANDSHAKE, mutate(SEED_BODY.subarray(0, cut), mutations)])),
    weight: 25,
  },
);

// ---- running sessions -----------------------------------------------------

let nextSource = 0;
function runCase(port: number, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const localAddress = SOURCE_ADDRESSES[nextSource++ % SOURCE_ADDRESSES.length];
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const timer = setTimeout(() => socket.destroy(), CASE_WAIT_MS + 2000);
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect', () => {
      socket.write(data, () => setTimeout(() => socket.destroy(), CASE_WAIT_MS));
    });
  });
}

async function runAll(port: number, cases: Buffer[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < cases.length) await runCase(port, cases[next++]!);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

const alive = () => ingest.proc.child.exitCode === null && ingest.proc.child.signalCode === null;
const faults = () => ingest.proc.lines.filter((l) => l.includes('a fault in the ingest') || l.includes('"level":"fatal"'));

/** The batch killed the ingest: find the case that did, one at a time on a fresh process. */
async function isolateCrash(cases: Buffer[]): Promise<string> {
  const out = join(tmpdir(), `tteok-rtmp-fuzz-crash-${SEED}.hex`);
  for (const c of cases) {
    if (!alive()) ingest = await startIngestProcess(ingestEnv);
    await runCase(ingest.rtmpPort, c);
    await waitFor('the ingest to settle', () => true, { timeoutMs: 200 });
    if (!alive()) {
      writeFileSync(out, c.toString('hex'));
      return `a crashing session (${c.length} bytes) was written to ${out}: add it to test/ingest/rtmp/fuzz/regressions.ts`;
    }
  }
  return 'no single case of the batch crashes the ingest on its own (an interaction between concurrent sessions)';
}

t.test(`${CASES} fuzzed RTMP sessions leave the ingest up and serving (seed ${SEED})`, async (t) => {
  t.comment(`replay with TTEOK_FUZZ_SEED=${SEED}`);
  const rssBefore = await rssBytes(ingest.proc.child.pid!);
  const started = Date.now();
  await runAll(
    ingest.rtmpPort,
    REGRESSIONS.map((r) => r.bytes),
  );
  t.ok(alive(), 'the named regressions do not end the ingest');

  for (let done = 0, batch = 0; done < CASES; done += BATCH, batch++) {
    const cases = fc.sample(session, { numRuns: Math.min(BATCH, CASES - done), seed: SEED + batch });
    await runAll(ingest.rtmpPort, cases);
    if (!alive()) {
      t.fail(`the ingest exited during batch ${batch} (seed ${SEED}): ${await isolateCrash(cases)}`);
      return;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  t.comment(`${CASES} sessions in ${seconds.toFixed(0)} s; how they ended:`);
  const outcomes = (await ingest.metrics())
    .split('\n')
    .filter((l) => /^tteok_ingest_(rtmp_protocol_errors_total|rtmp_deadline_closes_total|publishes_total)\{/.test(l));
  for (const line of outcomes) t.comment(`  ${line}`);
  t.ok(alive(), 'the ingest is still running');
  const health = await fetch(`http://127.0.0.1:${ingest.httpPort}/healthz`);
  t.equal(health.status, 200, '/healthz answers');
  t.same(faults(), [], 'no connection ended in a fault of the ingest itself');
  // Memory is measured in rtmp-limits.test.ts; here admitted publishes of mutated media also package segments.
  t.comment(`RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${((await rssBytes(ingest.proc.child.pid!)) / 2 ** 20) | 0} MiB`);
  const errors = new Map<string, number>();
  for (const line of ingest.proc.lines.filter((l) => l.includes('"level":"error"'))) {
    const msg = (JSON.parse(line) as { msg?: string }).msg ?? line;
    errors.set(msg, (errors.get(msg) ?? 0) + 1);
  }
  for (const [msg, count] of errors) t.comment(`  logged ${count}× at error: ${msg}`);
});

t.test('a legitimate ffmpeg publisher is accepted afterwards and its stream stored', async (t) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(FINAL_KEY), seconds: 3 });
  const exit = await publisher.exited;
  t.equal(exit.code, 0, `ffmpeg published: ${publisher.lines.slice(-3).join(' | ')}`);
  const playlist = join(originDir, 'default', 'final', 'index.m3u8');
  const text = await waitFor(
    'the final playlist to be stored',
    () => existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXT-X-ENDLIST') && readFileSync(playlist, 'utf8'),
  );
  t.match(text, /\.m4s/, 'the stored playlist lists segments');
  t.ok(alive(), 'the ingest is still running');
});
