// A stream's playlist as viewers get it from the bucket: read it, wait for a
// version of it, and check that every object it names is there. The handover
// tests follow a stream across ingest pods by what they store, not by logs.
import type { S3Client } from '@aws-sdk/client-s3';
import { parsePlaylist, type ParsedPlaylist } from './hls.ts';
import { getObject, headObject } from './s3-objects.ts';
import { waitFor } from './wait.ts';

export interface StoredPlaylist {
  text: string;
  playlist: ParsedPlaylist;
}

export interface StoredPlaylists {
  /** The playlist of LiveStream `name` as it is in the bucket now, if there is one. */
  stored(name: string): Promise<StoredPlaylist | undefined>;
  /** Polls until the stored playlist of `name` satisfies `ok` (described by `what`), and returns it. */
  waitForStored(name: string, what: string, ok: (p: ParsedPlaylist) => boolean, timeoutMs?: number): Promise<ParsedPlaylist>;
  /** The init and media segments `p` names that are not in the bucket. */
  missingObjects(name: string, p: ParsedPlaylist): Promise<string[]>;
}

/** The stored playlists of the LiveStreams in `namespace`, in the bucket the ingest uploads to. */
export function storedPlaylists(s3: { client: S3Client; bucket: string }, namespace: string): StoredPlaylists {
  const stored = async (name: string): Promise<StoredPlaylist | undefined> => {
    const object = await getObject(s3.client, s3.bucket, `${namespace}/${name}/index.m3u8`);
    if (!object) return undefined;
    const text = object.body.toString();
    return { text, playlist: parsePlaylist(text) };
  };
  return {
    stored,
    waitForStored: (name, what, ok, timeoutMs = 30_000) =>
      waitFor(
        `${name}: ${what}`,
        async () => {
          const s = await stored(name);
          return s && ok(s.playlist) ? s.playlist : undefined;
        },
        { timeoutMs, intervalMs: 50 },
      ),
    async missingObjects(name, p) {
      const missing: string[] = [];
      for (const uri of new Set([...p.maps, ...p.segments.map((s) => s.uri)])) {
        if (!(await headObject(s3.client, s3.bucket, `${namespace}/${name}/${uri}`))) missing.push(uri);
      }
      return missing;
    },
  };
}

/** The publish session a segment URI belongs to (its first path component, `<session>` in README's media layout). */
export const sessionOf = (uri: string): string => uri.split('/')[0]!;
