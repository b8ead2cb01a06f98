// README's webhook verification example is code a backend will copy: run it
// as written against signatures the controller makes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { webhookSignature } from '../../controller/webhook-signature.ts';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('**Verifying**'));
const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
t.ok(code, 'README has the example');
const dir = mkdtempSync(join(tmpdir(), 'tteok-readme-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'verify.mjs'), code!);
const { verifyTteok } = (await import(pathToFileURL(join(dir, 'verify.mjs')).href)) as {
  verifyTteok: (h: string | undefined, body: string, key: string) => boolean;
};

const key = 'readme-signing-key-0123456789';
const body = JSON.stringify({ id: 'evt_1', type: 'stream.live' });
const now = Math.floor(Date.now() / 1000);
t.ok(verifyTteok(webhookSignature(key, body, now), body, key), 'accepts a delivery the controller signed');
t.notOk(verifyTteok(webhookSignature(key, body, now), body.replace('live', 'offline'), key), 'refuses a changed body');
t.notOk(verifyTteok(webhookSignature('another-key-0123456789abc', body, now), body, key), 'refuses another key');
t.notOk(verifyTteok(webhookSignature(key, body, now - 3600), body, key), 'refuses an old signature (a replay)');
t.notOk(verifyTteok(undefined, body, key), 'refuses a request without the header');
