// The command line as an operator meets it, run as a real process: --help and
// --version, every variable a role reads listed with its default and range
// (from the rows its loader reads through, and matching README's tables), the
// exit codes, the warning for a misspelt TTEOK_* name, and the env file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { envRows } from '../../common/env-help.ts';
import { ROLES, type RoleName } from '../../bin/roles.ts';
import { freePort } from '../../harness/ports.ts';
import { spawnManaged, stopAll, type ManagedProcess } from '../../harness/process.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tteok-cli-'));
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The environment without any TTEOK_* the test runner happens to have, plus `env`. */
function cleanEnv(env: Record<string, string>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of Object.keys(process.env)) if (name.startsWith('TTEOK_')) out[name] = undefined;
  return { ...out, ...env };
}

function tteok(args: string[], env: Record<string, string> = {}): ManagedProcess {
  return spawnManaged('tteok', process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 'tteok.ts'), ...args], { cwd: ROOT, env: cleanEnv(env) });
}

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const p = tteok(args, env);
  const { code } = await p.exited;
  return { code, out: p.lines.join('\n') };
}

/** The TTEOK_* names in the README table under `heading`. */
function readmeNames(heading: string): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README has no "${heading}"`);
  const rest = readme.slice(start + heading.length + 2);
  const table = rest.slice(0, rest.search(/\n#{2,3} /));
  return [...table.matchAll(/^\| `(TTEOK_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);
}

t.test("--version prints package.json's version", async (tt) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = await run(['--version']);
  tt.equal(r.code, 0);
  tt.equal(r.out.trim(), pkg.version);
});

t.test('--help names the roles, the options and the exit codes', async (tt) => {
  const r = await run(['--help']);
  tt.equal(r.code, 0);
  for (const role of Object.keys(ROLES)) tt.match(r.out, new RegExp(`^  ${role}\\s`, 'm'), `role ${role}`);
  tt.match(r.out, /--env-file <path>/);
  tt.match(r.out, /^ {2}2 +usage or configuration error/m);
  tt.match(r.out, /^ {2}1 +runtime failure/m);
  tt.match(r.out, /^ {2}0 +stopped cleanly/m);
});

const README_TABLES: Record<Exclude<RoleName, 'local'>, string> = {
  ingest: '### Ingest (`tteok ingest`)',
  gateway: '### Gateway (`tteok gateway`)',
  controller: '### Controller (`tteok controller`)',
  transcoder: '### Transcoder (`tteok transcoder`)',
};

for (const role of Object.keys(README_TABLES) as Array<keyof typeof README_TABLES>) {
  t.test(`tteok ${role} --help lists every variable it reads, with default and range, as README does`, async (tt) => {
    const r = await run([role, '--help']);
    tt.equal(r.code, 0);
    const rows = ROLES[role].sections.flatMap((s) => envRows(s.tables));
    for (const row of rows) {
      const line = r.out.split('\n').find((l) => l.startsWith(`  ${row.name}  `));
      tt.ok(line, `${row.name} is listed`);
      tt.match(line ?? '', `default: ${row.defaultText}`, `${row.name}: its default`);
      if (row.rangeText) tt.match(line ?? '', `[${row.rangeText}]`, `${row.name}: its range`);
    }
    const listed = new Set(rows.map((row) => row.name));
    for (const name of readmeNames(README_TABLES[role])) tt.ok(listed.has(name), `README's ${name} is one the ${role} reads`);
  });
}

t.test("the documented defaults and ranges are the loaders' own", async (tt) => {
  const r = await run(['ingest', '--help']);
  tt.match(r.out, /^ {2}TTEOK_RTMP_PORT {2}default: 1935 {2}\[0–65535\]$/m);
  tt.match(r.out, /^ {2}TTEOK_STORAGE {2}default: s3 {2}\[s3 \| local\]$/m);
  tt.match(r.out, /^ {2}TTEOK_S3_REGION {2}default: \$AWS_REGION, else us-east-1$/m);
  const g = await run(['gateway', '--help']);
  tt.match(g.out, /^ {2}TTEOK_EVENTS_MAX_CONNECTIONS {2}default: 1000 {2}\[0–1000000\]$/m);
});

t.test('usage errors exit 2 with the usage line', async (tt) => {
  for (const args of [[], ['bogus'], ['ingest', '--frob'], ['ingest', 'gateway']]) {
    const r = await run(args);
    tt.equal(r.code, 2, `tteok ${args.join(' ')}`);
    tt.match(r.out, /^usage: tteok /m);
  }
});

t.test('a configuration error exits 2 naming the variable; nothing starts', async (tt) => {
  const r = await run(['ingest'], { TTEOK_STORAGE: 'local', TTEOK_RTMP_PORT: 'abc' });
  tt.equal(r.code, 2);
  tt.match(r.out, /configuration error: TTEOK_RTMP_PORT must be an integer between 0 and 65535, got \\"abc\\"/);
  tt.notMatch(r.out, /ingest ready/);
  const level = await run(['gateway'], { TTEOK_PLAYBACK_BASE_URL: 'https://cdn.example.com', TTEOK_LOG_LEVEL: 'loud' });
  tt.equal(level.code, 2, 'a log level pino does not know is a configuration error too');
  tt.match(level.out, /TTEOK_LOG_LEVEL must be \\"trace\\" or \\"debug\\"/);
});

t.test("tteok local --help lists its own home and both roles' variables", async (tt) => {
  const r = await run(['local', '--help']);
  tt.equal(r.code, 0);
  for (const name of ['TTEOK_LOCAL_HOME', 'TTEOK_RTMP_PORT', 'TTEOK_GATEWAY_PORT', 'TTEOK_ENV_FILE', 'TTEOK_LOG_LEVEL'])
    tt.match(r.out, new RegExp(`^  ${name}  default: `, 'm'), name);
  tt.equal(r.out.split('\n').filter((l) => l.startsWith('  TTEOK_STORAGE  ')).length, 1, 'a variable both read is listed once');
});

t.test('a misspelt TTEOK_* name is warned about with the closest known name; the ingest starts and SIGTERM exits 0', async (tt) => {
  const rtmpPort = await freePort();
  const p = tteok(['ingest'], {
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin'),
    TTEOK_MEDIA_DIR: join(dir, 'media'),
    TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
    TTEOK_RTMP_HOST: '127.0.0.1',
    TTEOK_RTMP_PORT: String(rtmpPort),
    TTEOK_HTTP_HOST: '127.0.0.1',
    TTEOK_HTTP_PORT: String(await freePort()),
    TTEOK_RTMP_PROT: '1936',
    TTEOK_WHATEVER_THIS_IS: 'x',
  });
  writeFileSync(join(dir, 'keys.yaml'), '');
  const warning = JSON.parse(await p.waitForLine(/TTEOK_RTMP_PROT/)) as { level: string; msg: string };
  tt.equal(warning.level, 'warn');
  tt.equal(warning.msg, 'unknown TTEOK_RTMP_PROT; did you mean TTEOK_RTMP_PORT?');
  tt.match(await p.waitForLine(/TTEOK_WHATEVER_THIS_IS/), /unknown TTEOK_WHATEVER_THIS_IS \(no tteok role reads it\)/, 'a name like none gets no guess');
  const ready = JSON.parse(await p.waitForLine(/ingest ready/)) as { rtmpPort: number };
  tt.equal(ready.rtmpPort, rtmpPort, 'the misspelling changed nothing: the port is the one set correctly');
  tt.notOk(
    p.lines.some((l) => /unknown TTEOK_(STORAGE|RTMP_PORT|MEDIA_DIR)\b/.test(l)),
    'known names are not warned about',
  );
  p.child.kill('SIGTERM');
  tt.equal((await p.exited).code, 0, 'a clean shutdown exits 0');
});

t.test('a SIGTERM while the role is still starting shuts it down once started, exit 0 (not a kill)', async (tt) => {
  const p = tteok(['ingest'], {
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin-early'),
    TTEOK_MEDIA_DIR: join(dir, 'media-early'),
    TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
    TTEOK_RTMP_HOST: '127.0.0.1',
    TTEOK_RTMP_PORT: String(await freePort()),
    TTEOK_HTTP_HOST: '127.0.0.1',
    TTEOK_HTTP_PORT: String(await freePort()),
    // Warned about before the role starts: the moment to send the signal.
    TTEOK_NOT_A_SETTING: 'x',
  });
  writeFileSync(join(dir, 'keys.yaml'), '');
  await p.waitForLine(/TTEOK_NOT_A_SETTING/);
  p.child.kill('SIGTERM');
  const exit = await p.exited;
  tt.same(exit, { code: 0, signal: null }, 'the shutdown ran', { lines: p.lines.slice(-5) });
  tt.ok(
    p.lines.some((l) => /SIGTERM: shutting down once started/.test(l)),
    'and said it would',
  );
});

t.test("an env file (--env-file or TTEOK_ENV_FILE) is loaded with Node's parser; the environment wins over it", async (tt) => {
  const filePort = await freePort();
  const envPort = await freePort();
  const file = join(dir, 'tteok.env');
  writeFileSync(
    file,
    [
      '# a comment',
      'TTEOK_STORAGE=local',
      `TTEOK_LOCAL_ORIGIN_DIR="${join(dir, 'origin2')}"`,
      `TTEOK_MEDIA_DIR=${join(dir, 'media2')}`,
      `TTEOK_KEYS_FILE=${join(dir, 'keys.yaml')}`,
      'TTEOK_RTMP_HOST=127.0.0.1',
      `TTEOK_RTMP_PORT=${filePort}`,
      'TTEOK_HTTP_HOST=127.0.0.1',
      `TTEOK_HTTP_PORT=${await freePort()}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'keys.yaml'), '');
  for (const [how, args, env] of [
    ['--env-file', ['--env-file', file, 'ingest'], {}],
    ['TTEOK_ENV_FILE', ['ingest'], { TTEOK_ENV_FILE: file }],
  ] as const) {
    const p = tteok([...args], env);
    const ready = JSON.parse(await p.waitForLine(/ingest ready/)) as { rtmpPort: number; mediaDir: string };
    tt.equal(ready.rtmpPort, filePort, `${how}: the port from the file`);
    tt.equal(ready.mediaDir, join(dir, 'media2'), `${how}: the media directory from the file`);
    await p.stop('SIGTERM');
  }
  const p = tteok(['--env-file', file, 'ingest'], { TTEOK_RTMP_PORT: String(envPort) });
  const ready = JSON.parse(await p.waitForLine(/ingest ready/)) as { rtmpPort: number };
  tt.equal(ready.rtmpPort, envPort, 'a variable already in the environment wins over the file');
  await p.stop('SIGTERM');

  const missing = await run(['ingest'], { TTEOK_ENV_FILE: join(dir, 'nope.env') });
  tt.equal(missing.code, 2, 'a missing env file is a configuration error');
  tt.match(missing.out, /the env file .*nope\.env could not be loaded/);
});
