// What a ladder's multivariant playlist says about each rendition, read from
// the rendition's own media: its codec strings (RFC 6381), its picture size
// and frame rate, and its bit rate, measured from the segments it stored. The
// media is read with mediabunny's demuxer (an init segment and one media
// segment, once per init segment), so a transcoded rendition, which the
// ingest only gets as fMP4, is described the same way as the source.
import { BufferSource, EncodedPacketSink, Input, MP4 } from 'mediabunny';
import type { Variant } from '../../common/multivariant-playlist.ts';

export interface RenditionDescription {
  codecs: string[];
  resolution?: { width: number; height: number };
  frameRate?: number;
}

/** Common frame rates: a measured one within 1 % of one is that one (a segment's frame count over its duration is approximate). */
const FRAME_RATES = [10, 12, 15, 20, 23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60, 90, 120];

/** Describes a rendition from one init segment and one of its media segments. */
export async function describeRendition(init: Uint8Array, segment: Uint8Array): Promise<RenditionDescription> {
  const bytes = new Uint8Array(init.byteLength + segment.byteLength);
  bytes.set(init, 0);
  bytes.set(segment, init.byteLength);
  const input = new Input({ source: new BufferSource(bytes), formats: [MP4] });
  try {
    const codecs: string[] = [];
    const out: RenditionDescription = { codecs };
    const video = await input.getPrimaryVideoTrack();
    if (video) {
      const codec = await video.getCodecParameterString();
      if (codec) codecs.push(codec);
      out.resolution = { width: video.displayWidth, height: video.displayHeight };
      const frameRate = await frameRateOf(new EncodedPacketSink(video));
      if (frameRate !== undefined) out.frameRate = frameRate;
    }
    const audio = await input.getPrimaryAudioTrack();
    if (audio) {
      const codec = await audio.getCodecParameterString();
      if (codec) codecs.push(codec);
    }
    return out;
  } finally {
    input.dispose();
  }
}

/** Frames per second from the frames' presentation times: frames less one over the span between the first and the last. */
async function frameRateOf(sink: EncodedPacketSink): Promise<number | undefined> {
  let count = 0;
  let first = Infinity;
  let last = -Infinity;
  for await (const packet of sink.packets(undefined, undefined, { metadataOnly: true })) {
    count++;
    first = Math.min(first, packet.timestamp);
    last = Math.max(last, packet.timestamp);
  }
  if (count < 2 || !(last > first)) return undefined;
  const measured = (count - 1) / (last - first);
  const nearest = FRAME_RATES.reduce((a, b) => (Math.abs(b - measured) < Math.abs(a - measured) ? b : a));
  return Math.abs(nearest - measured) <= nearest * 0.01 ? nearest : Math.round(measured * 1000) / 1000;
}

/**
 * A rendition's bit rates, from the segments it stored: the peak segment bit
 * rate (BANDWIDTH, RFC 8216 4.3.4.2) and the mean over every segment
 * (AVERAGE-BANDWIDTH).
 */
export class BitRate {
  peak = 0;
  private bits = 0;
  private seconds = 0;

  constructor(seed?: { peak: number; average?: number }) {
    if (seed) {
      this.peak = seed.peak;
      // A seeded mean (from a playlist read back) weighs as one second of media.
      this.bits = seed.average ?? seed.peak;
      this.seconds = 1;
    }
  }

  add(bytes: number, seconds: number): void {
    if (!(seconds > 0)) return;
    this.peak = Math.max(this.peak, (bytes * 8) / seconds);
    this.bits += bytes * 8;
    this.seconds += seconds;
  }

  get average(): number {
    return this.seconds > 0 ? this.bits / this.seconds : 0;
  }

  get measured(): boolean {
    return this.seconds > 0;
  }
}

/**
 * Whether a multivariant playlist written with `before` should be written
 * again for `after`: a variant came or went, or a bit rate moved by more
 * than a tenth. Players read it once (hls.js never reloads it), so it is not
 * rewritten for every segment's small change.
 */
export function variantsChanged(before: readonly Variant[] | undefined, after: readonly Variant[]): boolean {
  if (!before || before.length !== after.length) return true;
  return after.some((v, i) => {
    const b = before[i]!;
    const moved = (x: number | undefined, y: number | undefined): boolean => (x ?? 0) === 0 || Math.abs((y ?? 0) - x!) > 0.1 * x!;
    return (
      b.name !== v.name ||
      moved(b.bandwidth, v.bandwidth) ||
      moved(b.averageBandwidth, v.averageBandwidth) ||
      b.codecs.join() !== v.codecs.join() ||
      b.resolution?.width !== v.resolution?.width ||
      b.resolution?.height !== v.resolution?.height ||
      b.frameRate !== v.frameRate
    );
  });
}
