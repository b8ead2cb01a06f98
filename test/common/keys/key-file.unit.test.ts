// The local key file (LiveStream YAML with streamKey) and the LiveStream
// spec defaults: good files load, each mistake is refused naming the field to
// fix, and no refusal ever prints a stream key (keys are secrets that end up
// in logs otherwise).
import t, { type Test } from 'tap';
import { parseKeyFile } from '../../../common/keys/file-key-source.ts';
import { DEFAULT_SETTINGS, settingsFromSpec } from '../../../common/livestream.ts';

const KEY_A = 'sk_live_A1b2C3d4E5f6G7h8';
const KEY_B = 'sk-live-Z9y8X7w6V5u4T3s2R1';
const KEY_C = 'cccccccccccccccccccccccccccccccc';
const ALL_KEYS = [KEY_A, KEY_B, KEY_C];

function doc(fields: { name?: string; namespace?: string; key?: string; spec?: string; apiVersion?: string; kind?: string }): string {
  const lines = [
    `apiVersion: ${fields.apiVersion ?? 'tteok.dev/v1alpha1'}`,
    `kind: ${fields.kind ?? 'LiveStream'}`,
    'metadata:',
    `  name: ${fields.name ?? 'main'}`,
  ];
  if (fields.namespace) lines.push(`  namespace: ${fields.namespace}`);
  if (fields.key !== undefined) lines.push(`streamKey: ${fields.key}`);
  if (fields.spec) lines.push('spec:', ...fields.spec.split('\n').map((l) => `  ${l}`));
  return lines.join('\n') + '\n';
}

/** Parses `text`, which must be refused: returns the message. */
function refusal(t: Test, text: string): string {
  let message = '';
  try {
    parseKeyFile(text);
    t.fail('the file was accepted');
  } catch (error) {
    t.ok(error instanceof Error, 'refused with an Error');
    message = (error as Error).message;
  }
  for (const key of ALL_KEYS) {
    t.notOk(message.includes(key), 'the message does not contain a stream key');
    // Nor a recognisable part of one.
    t.notOk(message.includes(key.slice(4, 16)), 'nor a piece of one');
  }
  return message;
}

t.test('a valid multi-document file', async (t) => {
  const text = [
    '# stream keys for this machine',
    doc({ name: 'main', key: KEY_A }),
    '---',
    doc({
      name: 'talks.room-1',
      namespace: 'events',
      key: KEY_B,
      spec: 'title: Room 1\nhls:\n  segmentSeconds: 2\n  playlistLength: 10\nretention:\n  keepAfterEnd: true',
    }),
    '---',
    '# a document with only a comment is skipped',
    '---',
    doc({ name: 'off', key: KEY_C, spec: 'enabled: false' }),
  ].join('\n');
  const grants = parseKeyFile(text);
  t.equal(grants.size, 3);
  t.same(grants.get(KEY_A), { ref: { namespace: 'default', name: 'main' }, settings: DEFAULT_SETTINGS }, 'defaults filled in, namespace default');
  t.same(grants.get(KEY_B), {
    ref: { namespace: 'events', name: 'talks.room-1' },
    settings: { ...DEFAULT_SETTINGS, title: 'Room 1', segmentSeconds: 2, playlistLength: 10, keepAfterEnd: true },
  });
  t.same(grants.get(KEY_C)?.settings.enabled, false, 'a disabled stream is still known');
  t.equal(parseKeyFile('').size, 0, 'an empty file grants nothing');
  t.equal(parseKeyFile('# nothing yet\n').size, 0);
});

t.test('each mistake is refused with a message naming the field', async (t) => {
  const good = doc({ name: 'good', key: KEY_A });
  const cases: Array<{ what: string; text: string; field: RegExp }> = [
    { what: 'wrong apiVersion', text: doc({ key: KEY_B, apiVersion: 'tteok.dev/v1' }), field: /apiVersion/ },
    { what: 'wrong kind', text: doc({ key: KEY_B, kind: 'Stream' }), field: /kind/ },
    { what: 'uppercase name', text: doc({ name: 'Main', key: KEY_B }), field: /metadata\.name/ },
    { what: 'name with underscore', text: doc({ name: 'my_stream', key: KEY_B }), field: /metadata\.name/ },
    { what: 'missing name', text: doc({ name: '""', key: KEY_B }), field: /metadata\.name/ },
    { what: 'bad namespace', text: doc({ namespace: 'a.b', key: KEY_B }), field: /metadata\.namespace/ },
    { what: 'streamKey too short', text: doc({ key: 'short-key-123' }), field: /streamKey/ },
    { what: 'streamKey with a space', text: doc({ key: '"sk live A1b2C3d4E5f6G7h8"' }), field: /streamKey/ },
    { what: 'streamKey with a slash', text: doc({ key: 'sk/live/A1b2C3d4E5f6G7h8' }), field: /streamKey/ },
    { what: 'streamKey too long', text: doc({ key: 'k'.repeat(129) }), field: /streamKey/ },
    { what: 'streamKey not a string', text: doc({ key: '12345678901234567890' }), field: /streamKey/ },
    { what: 'streamKey missing', text: doc({}), field: /streamKey/ },
    { what: 'segmentSeconds 0', text: doc({ key: KEY_B, spec: 'hls:\n  segmentSeconds: 0' }), field: /spec\.hls\.segmentSeconds/ },
    { what: 'segmentSeconds 11', text: doc({ key: KEY_B, spec: 'hls:\n  segmentSeconds: 11' }), field: /spec\.hls\.segmentSeconds/ },
    { what: 'segmentSeconds 1.5', text: doc({ key: KEY_B, spec: 'hls:\n  segmentSeconds: 1.5' }), field: /spec\.hls\.segmentSeconds/ },
    { what: 'playlistLength 2', text: doc({ key: KEY_B, spec: 'hls:\n  playlistLength: 2' }), field: /spec\.hls\.playlistLength/ },
    { what: 'playlistLength 61', text: doc({ key: KEY_B, spec: 'hls:\n  playlistLength: 61' }), field: /spec\.hls\.playlistLength/ },
    { what: 'enabled not a bool', text: doc({ key: KEY_B, spec: 'enabled: "no"' }), field: /spec\.enabled/ },
  ];
  for (const c of cases) {
    t.test(c.what, async (t) => {
      const message = refusal(t, `${good}---\n${c.text}---\n${doc({ name: 'also-good', key: KEY_C })}`);
      t.match(message, c.field, 'names the field');
      t.match(message, /document 2/, 'names the document');
      t.notMatch(message, /document [13]/, 'blames only the bad document');
    });
  }
});

t.test('a duplicate streamKey or LiveStream is refused', async (t) => {
  const dupKey = refusal(t, `${doc({ name: 'one', key: KEY_A })}---\n${doc({ name: 'two', key: KEY_A })}`);
  t.match(dupKey, /document 2/);
  t.match(dupKey, /streamKey/, 'names the field');
  t.match(dupKey, /already used/);
  const dupStream = refusal(t, `${doc({ name: 'one', key: KEY_A })}---\n${doc({ name: 'one', key: KEY_B })}`);
  t.match(dupStream, /default\/one/);
  t.match(dupStream, /listed twice/);
  // The same name in two namespaces is two LiveStreams.
  t.equal(parseKeyFile(`${doc({ name: 'one', key: KEY_A })}---\n${doc({ name: 'one', namespace: 'other', key: KEY_B })}`).size, 2);
});

t.test('every problem is reported at once', async (t) => {
  const message = refusal(
    t,
    `${doc({ name: 'Bad', key: KEY_A })}---\n${doc({ name: 'ok', key: KEY_B, spec: 'hls:\n  segmentSeconds: 0\n  playlistLength: 100' })}`,
  );
  t.match(message, /document 1.*metadata\.name/);
  t.match(message, /document 2.*segmentSeconds/);
  t.match(message, /document 2.*playlistLength/);
});

t.test('YAML syntax errors never echo the file', async (t) => {
  const head = 'apiVersion: tteok.dev/v1alpha1\nkind: LiveStream\nmetadata:\n  name: main\n';
  const cases: Record<string, string> = {
    'tab indentation': `apiVersion: tteok.dev/v1alpha1\nkind: LiveStream\nmetadata:\n\tname: main\nstreamKey: ${KEY_A}\n`,
    'misaligned key': `${head} streamKey: ${KEY_A}\n`,
    'duplicate field': `${head}streamKey: ${KEY_A}\nstreamKey: ${KEY_B}\n`,
    'unclosed double quote': `${head}streamKey: "${KEY_A}\n`,
    'unclosed single quote': `${head}streamKey: '${KEY_A}\n`,
    'unclosed flow map': `${head}spec: {title: x\nstreamKey: ${KEY_A}\n`,
    'nested compact mapping': `${head}streamKey: ${KEY_A}: ${KEY_B}\n`,
    'key pasted on its own line': `${head}${KEY_A}\nstreamKey: ${KEY_A}\n`,
    'text after a quoted key': `${head}streamKey: "${KEY_A}" ${KEY_B}\n`,
    'bad escape in a quoted key': `${head}streamKey: "${KEY_A}\\q"\n`,
    // A key pasted with a leading '*' becomes a YAML alias to an anchor that does not exist.
    'alias to an undefined anchor': `${head}streamKey: *${KEY_A}\n`,
  };
  for (const [what, text] of Object.entries(cases)) {
    t.test(what, async (t) => {
      const message = refusal(t, `${doc({ name: 'first', key: KEY_C })}---\n${text}`);
      t.match(message, /^invalid key file: /, 'reported as an invalid key file');
      t.match(message, /document 2/, 'names the document');
    });
  }
});

t.test('settingsFromSpec: defaults, bounds, and types', async (t) => {
  t.same(settingsFromSpec(undefined), { settings: DEFAULT_SETTINGS, problems: [] });
  t.same(settingsFromSpec({}), { settings: DEFAULT_SETTINGS, problems: [] });
  t.same(DEFAULT_SETTINGS, { title: '', enabled: true, segmentSeconds: 1, playlistLength: 6, keepAfterEnd: false, access: 'public', renditions: [] });
  t.equal(settingsFromSpec({ playback: { access: 'private' } }).settings.access, 'private', 'access private accepted');
  for (const seg of [1, 10]) t.same(settingsFromSpec({ hls: { segmentSeconds: seg } }).settings.segmentSeconds, seg, `segmentSeconds ${seg} accepted`);
  for (const len of [3, 60]) t.same(settingsFromSpec({ hls: { playlistLength: len } }).settings.playlistLength, len, `playlistLength ${len} accepted`);
  const bad = (spec: unknown, field: RegExp) => {
    const { problems, settings } = settingsFromSpec(spec as never);
    t.equal(problems.length, 1, `${JSON.stringify(spec)}: one problem`);
    t.match(problems[0], field, `${JSON.stringify(spec)}: names the field`);
    t.same(settings, DEFAULT_SETTINGS, `${JSON.stringify(spec)}: the bad value is not applied`);
  };
  bad({ hls: { segmentSeconds: 0 } }, /^spec\.hls\.segmentSeconds .*1 to 10/);
  bad({ hls: { segmentSeconds: 11 } }, /^spec\.hls\.segmentSeconds/);
  bad({ hls: { segmentSeconds: '2' } }, /^spec\.hls\.segmentSeconds/);
  bad({ hls: { segmentSeconds: 2.5 } }, /^spec\.hls\.segmentSeconds/);
  bad({ hls: { playlistLength: 2 } }, /^spec\.hls\.playlistLength .*3 to 60/);
  bad({ hls: { playlistLength: 61 } }, /^spec\.hls\.playlistLength/);
  bad({ title: 5 }, /^spec\.title/);
  bad({ enabled: 'yes' }, /^spec\.enabled/);
  bad({ retention: { keepAfterEnd: 1 } }, /^spec\.retention\.keepAfterEnd/);
  bad({ playback: { access: 'secret' } }, /^spec\.playback\.access must be "public" or "private"/);
  bad({ renditions: ['480p', '4k'] }, /^spec\.renditions: "4k" is not a preset; use one of 1080p, 720p, 480p, 360p, 160p, audio$/);
  bad({ renditions: '480p' }, /^spec\.renditions must be a list of preset names/);
  bad({ renditions: ['480p', '480p'] }, /^spec\.renditions names 480p twice$/);
  bad({ renditions: ['1080p', '720p', '480p', '360p', '160p', 'audio'] }, /^spec\.renditions may name at most 5 renditions$/);
  const both = settingsFromSpec({ hls: { segmentSeconds: 0, playlistLength: 0 } });
  t.equal(both.problems.length, 2, 'every problem is listed');
});

t.test('renditions: the spec, else the operator default; [] keeps none', async (t) => {
  const defaults = { renditions: ['480p', '360p'] };
  t.same(settingsFromSpec({ renditions: ['720p', 'audio'] }).settings.renditions, ['720p', 'audio'], 'the spec, in its order');
  t.same(settingsFromSpec({}, defaults).settings.renditions, ['480p', '360p'], 'no spec.renditions: the default');
  t.same(settingsFromSpec(undefined, defaults).settings.renditions, ['480p', '360p'], 'no spec at all: the default');
  t.same(settingsFromSpec({ renditions: [] }, defaults).settings.renditions, [], 'an explicit [] means none, whatever the default');
  t.same(settingsFromSpec({ renditions: ['160p'] }, defaults).settings.renditions, ['160p'], 'the spec wins over the default');
  const bad = settingsFromSpec({ renditions: ['9000p'] }, defaults);
  t.same(bad.settings.renditions, ['480p', '360p'], 'a bad value is not applied');
  t.equal(bad.problems.length, 1);
});

t.test('the key file: renditions read, the default filled in, a bad list refused naming the document', async (t) => {
  const text = [doc({ name: 'ladder', key: KEY_A, spec: 'renditions: [480p, 160p]' }), '---', doc({ name: 'plain', key: KEY_B })].join('\n');
  const grants = parseKeyFile(text, { renditions: ['360p'] });
  t.same(grants.get(KEY_A)?.settings.renditions, ['480p', '160p']);
  t.same(grants.get(KEY_B)?.settings.renditions, ['360p'], 'the default for a stream that names none');
  t.same(parseKeyFile(text).get(KEY_B)?.settings.renditions, [], 'no default: none');
  t.match(
    refusal(t, doc({ name: 'bad', key: KEY_A, spec: 'renditions: [480p, 240p]' })),
    /document 1 \(default\/bad\): spec\.renditions: "240p" is not a preset; use one of 1080p, 720p, 480p, 360p, 160p, audio/,
  );
  t.match(
    refusal(t, doc({ name: 'twice', key: KEY_A, spec: 'renditions: [audio, audio]' })),
    /document 1 \(default\/twice\): spec\.renditions names audio twice/,
  );
});
