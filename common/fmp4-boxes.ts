// Just enough ISO-BMFF to put a transcoded rendition on the source's
// timeline: the tracks of an init segment (id, kind, timescale), the decode
// start time (tfdt) of each track in a media segment, and rewriting it. The
// transcoder reads the source segment's start with it and sets each output's
// to the same instant, whatever ffmpeg's mp4 muxer chose (it starts every
// output at zero). Bounds-checked: the bytes come from publishers and ffmpeg.
// The ingest's fragment timing (ingest/media/fmp4.ts) walks boxes with it too.

export class Fmp4Error extends Error {
  override name = 'Fmp4Error';
}

export interface Box {
  type: string;
  /** Offset of the box's first byte (its size field). */
  offset: number;
  /** Offset of the payload. */
  start: number;
  end: number;
}

/** The boxes between `start` and `end`, in order; throws Fmp4Error on a box that does not fit or bytes left over. */
export function* boxes(data: Uint8Array, start = 0, end = data.length): Generator<Box> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = start;
  while (pos + 8 <= end) {
    let size = view.getUint32(pos);
    const type = String.fromCharCode(data[pos + 4]!, data[pos + 5]!, data[pos + 6]!, data[pos + 7]!);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > end) throw new Fmp4Error(`truncated ${type} box at ${pos}`);
      size = Number(view.getBigUint64(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = end - pos;
    }
    if (size < header || pos + size > end) throw new Fmp4Error(`malformed ${type} box at ${pos}`);
    yield { type, offset: pos, start: pos + header, end: pos + size };
    pos += size;
  }
  if (pos !== end) throw new Fmp4Error(`${end - pos} stray bytes at ${pos}`);
}

function children(data: Uint8Array, parent: Box, type: string): Box[] {
  return [...boxes(data, parent.start, parent.end)].filter((b) => b.type === type);
}

export function child(data: Uint8Array, parent: Box, type: string): Box | undefined {
  return children(data, parent, type)[0];
}

export type TrackKind = 'video' | 'audio' | 'other';

export interface Fmp4Track {
  id: number;
  kind: TrackKind;
  timescale: number;
  /** Picture size from the tkhd (video tracks; 0 when not set). */
  width: number;
  height: number;
}

/** The tracks of an init segment (ftyp + moov). */
export function initTracks(init: Uint8Array): Fmp4Track[] {
  const view = new DataView(init.buffer, init.byteOffset, init.byteLength);
  const tracks: Fmp4Track[] = [];
  for (const moov of boxes(init)) {
    if (moov.type !== 'moov') continue;
    for (const trak of children(init, moov, 'trak')) {
      const tkhd = child(init, trak, 'tkhd');
      const mdia = child(init, trak, 'mdia');
      const mdhd = mdia && child(init, mdia, 'mdhd');
      const hdlr = mdia && child(init, mdia, 'hdlr');
      if (!tkhd || !mdhd || tkhd.end - tkhd.start < 24 || mdhd.end - mdhd.start < 24) throw new Fmp4Error('a trak without a readable tkhd or mdhd');
      const id = view.getUint32(tkhd.start + (init[tkhd.start] === 1 ? 20 : 12));
      const timescale = view.getUint32(mdhd.start + (init[mdhd.start] === 1 ? 20 : 12));
      const handler = hdlr && hdlr.end - hdlr.start >= 12 ? String.fromCharCode(...init.subarray(hdlr.start + 8, hdlr.start + 12)) : '';
      if (timescale === 0) throw new Fmp4Error(`track ${id} has timescale 0`);
      // tkhd ends with width and height, 16.16 fixed point.
      const width = view.getUint32(tkhd.end - 8) >>> 16;
      const height = view.getUint32(tkhd.end - 4) >>> 16;
      tracks.push({ id, timescale, kind: handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : 'other', width, height });
    }
  }
  if (tracks.length === 0) throw new Fmp4Error('no moov with tracks');
  return tracks;
}

interface TfdtField {
  trackId: number;
  /** Offset of the tfdt's full-box version byte. */
  at: number;
  value: bigint;
}

function tfdtFields(segment: Uint8Array): TfdtField[] {
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  const fields: TfdtField[] = [];
  for (const moof of boxes(segment)) {
    if (moof.type !== 'moof') continue;
    for (const traf of children(segment, moof, 'traf')) {
      const tfhd = child(segment, traf, 'tfhd');
      const tfdt = child(segment, traf, 'tfdt');
      if (!tfhd || !tfdt || tfhd.end - tfhd.start < 8) throw new Fmp4Error('a traf without tfhd or tfdt');
      const version = segment[tfdt.start]!;
      if (tfdt.end - tfdt.start < (version === 1 ? 12 : 8)) throw new Fmp4Error('a short tfdt');
      const value = version === 1 ? view.getBigUint64(tfdt.start + 4) : BigInt(view.getUint32(tfdt.start + 4));
      fields.push({ trackId: view.getUint32(tfhd.start + 4), at: tfdt.start, value });
    }
  }
  return fields;
}

/** Each track's decode start time in a media segment (its first fragment's tfdt), in seconds. */
export function decodeStarts(segment: Uint8Array, tracks: Fmp4Track[]): Map<TrackKind, number> {
  const starts = new Map<TrackKind, number>();
  for (const field of tfdtFields(segment)) {
    const track = tracks.find((t) => t.id === field.trackId);
    if (!track) throw new Fmp4Error(`a fragment of track ${field.trackId}, which the init segment does not declare`);
    if (!starts.has(track.kind)) starts.set(track.kind, Number(field.value) / track.timescale);
  }
  return starts;
}

/**
 * The video frame rate of a media segment (its frames over their summed
 * durations), or undefined when it has no video or its trun boxes carry no
 * durations.
 */
export function videoFrameRate(segment: Uint8Array, tracks: Fmp4Track[]): number | undefined {
  const video = tracks.find((t) => t.kind === 'video');
  if (!video) return undefined;
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  let frames = 0;
  let ticks = 0;
  for (const moof of boxes(segment)) {
    if (moof.type !== 'moof') continue;
    for (const traf of children(segment, moof, 'traf')) {
      const tfhd = child(segment, traf, 'tfhd');
      if (!tfhd || tfhd.end - tfhd.start < 8 || view.getUint32(tfhd.start + 4) !== video.id) continue;
      const tfhdFlags = view.getUint32(tfhd.start) & 0xffffff;
      // tfhd: track id, then optional base data offset (8), sample description index (4), default duration (4).
      let at = tfhd.start + 8 + (tfhdFlags & 0x01 ? 8 : 0) + (tfhdFlags & 0x02 ? 4 : 0);
      const defaultDuration = tfhdFlags & 0x08 && at + 4 <= tfhd.end ? view.getUint32(at) : undefined;
      for (const trun of children(segment, traf, 'trun')) {
        if (trun.end - trun.start < 8) return undefined;
        const flags = view.getUint32(trun.start) & 0xffffff;
        const count = view.getUint32(trun.start + 4);
        at = trun.start + 8 + (flags & 0x01 ? 4 : 0) + (flags & 0x04 ? 4 : 0);
        const perSample = (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0) + (flags & 0x400 ? 4 : 0) + (flags & 0x800 ? 4 : 0);
        if (at + count * perSample > trun.end) throw new Fmp4Error('a trun longer than its box');
        for (let i = 0; i < count; i++, at += perSample) {
          const duration = flags & 0x100 ? view.getUint32(at) : defaultDuration;
          if (duration === undefined) return undefined;
          ticks += duration;
        }
        frames += count;
      }
    }
  }
  return frames > 0 && ticks > 0 ? (frames * video.timescale) / ticks : undefined;
}

/**
 * Moves every track of a media segment so that its first fragment starts at
 * `startSeconds[kind]` (tracks of a kind not given stay where they are);
 * later fragments move by the same amount. Rewrites in place.
 */
export function shiftDecodeStarts(segment: Uint8Array, tracks: Fmp4Track[], startSeconds: Map<TrackKind, number>): void {
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  const shifts = new Map<number, bigint>();
  for (const field of tfdtFields(segment)) {
    const track = tracks.find((t) => t.id === field.trackId);
    const target = track && startSeconds.get(track.kind);
    if (!track || target === undefined) continue;
    let shift = shifts.get(track.id);
    if (shift === undefined) {
      shift = BigInt(Math.round(target * track.timescale)) - field.value;
      shifts.set(track.id, shift);
    }
    const value = field.value + shift;
    if (value < 0n) throw new Fmp4Error(`track ${track.id} would start before zero`);
    if (segment[field.at] === 1) view.setBigUint64(field.at + 4, value);
    else if (value <= 0xffffffffn) view.setUint32(field.at + 4, Number(value));
    else throw new Fmp4Error(`track ${track.id}'s start does not fit a version-0 tfdt`);
  }
}

/**
 * Splits a fragmented MP4 file as ffmpeg writes it into its init segment
 * (everything before the first moof: ftyp, moov) and one media segment (its
 * moof and mdat boxes; an mfra or other trailer is dropped).
 */
export function splitFragmentedMp4(file: Uint8Array): { init: Uint8Array; segment: Uint8Array } {
  const all = [...boxes(file)];
  const first = all.findIndex((b) => b.type === 'moof');
  if (first < 0) throw new Fmp4Error('no media fragment');
  const media = all.slice(first).filter((b) => b.type === 'moof' || b.type === 'mdat');
  const segment = new Uint8Array(media.reduce((n, b) => n + b.end - b.offset, 0));
  let at = 0;
  for (const b of media) {
    segment.set(file.subarray(b.offset, b.end), at);
    at += b.end - b.offset;
  }
  return { init: file.slice(0, all[first]!.offset), segment };
}

/**
 * Clears the bitrates an init segment declares (btrt, and the esds of AAC):
 * ffmpeg measures them on the one segment it muxed, so they would make every
 * segment's init segment different bytes and the ingest see a new init
 * segment each time. Zero means "not given" in both boxes. Rewrites in place.
 */
export function clearDeclaredBitrates(init: Uint8Array): void {
  const view = new DataView(init.buffer, init.byteOffset, init.byteLength);
  const path = ['trak', 'mdia', 'minf', 'stbl', 'stsd'];
  const walk = (parent: Box, depth: number): void => {
    for (const box of boxes(init, parent.start, parent.end)) {
      if (box.type !== path[depth]) continue;
      if (depth < path.length - 1) walk(box, depth + 1);
      else sampleEntries(box);
    }
  };
  const sampleEntries = (stsd: Box): void => {
    for (const entry of boxes(init, stsd.start + 8, stsd.end)) {
      // A sample entry's own fields come before its child boxes: 28 bytes for audio, 78 for video.
      const header = ['mp4a', 'Opus', 'ac-3', 'ec-3'].includes(entry.type)
        ? 28
        : ['avc1', 'avc3', 'hvc1', 'hev1', 'av01'].includes(entry.type)
          ? 78
          : undefined;
      if (header === undefined || entry.start + header > entry.end) continue;
      for (const box of boxes(init, entry.start + header, entry.end)) {
        if (box.type === 'btrt' && box.end - box.start >= 12) {
          view.setUint32(box.start + 4, 0);
          view.setUint32(box.start + 8, 0);
        } else if (box.type === 'esds') clearEsdsBitrates(view, box.start + 4, box.end);
      }
    }
  };
  for (const moov of boxes(init)) if (moov.type === 'moov') walk(moov, 0);
}

/** Zeroes maxBitrate and avgBitrate of the DecoderConfigDescriptor (ISO 14496-1) inside an esds payload. */
function clearEsdsBitrates(view: DataView, start: number, end: number): void {
  let at = start;
  const descriptor = (): { tag: number; body: number; next: number } | undefined => {
    if (at + 2 > end) return undefined;
    const tag = view.getUint8(at++);
    let length = 0;
    for (let i = 0; i < 4 && at < end; i++) {
      const b = view.getUint8(at++);
      length = (length << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return at + length <= end ? { tag, body: at, next: at + length } : undefined;
  };
  const es = descriptor();
  if (es?.tag !== 0x03 || es.body + 3 > es.next) return;
  const flags = view.getUint8(es.body + 2);
  at = es.body + 3 + (flags & 0x80 ? 2 : 0);
  if (flags & 0x40) at += 1 + (at < end ? view.getUint8(at) : 0);
  if (flags & 0x20) at += 2;
  const config = descriptor();
  // objectTypeIndication(1), streamType(1), bufferSizeDB(3), maxBitrate(4), avgBitrate(4)
  if (config?.tag !== 0x04 || config.body + 13 > config.next) return;
  view.setUint32(config.body + 5, 0);
  view.setUint32(config.body + 9, 0);
}
