// Source segments exactly as the ingest's packager writes them (the real
// StreamRun, media volume and uploader of test/ingest/run-kit.ts, fed with
// real H.264 + AAC encoder output): what the transcoder is handed in
// production, so its tests decode the packager's fMP4, not ffmpeg's own muxer's.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFlvTags } from '../../harness/flv-file.ts';
import { StreamRun } from '../../ingest/stream-run.ts';
import { encodeFlv, tempDir, type ClipOptions } from '../fixtures/media.ts';
import { publish, REF, rig, settings, storedPlaylist } from '../ingest/run-kit.ts';

export interface SourceSegment {
  sequence: number;
  init: Uint8Array;
  data: Uint8Array;
  duration: number;
}

/** Packages a test clip (default 426x240, 1 s GOPs, 4 s) through the ingest's packager and returns its segments with their init segments. */
export async function sourceSegments(t: Parameters<typeof rig>[0] & { teardown(fn: () => void): void }, clip: ClipOptions = {}): Promise<SourceSegment[]> {
  const r = await rig(t);
  const tags = readFlvTags(await encodeFlv(tempDir(t, 'tteok-src-'), 'clip.flv', { seconds: 4, ...clip }));
  const run = StreamRun.begin(r.ctx, { ref: REF, settings: settings() });
  const session = run.beginSession();
  publish(session, tags);
  await run.endSession(session, true);
  await run.settled;
  const list = await storedPlaylist(r);
  if (!list) throw new Error('the packager stored no playlist');
  const folder = join(r.originDir, REF.namespace, REF.name);
  const out: SourceSegment[] = [];
  for (const s of list.segments) {
    out.push({
      sequence: s.sequence,
      init: new Uint8Array(await readFile(join(folder, s.initUri))),
      data: new Uint8Array(await readFile(join(folder, s.uri))),
      duration: s.duration,
    });
  }
  return out;
}
