// The benchmark's CPU profile summary: busy time by package and by kind of
// Node internal, idle left out, native frames charged to their caller, a
// time window, and the top functions by self time — on a hand-made
// `.cpuprofile` whose answer is known; and the compiled build's frames
// (dist/), counted as ours and listed at their TypeScript source line.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import {
  AWS_SDK,
  bucketOfUrl,
  EVENT_LOOP,
  GC,
  NODE_BUFFER,
  NODE_CRYPTO,
  NODE_FS,
  NODE_NET,
  NODE_OTHER,
  OTHER,
  OURS,
  PROGRAM,
  readMainThreadCpuProfile,
  summarizeCpuProfile,
  type CpuProfile,
  type ProfileNode,
} from '../lib/cpu-profile.ts';

const ROOT = '/srv/tteok';

function node(id: number, functionName: string, url: string, lineNumber: number, children: number[] = []): ProfileNode {
  return { id, callFrame: { functionName, url, lineNumber, columnNumber: 4, scriptId: String(id) }, hitCount: 0, children };
}

/** Samples in order with the µs each stands for (until the next sample). */
function profileOf(nodes: ProfileNode[], weighted: Array<[id: number, us: number]>, startTime = 1_000): CpuProfile {
  const timeDeltas = weighted.map((_, i) => (i === 0 ? 0 : weighted[i - 1]![1]));
  const total = weighted.reduce((a, [, us]) => a + us, 0);
  return { nodes, startTime, endTime: startTime + total, samples: weighted.map(([id]) => id), timeDeltas };
}

const nodes = [
  node(1, '(root)', '', -1, [2, 3, 4, 5, 8, 10]),
  node(2, '(program)', '', -1),
  node(3, '(idle)', '', -1),
  node(4, '(garbage collector)', '', -1),
  node(5, 'handleSegment', `file://${ROOT}/ingest/packager/segmenter.ts`, 10, [6, 7]),
  node(6, 'writeSample', `file://${ROOT}/node_modules/mediabunny/dist/modules/src/isobmff/isobmff-muxer.js`, 99, [9]),
  node(7, 'writeBuffer', '', -1),
  node(8, 'openSync', 'node:fs', 500),
  node(9, 'signRequest', `file://${ROOT}/node_modules/@smithy/signature-v4/dist-cjs/index.js`, 7),
  node(10, 'onStreamRead', 'node:internal/stream_base_commons', 160),
];

// Busy: ours 3000 self + 1000 native under it, mediabunny 2000, GC 1000, fs 1000,
// AWS SDK 500, net 500, program 1000 = 10,000 µs; idle 5,000 µs.
const weighted: Array<[number, number]> = [
  [5, 3000],
  [6, 2000],
  [7, 1000],
  [3, 5000],
  [4, 1000],
  [8, 1000],
  [9, 500],
  [10, 500],
  [2, 1000],
];

t.test('busy time by bucket, idle left out, a native frame charged to its caller', async (t) => {
  const s = summarizeCpuProfile(profileOf(nodes, weighted), { root: ROOT });
  t.equal(s.busyMs, 10);
  t.equal(s.idleMs, 5);
  t.equal(s.wholeProfile, false);
  const share = Object.fromEntries(s.buckets.map((b) => [b.bucket, b.share]));
  t.same(share, { [OURS]: 0.4, mediabunny: 0.2, [GC]: 0.1, [NODE_FS]: 0.1, [PROGRAM]: 0.1, [AWS_SDK]: 0.05, [NODE_NET]: 0.05 });
  t.equal(s.buckets[0]!.bucket, OURS, 'largest first');
  t.notOk(s.buckets.some((b) => b.bucket === '(idle)'));
});

t.test("Node's rows say whose calls they were", async (t) => {
  // openSync called from ours (through a Node-internal helper), and once straight from the event loop.
  const withCallers = [
    node(1, '(root)', '', -1, [5, 20]),
    node(5, 'handleSegment', `file://${ROOT}/ingest/packager/segmenter.ts`, 10, [11]),
    node(11, 'maybeCallback', 'node:internal/fs/utils', 30, [12]),
    node(12, 'open', '', -1),
    node(20, 'processTimers', 'node:internal/timers', 500, [21]),
    node(21, 'openSync', 'node:fs', 500),
  ];
  const s = summarizeCpuProfile(
    profileOf(withCallers, [
      [12, 3000],
      [21, 1000],
      [5, 1000],
    ]),
    { root: ROOT },
  );
  const fs = s.buckets.find((b) => b.bucket === NODE_FS);
  t.same(fs?.calledFrom, [
    { caller: OURS, share: 0.75 },
    { caller: EVENT_LOOP, share: 0.25 },
  ]);
  t.equal(s.buckets.find((b) => b.bucket === OURS)?.calledFrom, undefined, 'only for Node rows');
});

t.test('top functions by self time, with where they are defined; GC and (program) only in the bucket table', async (t) => {
  const s = summarizeCpuProfile(profileOf(nodes, weighted), { root: ROOT, top: 4 });
  t.same(
    s.top.map((f) => [f.functionName, f.location, f.bucket, f.ms]),
    [
      ['handleSegment', 'ingest/packager/segmenter.ts:11', OURS, 3],
      ['writeSample', 'mediabunny/dist/modules/src/isobmff/isobmff-muxer.js:100', 'mediabunny', 2],
      ['openSync', 'node:fs:501', NODE_FS, 1],
      ['writeBuffer', '(native)', OURS, 1],
    ],
  );
});

t.test('a window keeps only the samples taken in it; a window outside the profile falls back to all of it', async (t) => {
  // Samples are taken at 1000, 4000, 6000, 7000, …: [4000, 6000] holds mediabunny's and the native one.
  const inside = summarizeCpuProfile(profileOf(nodes, weighted), { root: ROOT, fromUs: 4_000, toUs: 6_000 });
  t.equal(inside.busyMs, 3);
  t.same(
    inside.buckets.map((b) => [b.bucket, b.ms]),
    [
      ['mediabunny', 2],
      [OURS, 1],
    ],
  );
  const outside = summarizeCpuProfile(profileOf(nodes, weighted), { root: ROOT, fromUs: 90_000, toUs: 99_000 });
  t.equal(outside.wholeProfile, true);
  t.equal(outside.busyMs, 10);
});

t.test('an empty profile gives empty shares, not NaN', async (t) => {
  const s = summarizeCpuProfile({ nodes: [node(1, '(root)', '', -1)], startTime: 0, endTime: 0 }, { root: ROOT });
  t.equal(s.busyMs, 0);
  t.same(s.buckets, []);
  t.same(s.top, []);
});

t.test('script URLs to buckets', async (t) => {
  t.equal(bucketOfUrl(`file://${ROOT}/common/backoff.ts`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/dist/ingest/ingest.js`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/node_modules/@aws-sdk/client-s3/dist-cjs/index.js`, ROOT), AWS_SDK);
  t.equal(bucketOfUrl(`file://${ROOT}/node_modules/@fastify/cors/index.js`, ROOT), '@fastify/cors');
  t.equal(bucketOfUrl(`file://${ROOT}/node_modules/chokidar/node_modules/readdirp/index.js`, ROOT), 'readdirp', 'the innermost package');
  t.equal(bucketOfUrl('file:///elsewhere/x.js', ROOT), OTHER);
  t.equal(bucketOfUrl('node:internal/fs/promises', ROOT), NODE_FS);
  t.equal(bucketOfUrl('node:fs', ROOT), NODE_FS);
  t.equal(bucketOfUrl('node:internal/streams/readable', ROOT), NODE_NET);
  t.equal(bucketOfUrl('node:_http_client', ROOT), NODE_NET);
  t.equal(bucketOfUrl('node:net', ROOT), NODE_NET);
  t.equal(bucketOfUrl('node:internal/crypto/hash', ROOT), NODE_CRYPTO);
  t.equal(bucketOfUrl('node:internal/buffer', ROOT), NODE_BUFFER);
  t.equal(bucketOfUrl('node:buffer', ROOT), NODE_BUFFER);
  t.equal(bucketOfUrl('node:internal/process/task_queues', ROOT), NODE_OTHER);
  t.equal(bucketOfUrl('', ROOT), undefined);
});

t.test("reads the main thread's profile of a directory, not a worker's", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-cpuprof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(readMainThreadCpuProfile(dir), undefined, 'none written');
  writeFileSync(join(dir, 'notes.txt'), 'not a profile');
  // The names node --cpu-prof gives: CPU.<date>.<time>.<pid>.<thread id>.<sequence>.cpuprofile
  writeFileSync(join(dir, 'CPU.20261202.043000.4242.1.002.cpuprofile'), JSON.stringify(profileOf(nodes, weighted.slice(0, 2))));
  t.equal(readMainThreadCpuProfile(dir), undefined, "only a worker's");
  writeFileSync(join(dir, 'CPU.20261202.043000.4242.0.001.cpuprofile'), JSON.stringify(profileOf(nodes, weighted)));
  t.equal(readMainThreadCpuProfile(dir)?.samples?.length, weighted.length);
});

t.test('the compiled build is ours too (dist/ingest, dist/common, dist/bin), and not a package inside it', async (t) => {
  t.equal(bucketOfUrl(`file://${ROOT}/dist/common/backoff.js`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/dist/bin/tteok.js`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/dist/ingest/packager/segment-packager.js`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/dist/gateway/gateway.js`, ROOT), OURS);
  t.equal(bucketOfUrl(`file://${ROOT}/node_modules/mediabunny/dist/modules/src/index.js`, ROOT), 'mediabunny', "a package's own dist/ is the package's");
});

t.test('a function in the compiled build is listed at its TypeScript line, through the source map the build wrote', async (t) => {
  // A real tsc build of a small project laid out as ours (rootDir ., outDir dist, sourceMap),
  // with type-only lines before the function so that the compiled line numbers drift.
  const root = mkdtempSync(join(tmpdir(), 'tteok-cpuprof-dist-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'ingest'));
  mkdirSync(join(root, 'bin'));
  const source = [
    "import type { Buffer } from 'node:buffer';",
    'export interface Fragment {',
    '  bytes: Buffer;',
    '  sequence: number;',
    '}',
    'type Sizes = number[];',
    'export function fragmentSizes(fragments: Fragment[]): Sizes {',
    '  return fragments.map((f) => f.bytes.length);',
    '}',
    '',
  ].join('\n');
  writeFileSync(join(root, 'ingest', 'fragments.ts'), source);
  writeFileSync(join(root, 'bin', 'main.ts'), 'export function main(): number {\n  return 1;\n}\n');
  const program = ts.createProgram([join(root, 'ingest', 'fragments.ts'), join(root, 'bin', 'main.ts')], {
    rootDir: root,
    outDir: join(root, 'dist'),
    sourceMap: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    types: [],
    skipLibCheck: true,
  });
  t.equal(program.emit().emitSkipped, false, 'tsc emitted');
  // The map of bin/main.js is removed: that frame keeps its compiled position.
  rmSync(join(root, 'dist', 'bin', 'main.js.map'));

  const compiled = readFileSync(join(root, 'dist', 'ingest', 'fragments.js'), 'utf8').split('\n');
  const jsLine = compiled.findIndex((l) => l.includes('function fragmentSizes'));
  const tsLine = source.split('\n').findIndex((l) => l.includes('function fragmentSizes'));
  t.not(jsLine, tsLine, 'the compiled line differs from the source line (else this test could not fail)');
  const mainLine = readFileSync(join(root, 'dist', 'bin', 'main.js'), 'utf8')
    .split('\n')
    .findIndex((l) => l.includes('function main'));

  const distNodes: ProfileNode[] = [
    node(1, '(root)', '', -1, [2, 3]),
    {
      id: 2,
      callFrame: {
        functionName: 'fragmentSizes',
        url: `file://${root}/dist/ingest/fragments.js`,
        lineNumber: jsLine,
        columnNumber: compiled[jsLine]!.indexOf('function'),
      },
      children: [],
    },
    { id: 3, callFrame: { functionName: 'main', url: `file://${root}/dist/bin/main.js`, lineNumber: mainLine, columnNumber: 7 }, children: [] },
  ];
  const s = summarizeCpuProfile(
    profileOf(distNodes, [
      [2, 3000],
      [3, 1000],
    ]),
    { root },
  );
  t.same(
    s.buckets.map((b) => [b.bucket, b.ms]),
    [[OURS, 4]],
  );
  t.same(
    s.top.map((f) => [f.functionName, f.location, f.bucket]),
    [
      ['fragmentSizes', `ingest/fragments.ts:${tsLine + 1}`, OURS],
      ['main', `dist/bin/main.js:${mainLine + 1}`, OURS],
    ],
  );
});
