// Stores a live stream's thumbnail beside its playlist (thumbnail.jpg, under
// the private root for a private stream, like every object of it). Put
// straight into the object store, not through the media volume and the
// uploader's ordered queue: a thumbnail names nothing and nothing names it,
// and a newer one replaces it within seconds, so one that fails is not
// retried (the next one is the retry).
import type { StreamRef } from '../../common/livestream.ts';
import { contentTypeFor, joinKey, streamPrefix, THUMBNAIL_CACHE_CONTROL } from '../../common/object-layout.ts';
import { accessRoot, type PlaybackAccess } from '../../common/playback-token.ts';
import { THUMBNAIL_FILE } from '../../common/renditions.ts';
import type { ObjectStore } from '../../common/storage/object-store.ts';

export interface ThumbnailSink {
  storeThumbnail(ref: StreamRef, jpeg: Uint8Array): Promise<void>;
}

export class ThumbnailStore implements ThumbnailSink {
  constructor(
    private readonly store: ObjectStore,
    /** The object key prefix (TTEOK_S3_PREFIX; '' for the local store). */
    private readonly prefix: string,
    /** A stream's access; an unknown stream is private (fail closed). */
    private readonly accessOf: (ref: StreamRef) => PlaybackAccess,
  ) {}

  keyOf(ref: StreamRef): string {
    return joinKey(this.prefix, accessRoot(this.accessOf(ref)), streamPrefix(ref), THUMBNAIL_FILE);
  }

  storeThumbnail(ref: StreamRef, jpeg: Uint8Array): Promise<void> {
    const key = this.keyOf(ref);
    return this.store.put(key, jpeg, { contentType: contentTypeFor(key), cacheControl: THUMBNAIL_CACHE_CONTROL });
  }
}
