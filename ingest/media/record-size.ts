// The one bound every decoder configuration record shares. Real records are
// small: an avcC or hvcC carries a few parameter sets (tens to hundreds of
// bytes, a little more with HDR SEI), an av1C one sequence header OBU, an
// AudioSpecificConfig 2–5 bytes, an OpusHead 19 bytes plus one byte per
// channel. 64 KiB is far above any of them and small enough that walking a
// record costs nothing; a bigger one is refused before it is parsed.
export const MAX_CODEC_CONFIG_BYTES = 64 * 1024;

/** Throws when a decoder configuration record is larger than any encoder writes. */
export function checkRecordSize(record: Uint8Array, what: string): void {
  if (record.length > MAX_CODEC_CONFIG_BYTES) {
    throw new Error(`the ${what} is ${record.length} bytes; at most ${MAX_CODEC_CONFIG_BYTES / 1024} KiB is accepted (an encoder's is under 1 KiB)`);
  }
}
