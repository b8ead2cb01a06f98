// The gateway's OpenAPI document: generated from the route schemas, served
// by a running gateway at /openapi.json, and committed as gateway/openapi.json
// for frontend teams (this test fails when the committed copy is stale:
// `npm run openapi` rewrites it).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateOpenApiDocument, OPENAPI_FILE } from '../../gateway/openapi-document.ts';
import { tteokCommand, writeKeyFile } from '../../harness/ingest-process.ts';
import { freePort } from '../../harness/ports.ts';
import { spawnManaged, stopAll } from '../../harness/process.ts';
import { httpReady } from '../../harness/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tteok-openapi-'));
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Doc {
  openapi: string;
  info: { version: string };
  paths: Record<
    string,
    Record<
      string,
      {
        operationId?: string;
        responses: Record<string, { content?: Record<string, { schema: { required?: string[]; properties?: Record<string, unknown> } }> }>;
      }
    >
  >;
}

t.test('the committed gateway/openapi.json is what the route schemas generate', async (tt) => {
  const generated = await generateOpenApiDocument();
  const committed = readFileSync(OPENAPI_FILE, 'utf8');
  tt.equal(committed, generated, 'gateway/openapi.json is out of date: run `npm run openapi` (make openapi) and commit it');
});

t.test('a running gateway serves the same document at /openapi.json', async (tt) => {
  const port = await freePort();
  writeKeyFile(join(dir, 'keys.yaml'), [{ name: 'demo', key: 'openapi_demo_key_0123456789' }]);
  const command = tteokCommand('gateway');
  const gateway = spawnManaged('gateway', process.execPath, command.args, {
    cwd: ROOT,
    env: {
      ...command.env,
      TTEOK_GATEWAY_HOST: '127.0.0.1',
      TTEOK_GATEWAY_PORT: String(port),
      TTEOK_KEYS_FILE: join(dir, 'keys.yaml'),
      TTEOK_PLAYBACK_BASE_URL: 'https://cdn.example.com',
      TTEOK_LOG_LEVEL: 'warn',
    },
  });
  const base = `http://127.0.0.1:${port}`;
  await httpReady(`${base}/readyz`);
  const res = await fetch(`${base}/openapi.json`, { headers: { origin: 'https://app.example.com' } });
  tt.equal(res.status, 200);
  tt.match(res.headers.get('content-type'), /^application\/json/);
  tt.equal(res.headers.get('access-control-allow-origin'), '*', 'a browser tool on another origin may read it');
  const served = (await res.json()) as Doc;
  tt.same(served, JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')), 'the committed document');
  tt.equal(served.openapi, '3.1.0');
  tt.equal(served.info.version, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);

  const operations = Object.values(served.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
  tt.same(
    operations.sort(),
    ['getStream', 'healthz', 'listStreams', 'metrics', 'mintPlaybackToken', 'readyz', 'streamEvents', 'streamEventsOne'],
    'every API route, no player page or asset',
  );

  // What the lookup answers is what the document says it answers.
  const lookup = (await (await fetch(`${base}/v1/streams/default/demo`)).json()) as Record<string, unknown>;
  const schema = served.paths['/v1/streams/{namespace}/{name}']!.get!.responses['200']!.content!['application/json']!.schema;
  tt.same(Object.keys(lookup).sort(), [...schema.required!].sort(), 'the lookup body has exactly the documented fields');
  tt.same(Object.keys(schema.properties!).sort(), [...schema.required!].sort());
  const errorBody = (await (await fetch(`${base}/v1/streams/default/nope`)).json()) as Record<string, unknown>;
  const errorSchema = served.paths['/v1/streams/{namespace}/{name}']!.get!.responses['404']!.content!['application/json']!.schema;
  tt.same(Object.keys(errorBody).sort(), [...errorSchema.required!].sort(), 'and so does a 404');
  await gateway.stop();
});
