// What the in-process tests of the ingest's middle rooms share: a real media
// volume (a temporary directory), a real object store (the local directory
// store, as `make run` uses) behind the real uploader, and real H.264/AAC
// encoder output (Debian's ffmpeg, once per test file) to feed a publish
// session. No servers, no sockets: these run in seconds.
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../common/log.ts';
import { DEFAULT_SETTINGS, type StreamRef, type StreamSettings } from '../../common/livestream.ts';
import { parseMediaPlaylist, type ParsedMediaPlaylist } from '../../common/media-playlist.ts';
import { MEDIA_TMP_DIR } from '../../common/atomic-file.ts';
import { LocalDirectoryStore } from '../../common/storage/local-store.ts';
import type { ObjectStore } from '../../common/storage/object-store.ts';
import { IngestMetrics } from '../../ingest/metrics.ts';
import type { PublishMedia } from '../../ingest/stream-hub.ts';
import type { RunContext } from '../../ingest/stream-run.ts';
import { DEFAULT_PUBLISH_LIMITS } from '../../ingest/packager/publish-limits.ts';
import type { StreamEnd } from '../../ingest/run-storage.ts';
import { Uploader } from '../../ingest/upload/uploader.ts';
import { readFlvTags, type FlvTag } from '../../harness/flv-file.ts';
import { waitFor } from '../../harness/wait.ts';
import { encodeFlv, tempDir } from '../fixtures/media.ts';

/** These tests feed recorded media as fast as they can, not at its real pace: the wall-clock pacing rule is lifted (test/ingest/packager/publish-limits.test.ts checks it). */
export const FAST_FEED_LIMITS = { ...DEFAULT_PUBLISH_LIMITS, maxAheadSegments: 10_000 };

export const REF: StreamRef = { namespace: 'default', name: 'room' };
export const log = createLogger('run-test', 'error');

export interface Rig {
  mediaDir: string;
  originDir: string;
  store: ObjectStore;
  uploader: Uploader;
  metrics: IngestMetrics;
  ended: StreamEnd[];
  ctx: RunContext;
}

/** A media volume, an origin directory and the uploader between them. `store` may wrap the local store (a failing one). */
export async function rig(
  t: { teardown(fn: () => void | Promise<void>): void },
  wrap: (store: ObjectStore) => ObjectStore = (s) => s,
  options: { memoryBytes?: number; reconnectGraceMs?: number; deleteDelayMs?: number } = {},
): Promise<Rig> {
  const root = tempDir(t, 'tteok-run-');
  const mediaDir = join(root, 'media');
  const originDir = join(root, 'origin');
  await mkdir(join(mediaDir, MEDIA_TMP_DIR), { recursive: true });
  const store = wrap(new LocalDirectoryStore(originDir));
  const metrics = new IngestMetrics();
  const uploader = new Uploader({
    mediaDir,
    store,
    prefix: '',
    playlistMaxAgeSeconds: undefined,
    concurrency: 4,
    backlogWarnSegments: 30,
    memoryBytes: options.memoryBytes ?? 64 * 1024 * 1024,
    deleteDelayMs: options.deleteDelayMs ?? 60_000,
    settleTimeoutMs: 10_000,
    metrics,
    log,
  });
  await uploader.start();
  // The ingest's timers (reconnect grace, retries) are unref'd: its servers keep a real process alive, this keeps the test's.
  const alive = setInterval(() => undefined, 1000);
  t.teardown(() => {
    clearInterval(alive);
    return uploader.close();
  });
  const ended: StreamEnd[] = [];
  const storage = {
    objectFinished: uploader.objectFinished.bind(uploader),
    runEnded: (end: StreamEnd) => {
      ended.push(end);
      uploader.runEnded(end);
    },
    settled: uploader.settled.bind(uploader),
    readStored: uploader.readStored.bind(uploader),
  };
  const ctx: RunContext = { mediaDir, reconnectGraceMs: options.reconnectGraceMs ?? 60_000, storage, publishLimits: FAST_FEED_LIMITS, metrics, log };
  return { mediaDir, originDir, store, uploader, metrics, ended, ctx };
}

let clip: Promise<FlvTag[]> | undefined;
/** Four seconds of 1 s GOPs of H.264 + AAC, encoded once per process. */
export function clipTags(t: { teardown(fn: () => void): void }): Promise<FlvTag[]> {
  clip ??= (async () => readFlvTags(await encodeFlv(tempDir(t, 'tteok-clip-'), 'clip.flv', { seconds: 4 })))();
  return clip;
}

/** Feeds FLV tags into a publish session as the RTMP layer does; `offsetMs` shifts their timestamps. */
export function publish(session: PublishMedia, tags: FlvTag[], offsetMs = 0): void {
  for (const tag of tags) {
    if (tag.type === 9) session.video(tag.timestampMs + offsetMs, tag.body, Date.now());
    else if (tag.type === 8) session.audio(tag.timestampMs + offsetMs, tag.body);
  }
}

export async function storedPlaylist(r: Rig, ref: StreamRef = REF): Promise<ParsedMediaPlaylist | undefined> {
  const text = await readFile(join(r.originDir, ref.namespace, ref.name, 'index.m3u8'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseMediaPlaylist(text);
}

/** Waits until the stored playlist lists at least `count` segments (the muxer hands segments over asynchronously). */
export async function untilStored(r: Rig, count: number, ref: StreamRef = REF): Promise<ParsedMediaPlaylist> {
  return waitFor(
    `${count} segments stored`,
    async () => {
      const list = await storedPlaylist(r, ref);
      return list && list.uris.length >= count ? list : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 20 },
  );
}

export async function storedText(r: Rig, file: string, ref: StreamRef = REF): Promise<string | undefined> {
  return readFile(join(r.originDir, ref.namespace, ref.name, file), 'utf8').catch(() => undefined);
}

export async function volumeFiles(r: Rig, ref: StreamRef = REF): Promise<string[]> {
  return (await readdir(join(r.mediaDir, ref.namespace, ref.name), { recursive: true }).catch(() => [] as string[])).sort();
}

export function settings(overrides: Partial<StreamSettings> = {}): StreamSettings {
  return { ...DEFAULT_SETTINGS, ...overrides };
}
