// Just enough ISO-BMFF parsing to describe the fragments mediabunny writes:
// each track's timescale from the init segment, and each fragment's start and
// duration from its moof. The playlist's EXTINF and the segment's start time
// come from the media itself, so they are exact whatever cut the fragment.
import { boxes, child, type Fmp4Track, initTracks } from '../../common/fmp4-boxes.ts';

/** An init segment's track, as common/fmp4-boxes.ts reads it (the transcoder reads the same boxes). */
export type TrackInfo = Fmp4Track;

/** Track ids, timescales and kinds from an init segment (ftyp + moov). */
export function parseInitSegment(init: Uint8Array): Map<number, TrackInfo> {
  return new Map(initTracks(init).map((track) => [track.id, track]));
}

export interface FragmentTiming {
  /** Earliest presentation time of the fragment, in seconds. */
  start: number;
  /** Duration of the fragment, in seconds: the longest of its tracks. */
  duration: number;
  /** Presentation start of the video track, in seconds, when the fragment has video. */
  videoStart?: number;
  /** Duration of the video track, in seconds, when the fragment has video. */
  videoDuration?: number;
}

/** One track's run through the moofs of a fragment: where it starts and how long its samples last. */
interface TrackRun {
  start: number;
  /** Sum of sample durations, in the track's timescale. */
  total: number;
  /** Time of the first moof's leading pictures (an open GOP), in the track's timescale. */
  leading: number;
}

/**
 * Start and duration of a media fragment (a moof, optionally followed by its
 * mdat), or of a segment of several (an LL-HLS segment is its parts' moof +
 * mdat pairs back to back): each track runs on from its first moof.
 */
export function parseFragmentTiming(
  fragment: Uint8Array,
  tracks: Map<number, TrackInfo>,
  /** It starts at a keyframe (so frames shown before its first are leading pictures); false for an LL-HLS part inside a GOP. */
  fromKeyframe = true,
): FragmentTiming {
  const view = new DataView(fragment.buffer, fragment.byteOffset, fragment.byteLength);
  const runs = new Map<number, TrackRun>();
  for (const top of boxes(fragment)) {
    if (top.type !== 'moof') continue;
    for (const traf of boxes(fragment, top.start, top.end)) {
      if (traf.type !== 'traf') continue;
      const tfhd = child(fragment, traf, 'tfhd');
      if (!tfhd) continue;
      const tfhdFlags = view.getUint32(tfhd.start) & 0xffffff;
      const trackId = view.getUint32(tfhd.start + 4);
      let p = tfhd.start + 8;
      if (tfhdFlags & 0x01) p += 8; // base-data-offset
      if (tfhdFlags & 0x02) p += 4; // sample-description-index
      const defaultDuration = tfhdFlags & 0x08 ? view.getUint32(p) : 0;
      const track = tracks.get(trackId);
      if (!track) continue;
      const tfdt = child(fragment, traf, 'tfdt');
      const baseTime = !tfdt ? 0 : fragment[tfdt.start] === 1 ? Number(view.getBigUint64(tfdt.start + 4)) : view.getUint32(tfdt.start + 4);
      let total = 0;
      let firstOffset = 0;
      // Presentation times relative to baseTime: the first sample's (the keyframe) and the earliest.
      let firstPts: number | undefined;
      let minPts = Infinity;
      for (const trun of boxes(fragment, traf.start, traf.end)) {
        if (trun.type !== 'trun') continue;
        const version = fragment[trun.start]!;
        const flags = view.getUint32(trun.start) & 0xffffff;
        const count = view.getUint32(trun.start + 4);
        let q = trun.start + 8;
        if (flags & 0x001) q += 4; // data-offset
        if (flags & 0x004) q += 4; // first-sample-flags
        for (let i = 0; i < count; i++) {
          const sampleDuration = flags & 0x100 ? view.getUint32(q) : defaultDuration;
          if (flags & 0x100) q += 4;
          if (flags & 0x200) q += 4; // size
          if (flags & 0x400) q += 4; // flags
          let offset = 0;
          if (flags & 0x800) {
            offset = version === 0 ? view.getUint32(q) : view.getInt32(q);
            if (i === 0 && total === 0) firstOffset = offset;
            q += 4;
          }
          firstPts ??= total + offset;
          minPts = Math.min(minPts, total + offset);
          total += sampleDuration;
        }
      }
      const run = runs.get(trackId);
      if (run) {
        run.total += total;
        continue;
      }
      // An open GOP (x265's default: a CRA keyframe with leading pictures
      // shown before it) puts frames from before the keyframe into the
      // fragment, and the muxer's durations then span from the earliest of
      // them, overlapping the previous fragment, which already reaches this
      // keyframe. The fragment's own time runs from its keyframe, so segment
      // durations add up to the stream's (as ffmpeg's HLS muxer counts them).
      const leading = fromKeyframe && firstPts !== undefined && minPts < firstPts ? firstPts - minPts : 0;
      runs.set(trackId, { start: (baseTime + firstOffset) / track.timescale, total, leading });
    }
  }
  let start = Infinity;
  let duration = 0;
  let videoStart: number | undefined;
  let videoDuration: number | undefined;
  for (const [trackId, run] of runs) {
    const track = tracks.get(trackId)!;
    const seconds = (run.total - run.leading) / track.timescale;
    start = Math.min(start, run.start);
    duration = Math.max(duration, seconds);
    if (track.kind === 'video') {
      videoStart = run.start;
      videoDuration = seconds;
    }
  }
  if (!Number.isFinite(start)) throw new Error('fragment has no track fragment');
  return { start, duration, ...(videoStart !== undefined ? { videoStart, videoDuration } : {}) };
}

/**
 * Bytes of sample data a moof's track runs describe: the payload of the mdat
 * that follows it (sizes per sample, or the track fragment's default).
 */
export function fragmentPayloadBytes(moof: Uint8Array): number {
  const view = new DataView(moof.buffer, moof.byteOffset, moof.byteLength);
  let bytes = 0;
  for (const top of boxes(moof)) {
    if (top.type !== 'moof') continue;
    for (const traf of boxes(moof, top.start, top.end)) {
      if (traf.type !== 'traf') continue;
      const tfhd = child(moof, traf, 'tfhd');
      let defaultSize = 0;
      if (tfhd) {
        const flags = view.getUint32(tfhd.start) & 0xffffff;
        let p = tfhd.start + 8;
        if (flags & 0x01) p += 8; // base-data-offset
        if (flags & 0x02) p += 4; // sample-description-index
        if (flags & 0x08) p += 4; // default-sample-duration
        if (flags & 0x10) defaultSize = view.getUint32(p);
      }
      for (const trun of boxes(moof, traf.start, traf.end)) {
        if (trun.type !== 'trun') continue;
        const flags = view.getUint32(trun.start) & 0xffffff;
        const count = view.getUint32(trun.start + 4);
        if (!(flags & 0x200)) {
          bytes += count * defaultSize;
          continue;
        }
        let q = trun.start + 8;
        if (flags & 0x001) q += 4; // data-offset
        if (flags & 0x004) q += 4; // first-sample-flags
        const stride = 4 * [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length;
        const sizeAt = flags & 0x100 ? 4 : 0;
        for (let i = 0; i < count; i++, q += stride) bytes += view.getUint32(q + sizeAt);
      }
    }
  }
  return bytes;
}
