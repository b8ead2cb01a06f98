// manifests/aws/: the CloudFormation template passes cfn-lint (informational
// checks included) and a broken copy does not; the template and the plain JSON
// documents (for the AWS CLI) agree with each other and with the code: caching
// follows the object layout (playlists at most half a segment, segments for
// good, errors never cached), CORS allows GET and HEAD, only CloudFront reads
// the bucket, and the IAM policies grant exactly the S3 calls the code makes.
// With GatewayOriginDomain (LL-HLS), the gateway's LL origin is a second
// origin: playlists gateway-first with the bucket as failover, parts from the
// gateway alone, segments bucket-first with the gateway as failover, the
// blocking parameters in the playlist cache key, and the token function on
// every behavior.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml, type ScalarTag, type CollectionTag } from 'yaml';
import { ROOT, run, tool } from '../../harness/chart-tools.ts';
import { PART_FILE_SUFFIX } from '../../common/low-latency.ts';
import { loadGatewayConfig, ORIGIN_SECRET_MIN_LENGTH } from '../../gateway/config.ts';
import { blockingQuerystring, ORIGIN_SECRET_HEADER } from '../../gateway/plugins/low-latency.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON and YAML, read field by field
type Json = Record<string, any>;

const AWS = join(ROOT, 'manifests/aws');
const TEMPLATE = join(AWS, 'cloudformation.yaml');

// CloudFormation's short-form intrinsic functions, read as their long form.
const INTRINSICS = [
  'Ref',
  'Condition',
  'Sub',
  'GetAtt',
  'If',
  'Not',
  'Equals',
  'And',
  'Or',
  'Join',
  'Select',
  'Split',
  'FindInMap',
  'ImportValue',
  'Base64',
  'Cidr',
  'GetAZs',
];
const customTags: Array<ScalarTag | CollectionTag> = INTRINSICS.flatMap((fn) => {
  const key = fn === 'Ref' || fn === 'Condition' ? fn : `Fn::${fn}`;
  return [
    { tag: `!${fn}`, resolve: (value: string) => ({ [key]: fn === 'GetAtt' ? value.split('.') : value }) } as ScalarTag,
    { tag: `!${fn}`, collection: 'seq', resolve: (value: { toJSON(): unknown }) => ({ [key]: value.toJSON() }) } as unknown as CollectionTag,
  ];
});
const template = parseYaml(readFileSync(TEMPLATE, 'utf8'), { customTags }) as Json;
const resources = template.Resources as Record<string, { Type: string; Properties: Json; Condition?: string }>;
const json = (file: string): Json => JSON.parse(readFileSync(join(AWS, file), 'utf8')) as Json;
const crd = parseYaml(readFileSync(join(ROOT, 'manifests/crd/livestreams.tteok.dev.yaml'), 'utf8')) as Json;
const segmentSeconds = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.hls.properties.segmentSeconds as {
  minimum: number;
  maximum: number;
};

t.test('cfn-lint passes the template, and fails a broken copy', async (t) => {
  const ok = await run(tool('cfn-lint'), ['--include-checks', 'I', '--', TEMPLATE]);
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  const dir = await mkdtemp(join(tmpdir(), 'tteok-cfn-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, readFileSync(TEMPLATE, 'utf8').replace('SigningBehavior: always', 'SigningBehavior: sometimes'));
  const bad = await run(tool('cfn-lint'), ['--', broken]);
  t.not(bad.code, 0, 'a wrong value is caught');
  t.match(bad.stdout, /E3031 'sometimes' does not match/);
});

/** The template as CloudFormation makes it: Fn::If decided (both LL conditions as `gateway` says), AWS::NoValue dropped. */
function decide(value: unknown, gateway: boolean): unknown {
  const noValue = (v: unknown) => (v as Json | undefined)?.Ref === 'AWS::NoValue';
  if (Array.isArray(value)) return value.map((v) => decide(v, gateway)).filter((v) => !noValue(v));
  if (value && typeof value === 'object') {
    const obj = value as Json;
    if (Array.isArray(obj['Fn::If'])) {
      const [condition, yes, no] = obj['Fn::If'] as [string, unknown, unknown];
      if (condition !== 'HasGatewayOrigin' && condition !== 'HasOriginSecret') throw new Error(`unknown condition ${condition}`);
      return decide(gateway ? yes : no, gateway);
    }
    const out: Json = {};
    for (const [k, v] of Object.entries(obj)) {
      const decided = decide(v, gateway);
      if (!noValue(decided)) out[k] = decided;
    }
    return out;
  }
  return value;
}
const distribution = (gateway = false): Json => decide(resources.Distribution!.Properties.DistributionConfig, gateway) as Json;

const behaviors = (
  gateway = false,
): Array<{
  PathPattern: string;
  TargetOriginId: string;
  CachePolicyId: Json;
  Compress: boolean;
  ResponseHeadersPolicyId: Json;
  ViewerProtocolPolicy: string;
}> => {
  const config = distribution(gateway);
  return [{ ...config.DefaultCacheBehavior, PathPattern: '(default)' }, ...config.CacheBehaviors];
};
const policyOf = (pattern: string) => behaviors().find((b) => b.PathPattern === pattern)?.CachePolicyId?.Ref as string | undefined;
const cacheConfig = (name: string) => resources[name]!.Properties.CachePolicyConfig as Json;

t.test("the object layout's file types each get the right cache policy", async (t) => {
  const layout = readFileSync(join(ROOT, 'common/object-layout.ts'), 'utf8');
  for (const ext of ['.m3u8', '.m4s', '.mp4']) t.match(layout, `endsWith('${ext}')`, `the layout has ${ext} objects`);
  t.equal(policyOf('*.m3u8'), 'PlaylistCachePolicy');
  t.equal(policyOf('*.m4s'), 'SegmentCachePolicy');
  t.equal(policyOf('*.mp4'), 'SegmentCachePolicy', 'init segments');
  t.equal(policyOf('(default)'), 'PlaylistCachePolicy', 'anything else is short-lived');
  for (const b of behaviors()) {
    t.equal(b.ViewerProtocolPolicy, 'redirect-to-https', `${b.PathPattern}: HTTPS`);
    t.same(b.ResponseHeadersPolicyId, { Ref: 'CorsResponseHeadersPolicy' }, `${b.PathPattern}: CORS on every response`);
  }
});

/** The query strings a cache policy keys on: the template's list, or the CLI document's Items. */
function blockingParameters(p: Json): string[] {
  const q = p.ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig.QueryStrings as string[] | { Quantity: number; Items: string[] } | undefined;
  if (!q) return [];
  if (Array.isArray(q)) return q;
  if (q.Quantity !== q.Items.length) throw new Error('Quantity is not the number of Items');
  return q.Items;
}

t.test("playlists are cached for at most half a segment; the origin's max-age decides", async (t) => {
  const cfn = cacheConfig('PlaylistCachePolicy');
  const cli = json('cloudfront-cache-policy-playlists.json');
  for (const p of [cfn, cli]) {
    t.equal(p.MinTTL, 0, 'MinTTL 0: a max-age of 0 (1 s segments) is honoured');
    t.equal(p.DefaultTTL, 0, 'not cached when the origin sends no Cache-Control');
    t.ok(p.MaxTTL <= segmentSeconds.maximum / 2, `MaxTTL ${p.MaxTTL} ≤ half the longest segment (${segmentSeconds.maximum} s)`);
    t.same(
      [p.ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig.QueryStringBehavior, ...blockingParameters(p)],
      ['whitelist', ...Object.keys(blockingQuerystring.properties)],
      "the blocking parameters, exactly the LL origin's query",
    );
    t.same(p.ParametersInCacheKeyAndForwardedToOrigin.HeadersConfig, { HeaderBehavior: 'none' }, 'Origin does not split the cache');
    t.same(p.ParametersInCacheKeyAndForwardedToOrigin.CookiesConfig, { CookieBehavior: 'none' });
  }
  // What the ingest sends: max-age = floor(half the target duration).
  const layout = readFileSync(join(ROOT, 'common/object-layout.ts'), 'utf8');
  t.match(layout, /max-age=\$\{Math\.max\(0, Math\.floor\(maxAgeSeconds\)\)\}/, "the ingest's playlist max-age is whole seconds, floored");
  t.ok(Math.floor(segmentSeconds.maximum / 2) <= cfn.MaxTTL, "the longest segment's playlist max-age is not cut short");
});

t.test('segments are cached for good: their names are never reused', async (t) => {
  const layout = readFileSync(join(ROOT, 'common/object-layout.ts'), 'utf8');
  t.match(layout, /SEGMENT_CACHE_CONTROL = 'public, max-age=31536000, immutable'/);
  for (const p of [cacheConfig('SegmentCachePolicy'), json('cloudfront-cache-policy-segments.json')]) {
    t.ok(p.MinTTL >= 86400, 'at least a day even if the origin said less');
    t.equal(p.DefaultTTL, 31536000);
    t.equal(p.MaxTTL, 31536000);
    t.same(p.ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig, { QueryStringBehavior: 'none' });
    t.same(p.ParametersInCacheKeyAndForwardedToOrigin.HeadersConfig, { HeaderBehavior: 'none' });
  }
  t.same(cacheConfig('PlaylistCachePolicy').MinTTL, json('cloudfront-cache-policy-playlists.json').MinTTL);
});

t.test('a playlist or segment asked for before it is stored is not cached as an error', async (t) => {
  const errors = (resources.Distribution!.Properties.DistributionConfig as Json).CustomErrorResponses as Array<{
    ErrorCode: number;
    ErrorCachingMinTTL: number;
  }>;
  t.same(
    errors.map((e) => [e.ErrorCode, e.ErrorCachingMinTTL]).sort(),
    [403, 404, 500, 502, 503, 504].map((code) => [code, 0]),
    "neither are the LL origin's 5xx (a blocking request that timed out, an ingest gone)",
  );
});

t.test('CORS: GET and HEAD from S3, and on every CloudFront response', async (t) => {
  const s3Rule = (resources.MediaBucket!.Properties.CorsConfiguration as Json).CorsRules[0] as Json;
  const cliRule = json('s3-cors.json').CORSRules[0] as Json;
  t.same(s3Rule.AllowedMethods, ['GET', 'HEAD']);
  t.same(cliRule.AllowedMethods, ['GET', 'HEAD']);
  t.same(s3Rule.ExposedHeaders, cliRule.ExposeHeaders);
  const cors = (resources.CorsResponseHeadersPolicy!.Properties.ResponseHeadersPolicyConfig as Json).CorsConfig as Json;
  t.same(cors.AccessControlAllowMethods.Items, ['GET', 'HEAD', 'OPTIONS']);
  t.equal(cors.OriginOverride, true);
  t.equal(cors.AccessControlAllowCredentials, false);
});

t.test('only the CloudFront distribution reads the bucket (Origin Access Control)', async (t) => {
  const bucket = resources.MediaBucket!.Properties;
  t.same(bucket.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
  const oac = resources.OriginAccessControl!.Properties.OriginAccessControlConfig as Json;
  t.same([oac.OriginAccessControlOriginType, oac.SigningBehavior, oac.SigningProtocol], ['s3', 'always', 'sigv4']);
  const origin = distribution().Origins[0] as Json;
  t.same(origin.OriginAccessControlId, { 'Fn::GetAtt': ['OriginAccessControl', 'Id'] });
  t.same(origin.S3OriginConfig, { OriginAccessIdentity: '' }, 'no legacy origin access identity');
  for (const [where, doc] of [
    ['template', resources.MediaBucketPolicy!.Properties.PolicyDocument],
    ['s3-bucket-policy.json', json('s3-bucket-policy.json')],
  ] as const) {
    const allows = (doc.Statement as Json[]).filter((s) => s.Effect === 'Allow');
    t.equal(allows.length, 1, `${where}: one Allow`);
    t.same(allows[0]!.Principal, { Service: 'cloudfront.amazonaws.com' }, `${where}: to CloudFront`);
    t.equal(allows[0]!.Action, 's3:GetObject', `${where}: read only`);
    t.ok(allows[0]!.Condition.StringEquals['AWS:SourceArn'], `${where}: only this distribution`);
    t.ok(
      (doc.Statement as Json[]).some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'),
      `${where}: TLS only`,
    );
  }
});

t.test('IAM: exactly the S3 calls the code makes, under the prefix', async (t) => {
  // The S3 commands the store sends, as IAM actions.
  const store = readFileSync(join(ROOT, 'common/storage/s3-store.ts'), 'utf8');
  const iamOf: Record<string, string> = {
    PutObject: 's3:PutObject',
    GetObject: 's3:GetObject',
    DeleteObject: 's3:DeleteObject',
    DeleteObjects: 's3:DeleteObject',
    ListObjectsV2: 's3:ListBucket',
  };
  const commands = [...new Set([...store.matchAll(/new (\w+)Command\(/g)].map((m) => m[1]!))];
  // PUTs go through the signed client (s3-put-client.ts): a PutObject, as IAM sees it.
  const putClient = readFileSync(join(ROOT, 'common/storage/s3-put-client.ts'), 'utf8');
  if (/method: 'PUT'/.test(putClient) && /this\.putClient\.put\(/.test(store)) commands.push('PutObject');
  for (const c of commands) t.ok(iamOf[c], `${c} maps to an IAM action`);
  const needed = { ingest: new Set(commands.map((c) => iamOf[c]!)), controller: new Set(['s3:DeleteObject', 's3:ListBucket']) };
  const actions = (doc: Json) => new Set((doc.Statement as Json[]).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]) as string[]));
  for (const [component, resource, file] of [
    ['ingest', 'IngestPolicy', 'iam-ingest-policy.json'],
    ['controller', 'ControllerPolicy', 'iam-controller-policy.json'],
  ] as const) {
    const cfnDoc = resources[resource]!.Properties.PolicyDocument as Json;
    const cliDoc = json(file);
    t.same([...actions(cfnDoc)].sort(), [...needed[component]].sort(), `${component}: template grants exactly what it calls`);
    t.same([...actions(cliDoc)].sort(), [...needed[component]].sort(), `${component}: ${file} too`);
    for (const s of [...cfnDoc.Statement, ...cliDoc.Statement] as Json[]) {
      t.equal(s.Effect, 'Allow');
      t.notOk(JSON.stringify(s.Action).includes('*'), `${component}: no wildcard actions`);
      if (s.Action === 's3:ListBucket') t.ok(s.Condition?.StringLike?.['s3:prefix'], `${component}: listing limited to the prefix`);
    }
    // Viewers read through CloudFront; the ingest reads back only its own stored playlists.
    if (component === 'controller') t.notOk(actions(cfnDoc).has('s3:GetObject'), `${component}: no reads`);
  }
  t.same(resources.IngestRole!.Properties.ManagedPolicyArns, [{ Ref: 'IngestPolicy' }]);
  t.equal(resources.IngestPodIdentity!.Condition, 'UsePodIdentity', 'roles only when an EKS cluster is named');
});

t.test('the outputs are the chart values', async (t) => {
  const outputs = template.Outputs as Record<string, { Value: unknown }>;
  t.same(outputs.PlaybackBaseUrl?.Value, { 'Fn::Sub': 'https://${Distribution.DomainName}' }, 'cdn.baseUrl');
  t.same(outputs.BucketName?.Value, { Ref: 'MediaBucket' }, 's3.bucket');
  t.same(outputs.BucketRegion?.Value, { Ref: 'AWS::Region' }, 's3.region');
});

t.test('private streams: the playback-token function, its KeyValueStore, on every cache behavior', async (t) => {
  const source = readFileSync(join(AWS, 'playback-token-function.js'), 'utf8');
  const fn = resources.PlaybackTokenFunction!.Properties;
  t.equal(resources.PlaybackTokenFunction!.Type, 'AWS::CloudFront::Function');
  t.equal(fn.FunctionCode, source, 'the template carries playback-token-function.js verbatim (the code the tests run)');
  t.ok(Buffer.byteLength(source) < 10_240, `within CloudFront Functions' 10 KB code limit (${Buffer.byteLength(source)} bytes)`);
  t.equal(fn.AutoPublish, true, 'published, so the association uses this code');
  t.equal(fn.FunctionConfig.Runtime, 'cloudfront-js-2.0', 'the runtime with KeyValueStore and crypto HMAC');
  t.same(fn.FunctionConfig.KeyValueStoreAssociations, [{ KeyValueStoreARN: { 'Fn::GetAtt': ['PlaybackTokenKeys', 'Arn'] } }]);
  t.equal(resources.PlaybackTokenKeys!.Type, 'AWS::CloudFront::KeyValueStore');
  t.notOk(resources.PlaybackTokenKeys!.Properties.ImportSource, 'no secret in the template: the store is filled with put-key');
  for (const [gateway, count] of [
    [false, 4],
    [true, 5],
  ] as const) {
    const all = behaviors(gateway);
    t.equal(all.length, count, gateway ? 'with the gateway: parts too' : 'the bucket alone');
    for (const b of all as Array<{ PathPattern: string; FunctionAssociations?: Json[] }>) {
      t.same(
        b.FunctionAssociations,
        [{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['PlaybackTokenFunction', 'FunctionMetadata', 'FunctionARN'] } }],
        `${b.PathPattern}: the function runs before the cache lookup`,
      );
    }
  }
  // Nothing per viewer in the cache key: the token is in the path (removed by the function), never a query string.
  t.equal(cacheConfig('SegmentCachePolicy').ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig.QueryStringBehavior, 'none');
  t.notOk(
    blockingParameters(cacheConfig('PlaylistCachePolicy')).some((q) => /token|_t/i.test(q)),
    'playlists: only the blocking parameters',
  );
  // The same for the AWS CLI.
  const cliConfig = json('cloudfront-function-config.json');
  t.equal(cliConfig.Runtime, fn.FunctionConfig.Runtime);
  t.equal(cliConfig.KeyValueStoreAssociations.Quantity, 1);
  const cliAssoc = json('cloudfront-function-associations.json');
  t.same(
    cliAssoc.Items.map((i: Json) => i.EventType),
    ['viewer-request'],
  );
  const outputs = template.Outputs as Record<string, { Value: unknown }>;
  t.same(outputs.PlaybackTokenKeysArn?.Value, { 'Fn::GetAtt': ['PlaybackTokenKeys', 'Arn'] }, "the store's ARN for put-key");
  // The function reads the secrets under the names README tells operators to use.
  t.match(source, /kvs\.get\('token-key-' \+ kid\)/);
});

t.test('LL-HLS: the gateway as a second origin, only when GatewayOriginDomain is set', async (t) => {
  const without = distribution(false);
  t.same(
    without.Origins.map((o: Json) => o.Id),
    ['media'],
    'without it: the bucket alone',
  );
  t.notOk(without.OriginGroups, 'and no origin groups');
  t.ok(
    behaviors(false).every((b) => b.TargetOriginId === 'media'),
    'every behavior to the bucket',
  );

  const config = distribution(true);
  const gateway = config.Origins.find((o: Json) => o.Id === 'gateway') as Json;
  t.same(gateway.DomainName, { Ref: 'GatewayOriginDomain' });
  t.equal(gateway.OriginPath, '/origin', "the gateway's LL origin route");
  t.match(readFileSync(join(ROOT, 'gateway/gateway.ts'), 'utf8'), /register\(lowLatency, \{\s*prefix: '\/origin'/, 'which the gateway serves there');
  t.equal(gateway.CustomOriginConfig.OriginProtocolPolicy, 'https-only');
  const readTimeout = gateway.CustomOriginConfig.OriginReadTimeout as number;
  t.ok(readTimeout >= 3 * segmentSeconds.maximum, `origin read timeout ${readTimeout} s ≥ 3 × the longest target duration (a blocking request's limit)`);
  const upstreamMs = loadGatewayConfig({ TTEOK_STORAGE: 'local' }).lowLatency.upstreamTimeoutMs;
  t.ok(upstreamMs < readTimeout * 1000, 'the gateway answers (504) before CloudFront gives up: its upstream timeout is shorter');
  t.ok(readTimeout <= 60, "within CloudFront's default quota");
  t.same(
    gateway.OriginCustomHeaders,
    [{ HeaderName: ORIGIN_SECRET_HEADER, HeaderValue: { Ref: 'OriginSecret' } }],
    'the origin secret in the header the gateway checks',
  );
  const secret = template.Parameters.OriginSecret as Json;
  t.equal(secret.NoEcho, true, 'the secret is not echoed');
  t.match(secret.AllowedPattern, `{${ORIGIN_SECRET_MIN_LENGTH},`, "at least the gateway's minimum length");

  const groups = Object.fromEntries(
    (config.OriginGroups.Items as Json[]).map((g) => [
      g.Id,
      {
        members: g.Members.Items.map((m: Json) => m.OriginId),
        failover: g.FailoverCriteria.StatusCodes.Items,
        counts: [g.Members.Quantity, g.FailoverCriteria.StatusCodes.Quantity],
      },
    ]),
  );
  t.equal(config.OriginGroups.Quantity, 2);
  t.same(
    groups.playlists,
    { members: ['gateway', 'media'], failover: [404, 500, 502, 503, 504], counts: [2, 5] },
    'playlists: the gateway, then the plain playlist in the bucket',
  );
  t.same(groups.segments, { members: ['media', 'gateway'], failover: [403, 404], counts: [2, 2] }, 'segments: the bucket, then the ingest (not stored yet)');

  const all = behaviors(true);
  const target = (pattern: string) => all.find((b) => b.PathPattern === pattern)?.TargetOriginId;
  t.equal(target('*.m3u8'), 'playlists');
  t.equal(target(`*${PART_FILE_SUFFIX}`), 'gateway', 'parts: the gateway alone (never in the bucket)');
  t.equal(target('*.m4s'), 'segments');
  t.equal(target('*.mp4'), 'segments');
  t.equal(target('(default)'), 'media');
  const order = all.map((b) => b.PathPattern);
  t.ok(order.indexOf(`*${PART_FILE_SUFFIX}`) < order.indexOf('*.m4s'), 'parts before *.m4s: the first matching pattern wins');
  t.same(all.find((b) => b.PathPattern === `*${PART_FILE_SUFFIX}`)?.CachePolicyId, { Ref: 'SegmentCachePolicy' }, 'a part never changes');
});
