// The errors that end an admitted publish because of what the publisher
// sends, each with a sentence the streamer can act on. The packager throws
// them; the RTMP connection turns them into an onStatus error. They live here,
// between the two, so that neither imports the other.

/** Media tteok cannot package (a codec, an unreadable sequence header). */
export class UnsupportedMediaError extends Error {
  override name = 'UnsupportedMediaError';
}

export type PublishLimitReason = 'gop_too_long' | 'fragment_too_large' | 'ahead_of_real_time' | 'segment_rate';

/** A publish past one of the limits of publish-limits.ts. */
export class PublishLimitError extends Error {
  override name = 'PublishLimitError';
  constructor(
    readonly reason: PublishLimitReason,
    message: string,
  ) {
    super(message);
  }
}
