// The ingest's LowLatencySource (common/low-latency.ts): LL-HLS playlists,
// parts, recent segments and init segments of the streams live on this
// ingest, from the packagers' memory (ll-stream.ts), with blocking playlist
// reloads bounded by the RFC's limits. A stream not live here is a 404, so
// whoever asks falls back to the object store's copy.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type LowLatencyRequest, type LowLatencyResponse, type LowLatencySource, PART_FILE_SUFFIX } from '../../common/low-latency.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { contentTypeFor, playlistCacheControl, SEGMENT_CACHE_CONTROL } from '../../common/object-layout.ts';
import { STREAM_FILE_PATTERN } from '../../common/playback-token.ts';
import { type LowLatencyStream, MAX_WAITERS_PER_STREAM } from './ll-stream.ts';

/**
 * A blocking reload's answer (its URL names the part it waited for): a CDN
 * holds it for a second, collapsing every edge's viewers onto one request. A
 * plain reload (a player's first load, a player without LL) keeps the stored
 * playlists' rule, half a target duration, so no cache holds the live edge back.
 */
export const LL_PLAYLIST_CACHE_CONTROL = 'public, max-age=1';
const ERROR_CACHE_CONTROL = 'no-store';

const FILE = new RegExp(`^${STREAM_FILE_PATTERN}$`);
/** `<session>/[<rendition>/]<msn>.<k>.part.m4s` (renditions have no parts yet). */
const PART = /^([A-Za-z0-9][A-Za-z0-9_-]{0,127})\/(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,5})\.part\.m4s$/;

export class LowLatencyRegistry implements LowLatencySource {
  private readonly streams = new Map<string, LowLatencyStream>();

  constructor(
    /** Part duration in seconds; 0: LL-HLS off (every request is a 404). */
    readonly partSeconds: number,
    /** The media volume: recent segments and init segments not in memory are read from it. */
    private readonly mediaDir: string,
  ) {}

  /** Requests waiting, across streams. */
  get waiting(): number {
    let n = 0;
    for (const stream of this.streams.values()) n += stream.waiting;
    return n;
  }

  /** A run's LL state, registered while the run is live here (a newer run of the stream replaces it). */
  attach(ref: StreamRef, stream: LowLatencyStream): void {
    this.streams.get(streamId(ref))?.end();
    this.streams.set(streamId(ref), stream);
  }

  detach(ref: StreamRef, stream: LowLatencyStream): void {
    stream.end();
    if (this.streams.get(streamId(ref)) === stream) this.streams.delete(streamId(ref));
  }

  async serve(request: LowLatencyRequest, signal: AbortSignal): Promise<LowLatencyResponse> {
    const stream = this.streams.get(streamId(request.ref));
    if (!stream || stream.isEnded || this.partSeconds <= 0) return error(404, 'the stream is not live on this ingest');
    const { file } = request;
    if (!FILE.test(file)) return error(404, 'no such file');
    if (file === stream.playlistFile()) return this.playlist(stream, request, signal);
    if (file.endsWith('.m3u8')) {
      const body = stream.storedPlaylists.get(file);
      return body ? ok(body, contentTypeFor(file), plainReloadCacheControl(stream)) : error(404, 'no such playlist');
    }
    if (file.endsWith(PART_FILE_SUFFIX)) return this.part(stream, file, signal);
    const held = stream.findFile(file);
    if (held) return ok(held, contentTypeFor(file), SEGMENT_CACHE_CONTROL);
    // Listed, written, not yet deleted after upload: the volume has it (else the object store does).
    const data = await readFile(join(this.mediaDir, request.ref.namespace, request.ref.name, file)).catch(() => undefined);
    return data ? ok(data, contentTypeFor(file), SEGMENT_CACHE_CONTROL) : error(404, 'no such file here');
  }

  private async playlist(stream: LowLatencyStream, request: LowLatencyRequest, signal: AbortSignal): Promise<LowLatencyResponse> {
    const { msn, part } = request.blocking;
    if (msn !== undefined) {
      const far = stream.tooFar(request.blocking);
      if (far) return error(400, far);
    }
    // Until the run's first segment is listed its target duration is not known
    // (a 2 s keyframe interval under a 1 s segment target shows 1, then 2), and a
    // live playlist must not change it: the first answer waits for that segment.
    const first = stream.playlist.segments.length === 0 ? stream.position().openMsn : undefined;
    const blocked = (msn !== undefined && !stream.reached(msn, part)) || (first !== undefined && !stream.reached(first, undefined));
    if (blocked) {
      if (stream.waiting >= MAX_WAITERS_PER_STREAM) return error(503, 'too many blocked playlist requests on this stream');
      const outcome = await this.bounded(stream, signal, async (s) => {
        const reached = msn !== undefined ? await stream.waitFor(msn, part, s) : 'ready';
        return reached === 'ready' && first !== undefined ? stream.waitFor(first, undefined, s) : reached;
      });
      if (outcome === 'timeout') {
        const what = msn !== undefined ? `segment ${msn}${part !== undefined ? ` part ${part}` : ''}` : 'its first segment';
        return error(503, `the playlist did not reach ${what} in time`);
      }
      if (outcome !== 'ready') return error(404, 'the stream is not live on this ingest');
    }
    return ok(Buffer.from(stream.render()), contentTypeFor('index.m3u8'), msn !== undefined ? LL_PLAYLIST_CACHE_CONTROL : plainReloadCacheControl(stream));
  }

  private async part(stream: LowLatencyStream, file: string, signal: AbortSignal): Promise<LowLatencyResponse> {
    const match = PART.exec(file);
    if (!match) return error(404, 'no such part');
    const [, session, msnText, indexText] = match;
    const msn = Number(msnText);
    const index = Number(indexText);
    let found = stream.findPart(session!, msn, index);
    if (found === 'future') {
      if (stream.waiting >= MAX_WAITERS_PER_STREAM) return error(503, 'too many blocked part requests on this stream');
      const outcome = await this.bounded(stream, signal, (s) => stream.waitForPart(session!, msn, index, s));
      if (outcome === 'timeout') return error(503, 'the part did not come in time');
      found = outcome;
    }
    if (!found) return error(404, 'no such part here');
    return ok(found.data, contentTypeFor(file), SEGMENT_CACHE_CONTROL);
  }

  /** Runs a wait for at most three target durations (the RFC's bound), ended early by the client going away. */
  private async bounded<T>(stream: LowLatencyStream, signal: AbortSignal, wait: (signal: AbortSignal) => Promise<T>): Promise<T | 'timeout'> {
    const limit = new AbortController();
    const onAbort = () => limit.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        limit.abort();
      },
      3 * stream.playlist.targetDuration * 1000,
    );
    try {
      const outcome = await wait(limit.signal);
      return timedOut ? 'timeout' : outcome;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

function plainReloadCacheControl(stream: LowLatencyStream): string {
  return playlistCacheControl(stream.playlist.targetDuration / 2);
}

function ok(body: Uint8Array, contentType: string, cacheControl: string): LowLatencyResponse {
  return { status: 200, contentType, cacheControl, body };
}

function error(status: number, message: string): LowLatencyResponse {
  return { status, contentType: 'application/json', cacheControl: ERROR_CACHE_CONTROL, body: Buffer.from(JSON.stringify({ error: message })) };
}
