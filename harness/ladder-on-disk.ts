// An adaptive ladder laid out in a stream's folder exactly as the ingest
// stores one (common/renditions.ts): `index.m3u8` a multivariant playlist
// (common/multivariant-playlist.ts), `<rendition>.m3u8` each rendition's
// media playlist (common/media-playlist.ts), the source's segments in the
// session folder and the others' in `<session>/<rendition>/`, and a
// thumbnail. The segments are real CMAF: Debian's ffmpeg encodes each
// rendition of the same test pattern with the same keyframe interval, so
// every rendition's segment N covers the same second. For tests of the
// readers (the gateway's origin, follower and lookup, the player) before or
// beside an ingest that writes ladders.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MediaPlaylist } from '../common/media-playlist.ts';
import { renderMultivariantPlaylist, type Variant } from '../common/multivariant-playlist.ts';
import { PLAYLIST_FILE } from '../common/object-layout.ts';
import { renditionFolder, renditionPlaylistFile, SOURCE_RENDITION, THUMBNAIL_FILE } from '../common/renditions.ts';

const run = promisify(execFile);

export interface RenditionSpec {
  /** `source`, `track1`, `480p`, … */
  name: string;
  width: number;
  height: number;
  videoKbps: number;
}

export interface EncodedRendition extends RenditionSpec {
  init: Buffer;
  segments: Buffer[];
  variant: Omit<Variant, 'uri' | 'name'>;
}

const FPS = 30;
// High profile, level 4.0 (every size up to 1080p30); AAC-LC.
const CODECS = ['avc1.640028', 'mp4a.40.2'];

/** Encodes `seconds` of one test pattern into 1 s CMAF segments per rendition (Debian's ffmpeg, libx264 + AAC). */
export async function encodeRenditions(specs: RenditionSpec[], seconds: number): Promise<EncodedRendition[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tteok-ladder-'));
  try {
    const out: EncodedRendition[] = [];
    for (const spec of specs) {
      const folder = join(dir, spec.name);
      await mkdir(folder);
      await run(
        'ffmpeg',
        // biome-ignore format: one option and its value per line would be unreadable
        [
          '-hide_banner', '-loglevel', 'error',
          '-f', 'lavfi', '-i', `testsrc2=size=${spec.width}x${spec.height}:rate=${FPS}`,
          '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
          '-t', String(seconds), '-map', '0:v', '-map', '1:a',
          '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-level:v', '4.0', '-pix_fmt', 'yuv420p',
          '-g', String(FPS), '-keyint_min', String(FPS), '-sc_threshold', '0',
          '-b:v', `${spec.videoKbps}k`, '-maxrate', `${spec.videoKbps}k`, '-bufsize', `${spec.videoKbps}k`,
          '-c:a', 'aac', '-b:a', '96k', '-ac', '2',
          '-f', 'hls', '-hls_time', '1', '-hls_playlist_type', 'vod', '-hls_segment_type', 'fmp4',
          '-hls_fmp4_init_filename', 'init-1.mp4', '-hls_segment_filename', join(folder, '%d.m4s'),
          join(folder, 'out.m3u8'),
        ],
        { timeout: 120_000 },
      );
      const init = await readFile(join(folder, 'init-1.mp4'));
      const segments: Buffer[] = [];
      for (let i = 0; i < seconds; i++) segments.push(await readFile(join(folder, `${i}.m4s`)));
      const bits = segments.map((s) => s.length * 8);
      out.push({
        ...spec,
        init,
        segments,
        variant: {
          bandwidth: Math.max(...bits),
          averageBandwidth: Math.round(bits.reduce((a, b) => a + b, 0) / bits.length),
          resolution: { width: spec.width, height: spec.height },
          frameRate: FPS,
          codecs: CODECS,
        },
      });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A JPEG of the test pattern (Debian's ffmpeg), as a thumbnail. */
export async function encodeThumbnail(width = 320, height = 180): Promise<Buffer> {
  const { stdout } = await run(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=1`, '-frames:v', '1', '-f', 'mjpeg', 'pipe:1'],
    { encoding: 'buffer', timeout: 30_000 },
  );
  return stdout;
}

async function writeAtomically(path: string, data: string | Buffer): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

/**
 * One live run of a ladder in `streamDir`: `publish()` adds the next segment
 * to every rendition (segments first, then the media playlists, each with a
 * program date time of now − its duration, as the ingest stamps them), and
 * writes the multivariant `index.m3u8` once. `end()` adds ENDLIST to every
 * rendition's playlist.
 */
export class LadderOnDisk {
  private readonly playlists = new Map<string, MediaPlaylist>();
  private next = 0;

  constructor(
    readonly streamDir: string,
    readonly session: string,
    readonly renditions: EncodedRendition[],
    /** Segments each media playlist lists (the live window). */
    readonly window = 6,
    /** No ladder: the source alone, its media playlist at `index.m3u8` (an ordinary publish). */
    readonly plain = false,
  ) {
    if (renditions[0]?.name !== SOURCE_RENDITION) throw new Error('a ladder lists its source first');
    if (plain && renditions.length !== 1) throw new Error('a stream without a ladder has its source only');
    for (const r of renditions) this.playlists.set(r.name, new MediaPlaylist(1, window));
  }

  /** Segments published so far. */
  get published(): number {
    return this.next;
  }

  get length(): number {
    return this.renditions[0]!.segments.length;
  }

  async publish(count = 1): Promise<void> {
    for (let n = 0; n < count; n++) {
      const seq = this.next;
      if (seq >= this.length) throw new Error(`only ${this.length} segments were encoded`);
      for (const r of this.renditions) {
        const folder = renditionFolder(this.session, r.name);
        await mkdir(join(this.streamDir, folder), { recursive: true });
        if (seq === 0) await writeAtomically(join(this.streamDir, folder, 'init-1.mp4'), r.init);
        await writeAtomically(join(this.streamDir, folder, `${seq}.m4s`), r.segments[seq]!);
        this.playlists.get(r.name)!.append({
          uri: `${folder}/${seq}.m4s`,
          duration: 1,
          programDateTime: Date.now() - 1000,
          initUri: `${folder}/init-1.mp4`,
          discontinuity: false,
        });
      }
      for (const r of this.renditions) await this.writePlaylist(r.name);
      if (seq === 0 && !this.plain) await this.writeMultivariant();
      this.next++;
    }
  }

  async end(): Promise<void> {
    for (const r of this.renditions) {
      this.playlists.get(r.name)!.ended = true;
      await this.writePlaylist(r.name);
    }
  }

  /** Publishes the next segment every second until every encoded one is out or `stop()` is called; bounded by itself. */
  publishEverySecond(): { stop(): void; done: Promise<void> } {
    let stopped = false;
    const done = (async () => {
      while (!stopped && this.next < this.length) {
        const started = Date.now();
        await this.publish();
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (Date.now() - started))));
      }
    })();
    return { stop: () => (stopped = true), done };
  }

  async writeThumbnail(jpeg: Buffer): Promise<void> {
    await mkdir(this.streamDir, { recursive: true });
    await writeAtomically(join(this.streamDir, THUMBNAIL_FILE), jpeg);
  }

  /** The multivariant playlist's text, as `index.m3u8` holds it. */
  multivariant(): string {
    return renderMultivariantPlaylist(this.renditions.map((r) => ({ name: r.name, uri: renditionPlaylistFile(r.name), ...r.variant })));
  }

  private async writeMultivariant(): Promise<void> {
    await writeAtomically(join(this.streamDir, PLAYLIST_FILE), this.multivariant());
  }

  private async writePlaylist(name: string): Promise<void> {
    const file = this.plain ? PLAYLIST_FILE : renditionPlaylistFile(name);
    await writeAtomically(join(this.streamDir, file), this.playlists.get(name)!.render());
  }
}
