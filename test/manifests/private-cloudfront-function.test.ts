// The CloudFront Function that guards private streams
// (manifests/aws/playback-token-function.js), executed in Node: its own code,
// unchanged but for one appended `export { handler }` line, given
// viewer-request events shaped as CloudFront sends them. The `cloudfront`
// module (KeyValueStore access) exists only inside CloudFront, so a minimal
// stand-in for `cf.kvs().get()` backed by a Map is the one fake here; `crypto`
// is Node's. Every case is also run through common/playback-token.ts, the
// gateway's implementation of the same rule, and the two must agree. A token
// is signed for the stream under one key prefix (two installations may share
// a bucket), and the token marker `_t` cannot be a namespace, so a public
// stream in namespace `t` plays.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { authorizeMediaPath, mintPlaybackToken, type PlaybackKey } from '../../common/playback-token.ts';
import { RENDITION_PRESET_NAMES } from '../../common/renditions.ts';
import { ROOT } from '../../harness/chart-tools.ts';

interface CfRequest {
  method: string;
  uri: string;
  querystring: Record<string, unknown>;
  headers: Record<string, { value: string }>;
  cookies: Record<string, unknown>;
}
interface CfResponse {
  statusCode: number;
  statusDescription?: string;
  headers?: Record<string, { value: string }>;
}
type Handler = (event: unknown) => Promise<CfRequest | CfResponse>;

const kvs = new Map<string, string>();
const OLD: PlaybackKey = { id: 'k2026a', secret: 'old-secret-0123456789abcdefghijklmnopqrstuvwxyz' };
const NEW: PlaybackKey = { id: 'k2026b', secret: 'new-secret-0123456789abcdefghijklmnopqrstuvwxyz' };
const demo = { namespace: 'default', name: 'demo' };
const other = { namespace: 'default', name: 'other' };

async function loadFunction(): Promise<Handler> {
  const dir = await mkdtemp(join(tmpdir(), 'tteok-cff-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // The stand-in for CloudFront's `cloudfront` module: kvs().get() resolves a
  // stored string and rejects for a missing key, as the real one does.
  await mkdir(join(dir, 'node_modules', 'cloudfront'), { recursive: true });
  await writeFile(join(dir, 'node_modules', 'cloudfront', 'package.json'), JSON.stringify({ name: 'cloudfront', type: 'module', main: 'index.js' }));
  await writeFile(
    join(dir, 'node_modules', 'cloudfront', 'index.js'),
    `export default { kvs: () => ({ get: async (key) => { const v = globalThis.__tteokKvs.get(key); if (v === undefined) throw new Error('Key not found'); return v; } }) };\n`,
  );
  (globalThis as Record<string, unknown>).__tteokKvs = kvs;
  const source = await readFile(join(ROOT, 'manifests/aws/playback-token-function.js'), 'utf8');
  const file = join(dir, 'function.mjs');
  await writeFile(file, `${source}\nexport { handler };\n`);
  const mod = (await import(pathToFileURL(file).href)) as { handler: Handler };
  return mod.handler;
}

/** A viewer-request event as CloudFront Functions receive it. */
function viewerRequest(uri: string): unknown {
  return {
    version: '1.0',
    context: { distributionDomainName: 'd123.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'req-1' },
    viewer: { ip: '198.51.100.11' },
    request: {
      method: 'GET',
      uri,
      querystring: {},
      headers: { host: { value: 'd123.cloudfront.net' }, accept: { value: '*/*' }, origin: { value: 'https://app.example.com' } },
      cookies: {},
    },
  };
}

type Outcome = { allow: true; uri: string } | { allow: false; reason: string };

async function viaFunction(handler: Handler, uri: string): Promise<Outcome> {
  const result = await handler(viewerRequest(uri));
  if ('statusCode' in result) {
    t.equal(result.statusCode, 403, `${uri}: a refusal is 403`);
    t.equal(result.headers?.['cache-control']?.value, 'no-store', 'a refusal is not cached');
    return { allow: false, reason: result.headers?.['x-tteok-denied']?.value ?? '' };
  }
  return { allow: true, uri: result.uri };
}

function viaModule(uri: string): Outcome {
  const secretOf = (id: string) => kvs.get(`token-key-${id}`);
  const decision = authorizeMediaPath(uri, secretOf);
  return decision.allow ? { allow: true, uri: decision.uri } : { allow: false, reason: decision.reason };
}

const tokenFor = (key: PlaybackKey, ref: typeof demo, ttl = 3600, now = Date.now(), prefix = 'live') =>
  mintPlaybackToken(key, { prefix, ...ref }, ttl, now).token;
const playlist = (prefix = 'live/') => `/${prefix}_private/default/demo/index.m3u8`;
const segment = '/live/_private/default/demo/mk3x-1a2b3c4d/1-17.m4s';
const init = '/live/_private/default/demo/mk3x-1a2b3c4d/init-1.mp4';

t.test('the CloudFront Function and common/playback-token.ts decide every request alike', async (t) => {
  const handler = await loadFunction();
  kvs.clear();
  kvs.set(`token-key-${OLD.id}`, OLD.secret);

  const check = async (name: string, uri: string, expected: Outcome) => {
    const fn = await viaFunction(handler, uri);
    const mod = viaModule(uri);
    t.same(fn, expected, `${name}: CloudFront Function`);
    t.same(mod, fn, `${name}: common module agrees`);
  };
  const valid = tokenFor(OLD, demo);

  await check('public playlist, no token', '/live/default/demo/index.m3u8', { allow: true, uri: '/live/default/demo/index.m3u8' });
  await check('public segment, no token', '/default/demo/mk3x-1a2b3c4d/1-17.m4s', { allow: true, uri: '/default/demo/mk3x-1a2b3c4d/1-17.m4s' });
  await check('private playlist, no token', playlist(), { allow: false, reason: 'a private stream needs a playback token' });
  await check('private segment, no token', segment, { allow: false, reason: 'a private stream needs a playback token' });
  await check('private init segment, no token', init, { allow: false, reason: 'a private stream needs a playback token' });
  await check('private playlist, percent-encoded marker', '/live/%5Fprivate/default/demo/index.m3u8', {
    allow: false,
    reason: 'a private stream needs a playback token',
  });
  await check('private playlist, encoded slash', '/live/_private%2Fdefault%2Fdemo%2Findex.m3u8', {
    allow: false,
    reason: 'a private stream needs a playback token',
  });
  await check('malformed percent-encoding', '/live/%E0%A4%A/default/demo/index.m3u8', { allow: false, reason: 'a private stream needs a playback token' });

  await check('valid token, playlist', `/_t/${valid}${playlist()}`, { allow: true, uri: playlist() });
  await check('valid token, segment', `/_t/${valid}${segment}`, { allow: true, uri: segment });
  await check('valid token, init segment', `/_t/${valid}${init}`, { allow: true, uri: init });
  const unprefixed = tokenFor(OLD, demo, 3600, Date.now(), '');
  await check('valid token, no prefix', `/_t/${unprefixed}${playlist('')}`, { allow: true, uri: playlist('') });
  const nested = tokenFor(OLD, demo, 3600, Date.now(), 'media/live');
  await check('valid token, two-part prefix', `/_t/${nested}${playlist('media/live/')}`, { allow: true, uri: playlist('media/live/') });

  // Two installations in one bucket, prefixes "live" and "other": a token of one opens nothing of the other.
  await check('token of prefix live, under prefix other', `/_t/${valid}${playlist('other/')}`, { allow: false, reason: 'token bad-signature' });
  await check('token of prefix live, without the prefix', `/_t/${valid}${playlist('')}`, { allow: false, reason: 'token bad-signature' });
  await check('token without a prefix, under prefix live', `/_t/${unprefixed}${playlist()}`, { allow: false, reason: 'token bad-signature' });
  await check('token of prefix live, under live/live', `/_t/${valid}${playlist('live/live/')}`, { allow: false, reason: 'token bad-signature' });

  // Namespace `t` is a valid namespace: its public streams pass unchanged, with no prefix too.
  await check('public playlist in namespace t, no prefix', '/t/demo/index.m3u8', { allow: true, uri: '/t/demo/index.m3u8' });
  await check('public segment in namespace t, no prefix', '/t/demo/mk3x-1a2b3c4d/1-17.m4s', { allow: true, uri: '/t/demo/mk3x-1a2b3c4d/1-17.m4s' });
  // A v1 URL (before issue 17) is not a token path any more: its private path needs a token.
  await check('v1 token URL', `/t/${valid}${playlist()}`, { allow: false, reason: 'a private stream needs a playback token' });

  const expired = tokenFor(OLD, demo, 60, Date.now() - 3_600_000);
  await check('expired token', `/_t/${expired}${playlist()}`, { allow: false, reason: 'token expired' });
  await check("another stream's token", `/_t/${tokenFor(OLD, other)}${playlist()}`, { allow: false, reason: 'token bad-signature' });

  const [kid, expires, signature] = valid.split('.') as [string, string, string];
  const later = String(Number(expires) + 86_400 * 365);
  await check('tampered: expiry pushed back', `/_t/${kid}.${later}.${signature}${playlist()}`, { allow: false, reason: 'token bad-signature' });
  const flipped = (signature[0] === 'a' ? 'b' : 'a') + signature.slice(1);
  await check('tampered: signature changed', `/_t/${kid}.${expires}.${flipped}${playlist()}`, { allow: false, reason: 'token bad-signature' });
  await check('tampered: key id changed', `/_t/nosuchkey.${expires}.${signature}${playlist()}`, { allow: false, reason: 'token unknown-key' });
  await check('tampered: truncated', `/_t/${valid.slice(0, -1)}${playlist()}`, { allow: false, reason: 'token malformed' });
  await check('token on a public path', `/_t/${valid}/live/default/demo/index.m3u8`, { allow: false, reason: "a token is only for a private stream's media" });
  await check('token path with a dot segment', `/_t/${valid}/live/_private/default/demo/../other/index.m3u8`, {
    allow: false,
    reason: "a token is only for a private stream's media",
  });
  await check('token path, not a media file', `/_t/${valid}/live/_private/default/demo/secret.txt`, {
    allow: false,
    reason: "a token is only for a private stream's media",
  });
  await check('token, nothing after it', `/_t/${valid}`, { allow: false, reason: 'no path after the token' });
});

t.test("an adaptive ladder's paths (issue 19): every rendition's playlist and segments and the thumbnail, with a token only", async (t) => {
  const handler = await loadFunction();
  kvs.clear();
  kvs.set(`token-key-${OLD.id}`, OLD.secret);
  const check = async (name: string, uri: string, expected: Outcome) => {
    const fn = await viaFunction(handler, uri);
    t.same(fn, expected, `${name}: CloudFront Function`);
    t.same(viaModule(uri), fn, `${name}: common module agrees`);
  };
  const valid = tokenFor(OLD, demo);
  const stream = '/live/_private/default/demo';
  const refusedWithToken = { allow: false, reason: "a token is only for a private stream's media" } as const;
  const needsToken = { allow: false, reason: 'a private stream needs a playback token' } as const;

  // Every rendition name common/renditions.ts knows, so a preset added there and not here fails.
  for (const rendition of ['source', 'track1', 'track2', 'track99', ...RENDITION_PRESET_NAMES]) {
    const path = `${stream}/${rendition}.m3u8`;
    await check(`${rendition}.m3u8 with a token`, `/_t/${valid}${path}`, { allow: true, uri: path });
    await check(`${rendition}.m3u8 without`, path, needsToken);
    if (rendition === 'source') continue; // the source's segments sit in the session folder itself
    for (const file of ['init-1.mp4', '17.m4s']) {
      const segmentPath = `${stream}/mk3x-1a2b3c4d/${rendition}/${file}`;
      await check(`${rendition}/${file} with a token`, `/_t/${valid}${segmentPath}`, { allow: true, uri: segmentPath });
      await check(`${rendition}/${file} without`, segmentPath, needsToken);
    }
  }
  await check('thumbnail with a token', `/_t/${valid}${stream}/thumbnail.jpg`, { allow: true, uri: `${stream}/thumbnail.jpg` });
  await check('thumbnail without', `${stream}/thumbnail.jpg`, needsToken);
  await check('public thumbnail', '/live/default/demo/thumbnail.jpg', { allow: true, uri: '/live/default/demo/thumbnail.jpg' });
  await check('public rendition segment', '/live/default/demo/mk3x-1a2b3c4d/480p/3.m4s', { allow: true, uri: '/live/default/demo/mk3x-1a2b3c4d/480p/3.m4s' });

  // Nothing else: names that are not renditions, the source as a folder, other files, deeper folders.
  for (const rest of [
    'history.m3u8',
    'track0.m3u8',
    'track100.m3u8',
    '240p.m3u8',
    'Source.m3u8',
    'thumbnail.png',
    'thumbnail.jpeg',
    'mk3x-1a2b3c4d/thumbnail.jpg',
    'mk3x-1a2b3c4d/source/1.m4s',
    'mk3x-1a2b3c4d/other/1.m4s',
    'mk3x-1a2b3c4d/480p/1.m3u8',
    'mk3x-1a2b3c4d/480p/480p/1.m4s',
    '480p/1.m4s.m3u8',
  ]) {
    await check(`${rest} with a token`, `/_t/${valid}${stream}/${rest}`, refusedWithToken);
    await check(`${rest} without`, `${stream}/${rest}`, needsToken);
  }
});

t.test('key rotation: two secrets verify during the changeover, the retired one stops', async (t) => {
  const handler = await loadFunction();
  kvs.clear();
  kvs.set(`token-key-${OLD.id}`, OLD.secret);
  const oldToken = tokenFor(OLD, demo);
  const newToken = tokenFor(NEW, demo);
  const decide = async (token: string) => {
    const fn = await viaFunction(handler, `/_t/${token}${playlist()}`);
    t.same(viaModule(`/_t/${token}${playlist()}`), fn, 'common module agrees');
    return fn.allow;
  };

  t.equal(await decide(oldToken), true, 'before: the old key verifies');
  t.equal(await decide(newToken), false, 'before: the new key is not in the store yet');
  kvs.set(`token-key-${NEW.id}`, NEW.secret); // step 1: add the new secret beside the old one
  t.equal(await decide(oldToken), true, 'changeover: tokens signed with the old key still play');
  t.equal(await decide(newToken), true, 'changeover: tokens signed with the new key play');
  kvs.delete(`token-key-${OLD.id}`); // step 3: after the longest old token expired
  t.equal(await decide(oldToken), false, 'after: the old key is gone');
  t.equal(await decide(newToken), true, 'after: the new key verifies');
});
