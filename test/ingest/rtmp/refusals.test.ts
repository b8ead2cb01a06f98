// Every refusal reaches the publisher as an RTMP onStatus error with a
// sentence it can show, before the connection closes: ffmpeg (as OBS would)
// prints the description it received, and it is the one the ingest logged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startIngestProcess, writeKeyFile, type IngestProcess } from '../../../harness/ingest-process.ts';
import { spawnManaged, stopAll, type ManagedProcess } from '../../../harness/process.ts';
import { publishTestPattern } from '../../../harness/publisher.ts';
import { waitFor } from '../../../harness/wait.ts';

const streams = {
  open: { name: 'open', key: 'refusals_open_key_aaaaaaaa1' },
  disabled: { name: 'disabled', key: 'refusals_disabled_key_aaa2', spec: { enabled: false } },
  busy: { name: 'busy', key: 'refusals_busy_key_aaaaaaaa3' },
  codec: { name: 'codec', key: 'refusals_codec_key_aaaaaaa4' },
  shutdown: { name: 'shutdown', key: 'refusals_shutdown_key_aaa5' },
  revoked: { name: 'revoked', key: 'refusals_revoked_key_aaaa6' } as { name: string; key: string; spec?: Record<string, unknown> },
};
const dir = mkdtempSync(join(tmpdir(), 'tteok-rtmp-refusals-'));
const keysFile = join(dir, 'keys.yaml');
writeKeyFile(keysFile, Object.values(streams));
const env = {
  TTEOK_STORAGE: 'local',
  TTEOK_LOCAL_ORIGIN_DIR: join(dir, 'origin'),
  TTEOK_KEYS_FILE: keysFile,
  TTEOK_MEDIA_DIR: join(dir, 'media'),
  TTEOK_LOG_LEVEL: 'info',
};
const ingest = await startIngestProcess(env);

t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The description the ingest logged for its refusal with this reason. */
function loggedDescription(from: IngestProcess, reason: string): string | undefined {
  for (const line of from.proc.lines) {
    if (!line.includes(`"reason":"${reason}"`)) continue;
    const msg = (JSON.parse(line) as { msg?: string }).msg ?? '';
    const match = /^publish (?:refused|ended): (.*)$/.exec(msg);
    if (match) return match[1];
  }
  return undefined;
}

async function refusedWith(t: Test, from: IngestProcess, publisher: ManagedProcess, reason: string, human: RegExp): Promise<void> {
  const exit = await publisher.exited;
  const output = publisher.lines.join('\n');
  t.not(exit.code, 0, 'ffmpeg fails');
  // The ingest's log line may reach us after ffmpeg has exited.
  const description = await waitFor(`the ingest's ${reason} log line`, () => loggedDescription(from, reason), { timeoutMs: 5000 }).catch(() => undefined);
  t.ok(description, `the ingest logged the ${reason} refusal`);
  t.match(description, human, `it says what happened: "${description}"`);
  t.ok(description && output.includes(`Server error: ${description}`), `ffmpeg printed the description it received:\n${output}`);
}

t.test('unknown key', async (t) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl('no_such_key_zzzzzzzzzzzzzz'), seconds: 3, name: 'ffmpeg-unknown' });
  await refusedWith(t, ingest, publisher, 'unknown_key', /unknown stream key/i);
});

t.test('stream disabled', async (t) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(streams.disabled.key), seconds: 3, name: 'ffmpeg-disabled' });
  await refusedWith(t, ingest, publisher, 'disabled', /disabled/i);
});

t.test('already live', async (t) => {
  const first = publishTestPattern({ url: ingest.rtmpUrl(streams.busy.key), name: 'ffmpeg-busy-first' });
  await ingest.proc.waitForLine(/"stream":"default\/busy".*publish accepted/);
  const second = publishTestPattern({ url: ingest.rtmpUrl(streams.busy.key), seconds: 3, name: 'ffmpeg-busy-second' });
  await refusedWith(t, ingest, second, 'already_live', /already has a publisher/i);
  await first.stop('SIGINT');
});

t.test('codec not supported, and what to set instead', async (t) => {
  // Sorenson H.263 (FLV's own codec): what an encoder left on a wrong setting sends.
  const publisher = spawnManaged('ffmpeg-h263', 'ffmpeg', [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'warning',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=320x240:rate=25',
    '-t',
    '5',
    '-c:v',
    'flv',
    '-an',
    '-f',
    'flv',
    ingest.rtmpUrl(streams.codec.key),
  ]);
  await refusedWith(t, ingest, publisher, 'unsupported_codec', /not supported.*H\.264/i);
});

t.test('RTMP playback', async (t) => {
  const player = spawnManaged('ffmpeg-play', 'ffmpeg', [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'warning',
    '-rw_timeout',
    '5000000',
    '-i',
    ingest.rtmpUrl(streams.open.key),
    '-t',
    '1',
    '-f',
    'null',
    '-',
  ]);
  await refusedWith(t, ingest, player, 'play_refused', /HLS/);
});

t.test('the stream disabled while live', async (t) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(streams.revoked.key), name: 'ffmpeg-revoked' });
  await ingest.proc.waitForLine(/"stream":"default\/revoked".*publish accepted/);
  writeKeyFile(keysFile, Object.values({ ...streams, revoked: { ...streams.revoked, spec: { enabled: false } } }));
  await refusedWith(t, ingest, publisher, 'ended_by_ingest', /disabled/);
});

t.test('shutting down, while live', async (t) => {
  const publisher = publishTestPattern({ url: ingest.rtmpUrl(streams.shutdown.key), name: 'ffmpeg-shutdown' });
  await ingest.proc.waitForLine(/"stream":"default\/shutdown".*publish accepted/);
  await ingest.proc.stop('SIGTERM');
  await refusedWith(t, ingest, publisher, 'shutting_down', /shutting down/i);
});
