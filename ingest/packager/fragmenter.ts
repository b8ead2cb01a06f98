// Turns one publish session's packets (H.264, HEVC or AV1 video; AAC or Opus
// audio; either may be absent) into CMAF: an init segment and a stream of
// media segments (moof + mdat), muxed in process by mediabunny. A fragment is
// cut at a video keyframe once it is at least as long as the target segment
// duration; a stream with no video is cut on the target duration alone, since
// every AAC or Opus frame can start a segment.
//
// mediabunny is strict about timestamps: it throws when a packet's timestamp
// falls below the largest presentation time of the previous GOP (its issues
// #321, #511, #526; seen when publishers stop mid-GOP). One bad packet must
// never end a stream's packaging, so packets that would break that rule are
// dropped and counted before they reach the muxer, and if the muxer fails
// anyway it is restarted at the next keyframe with a new init segment, which
// the playlist marks as a discontinuity.
//
// Latency: mediabunny interleaves its tracks by timestamp and cuts a fragment
// only when the keyframe that starts the next one is written, which needs a
// sample queued on every track. With audio, that is the first audio frame at
// or after the keyframe's presentation time: the keyframe's composition
// offset plus up to one audio frame after it arrives (about 70–90 ms with
// B-frames). So with both tracks the fragmenter cuts itself, as the keyframe
// arrives, through the muxer's forceFragmentFinalization (what mediabunny's
// own HLS muxer uses to place its segment boundaries; not in its typings).
// The audio of those last few tens of milliseconds then opens the next
// segment instead, which players handle as they do any track that starts a
// little before another. A forced cut ends the GOP's last video frame at the
// duration it was fed with (mediabunny otherwise takes it from the next
// keyframe, which a forced cut comes before), so with audio each video frame
// is held until the next one arrives: the last one before a cut is fed with
// the true gap to the keyframe, every other with none, as before. Should a
// mediabunny upgrade drop the method, mediabunny's own cut (the same minimum
// duration) still applies, only later.
//
// LL-HLS parts (partSeconds > 0): every cut is forced, mediabunny never cuts
// by itself, and each fragment is a part of about partSeconds; a segment is
// its parts' bytes back to back, cut by the same rule as above. A part ends
// before a video frame only when no frame after it can be shown before the
// frames already fed (its presentation time is above all of theirs): the
// muxer derives decode times by sorting each batch of presentation times,
// which is right for a batch only so (with B-frames: before a P frame, not
// inside its group). Video is always held one frame, so the last frame of a
// part is fed with its true duration: the gap to the next frame's decode time.
// A part never exceeds partSeconds when the stream allows a cut in time
// (CFR, B-frame groups shorter than a part); the part that would carry a
// frame past it is ended before that frame.
import { EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, Mp4OutputFormat, NullTarget, Output } from 'mediabunny';
import { fragmentPayloadBytes, parseFragmentTiming, parseInitSegment, type TrackInfo } from '../media/fmp4.ts';
import type { AudioConfig, VideoConfig } from '../media/media-config.ts';
import { opusPacketDuration } from '../media/opus.ts';
import type { PublishLimits } from './publish-limits.ts';

export interface SegmentOutput {
  data: Uint8Array;
  /** Media duration in seconds, from the fragment itself. */
  duration: number;
  /** Presentation time of its first frame (of its video, when it has video), in seconds on its init segment's timeline. */
  startSeconds: number;
  /** Wall-clock ms at which the segment's first video frame (first audio frame, with no video) arrived. */
  arrivedAt: number;
  /** Set on the first segment after a new init segment. */
  initGeneration: number;
  /** The RTMP timestamp (decode time, ms) of the keyframe that starts it: the same in every track of a multitrack publish. */
  startDtsMs: number;
}

/** An LL-HLS part: one fragment (moof + mdat) of the segment being cut. */
export interface PartOutput {
  data: Uint8Array;
  /** Its index in its segment, from 0. */
  index: number;
  /** Media duration in seconds (its video's, when it has video). */
  duration: number;
  /** It starts with a keyframe (every audio-only part does): a player can start decoding with it. */
  independent: boolean;
  initGeneration: number;
}

export interface FragmenterSink {
  onInit(init: Uint8Array, generation: number): void;
  /** With parts on: a part of the segment being cut, before the segment itself (onSegment) once its last part is out. */
  onPart?(part: PartOutput): void;
  /** With parts on: the parts of an unfinished segment were dropped (the muxer failed): no segment follows them. */
  onPartsAbandoned?(): void;
  onSegment(segment: SegmentOutput): void;
  onDroppedPacket(reason: DropReason): void;
  onMuxerError(error: unknown): void;
}

export type DropReason = 'before_first_keyframe' | 'timestamp_regression' | 'muxer_error' | 'no_audio_track' | 'no_video_track';

interface KeyframeArrival {
  pts: number;
  arrivedAt: number;
  dtsMs: number;
}

/** mediabunny's Target write hook: internal (not in its typings), what every write of its muxer goes through. */
interface TargetInternals {
  _write(data: Uint8Array, pos: number): void;
}
const nullTargetWrite = (NullTarget.prototype as unknown as TargetInternals)._write;
if (typeof nullTargetWrite !== 'function') throw new Error('this mediabunny version has no Target._write; the fragmenter needs it (see SegmentTarget)');

/**
 * A target that keeps nothing but passes every write (with its position) on.
 * A segment is assembled from these: mediabunny's own onMdat callback gathers
 * the mdat into a buffer that starts at 1 KiB and doubles, copying as it
 * grows, and a segment then needs moof + mdat joined again; here each
 * frame's bytes are copied once, into a buffer of the segment's exact size.
 */
class SegmentTarget extends NullTarget {
  onWrite: ((data: Uint8Array, pos: number) => void) | undefined;

  _write(data: Uint8Array, pos: number): void {
    nullTargetWrite.call(this, data, pos);
    this.onWrite?.(data, pos);
  }
}

/** A segment being assembled: the moof, then the mdat as its writes arrive. */
interface SegmentCapture {
  data: Uint8Array;
  moof: Uint8Array;
  /** Muxer position of the mdat box, and of the segment's end. */
  mdatAt: number;
  end: number;
}

const BOX_HEADER_BYTES = 8;

/**
 * Room kept below partSeconds: frame times arrive in whole milliseconds and
 * the muxer's own timescale rounds again, so a part planned to the
 * millisecond could end a hair past the target.
 */
const PART_MARGIN_SECONDS = 0.002;

/**
 * An audio-only timeline that jumps back by more than this is a new timeline
 * (an encoder restarted without reconnecting); smaller steps back are single
 * bad packets, dropped.
 */
const AUDIO_TIMELINE_RESET_SECONDS = 1;

/** One mediabunny Output: everything between two init segments. */
class Generation {
  readonly output: Output;
  readonly video: EncodedVideoPacketSource | undefined;
  readonly audio: EncodedAudioPacketSource | undefined;
  private ftyp: Uint8Array | undefined;
  private tracks: Map<number, TrackInfo> | undefined;
  private capture: SegmentCapture | undefined;
  private firstVideoPacket = true;
  private firstAudioPacket = true;
  /**
   * Keyframes fed but not yet matched to a segment, to give each segment its
   * arrival time (with no video track, every audio frame is a keyframe).
   */
  private readonly keyframes: KeyframeArrival[] = [];
  /** Offset between the presentation times we feed and those mediabunny writes. */
  private ptsShift: number | undefined;
  /** Presentation time of the keyframe that opened the segment being fed (streams with video). */
  segmentStartPts: number | undefined;
  /**
   * Where the fragment being fed began, by the cut rule that applies
   * (mediabunny's own with one track, the forced cut with both): what the
   * publish limits count as held.
   */
  fragmentStartPts: number | undefined;
  /**
   * An audio frame has been queued. mediabunny writes the init segment at the
   * first cut with the tracks that have had a packet, so no cut comes before.
   */
  audioQueued = false;
  /** With audio, the last video frame, fed once the next one shows whether a cut comes between them. */
  heldVideo: Step | undefined;
  /** Largest video pts in the GOP being fed, and in the one before it. */
  gopMaxPts = -Infinity;
  prevGopMaxPts = -Infinity;
  lastVideoDts = -Infinity;
  lastAudioDts = -Infinity;
  failed = false;
  /** With parts: presentation time the part being fed starts at (on the timeline the muxer's decode times follow). */
  partStartPts: number | undefined;
  /** With parts: how many parts of the segment being cut have been handed over. */
  private partCount = 0;
  /**
   * With parts: the segment being cut, written part by part where it will
   * stay (each part handed over is a view of it), so a segment's bytes are
   * allocated and copied once, not once as parts and again as the segment
   * (the allocation rate is what the ingest's garbage collection follows).
   * Sized from the previous segment; grown by copying when a segment is larger.
   */
  private segmentBytes: Uint8Array | undefined;
  private segmentLength = 0;
  private lastSegmentLength = 0;
  /** With parts: the part being written starts with a keyframe. */
  partIndependent = true;

  /** Shortest segment: a keyframe at least this far past the segment's first cuts it. */
  readonly minimumSegmentSeconds: number;

  constructor(
    readonly number: number,
    readonly baseDtsMs: number,
    segmentSeconds: number,
    private readonly videoConfig: VideoConfig | undefined,
    private readonly audioConfig: AudioConfig | undefined,
    private readonly sink: FragmenterSink,
    /** LL-HLS part duration; 0: no parts, a fragment is a segment. */
    readonly partSeconds = 0,
  ) {
    this.minimumSegmentSeconds = Math.max(0.1, segmentSeconds - (videoConfig ? 0.05 : 0.001));
    const target = new SegmentTarget();
    target.onWrite = (data, pos) => this.onWrite(data, pos);
    this.output = new Output({
      target,
      format: new Mp4OutputFormat({
        fastStart: 'fragmented',
        // Cut at the first keyframe at or after the target; the small margin
        // keeps a 30 fps GOP of exactly the target from waiting for the next one.
        // With no video every frame is a keyframe, so the cut can fall on the
        // target itself (less a hair for float error in the frame times).
        // With parts every cut is forced (see the top of this file).
        minimumFragmentDuration: partSeconds > 0 ? Number.MAX_SAFE_INTEGER : this.minimumSegmentSeconds,
        // mediabunny hands each callback a buffer of its own (its writer
        // allocates a fresh one per tracked write), so none is copied here.
        onFtyp: (data) => {
          this.ftyp = data;
        },
        onMoov: (data) => {
          const init = concat(this.ftyp ?? new Uint8Array(), data);
          this.tracks = parseInitSegment(init);
          this.sink.onInit(init, this.number);
        },
        // The mdat follows the moof at once: its writes complete the segment (onWrite).
        onMoof: (moof, at) => {
          if (this.capture) throw new Error('a fragment began before the previous one was complete');
          const payload = fragmentPayloadBytes(moof);
          const mdatAt = at + moof.length;
          const size = moof.length + BOX_HEADER_BYTES + payload;
          const data = this.partSeconds > 0 ? this.nextPartBytes(size) : new Uint8Array(size);
          data.set(moof, 0);
          this.capture = { data, moof, mdatAt, end: mdatAt + BOX_HEADER_BYTES + payload };
        },
      }),
    });
    if (videoConfig) {
      this.video = new EncodedVideoPacketSource(videoConfig.format);
      this.output.addVideoTrack(this.video);
    }
    if (audioConfig) {
      this.audio = new EncodedAudioPacketSource(audioConfig.format);
      this.output.addAudioTrack(this.audio);
    }
  }

  async addVideo(pts: number, keyframe: boolean, data: Uint8Array, arrivedAt: number, duration: number, dtsMs: number): Promise<void> {
    if (!this.video || !this.videoConfig) return;
    if (keyframe) this.keyframes.push({ pts, arrivedAt, dtsMs });
    const packet = new EncodedPacket(data, keyframe ? 'key' : 'delta', pts, duration);
    if (this.firstVideoPacket) {
      this.firstVideoPacket = false;
      await this.video.add(packet, {
        decoderConfig: {
          codec: this.videoConfig.codec,
          codedWidth: this.videoConfig.width,
          codedHeight: this.videoConfig.height,
          description: this.videoConfig.description,
        },
      });
    } else {
      await this.video.add(packet);
    }
  }

  async addAudio(pts: number, data: Uint8Array, arrivedAt: number): Promise<void> {
    if (!this.audio || !this.audioConfig) return;
    if (!this.video) this.keyframes.push({ pts, arrivedAt, dtsMs: this.baseDtsMs + Math.round(pts * 1000) });
    const duration = this.audioConfig.format === 'opus' ? opusPacketDuration(data) : 1024 / this.audioConfig.sampleRate;
    const packet = new EncodedPacket(data, 'key', pts, duration);
    if (this.firstAudioPacket) {
      this.firstAudioPacket = false;
      await this.audio.add(packet, {
        decoderConfig: {
          codec: this.audioConfig.codec,
          sampleRate: this.audioConfig.sampleRate,
          numberOfChannels: this.audioConfig.channels,
          description: this.audioConfig.description,
        },
      });
    } else {
      await this.audio.add(packet);
    }
  }

  /** Copies a muxer write that falls in the segment being assembled; hands the segment over once whole. */
  private onWrite(data: Uint8Array, pos: number): void {
    const capture = this.capture;
    if (!capture) return;
    const from = Math.max(pos, capture.mdatAt);
    const to = Math.min(pos + data.length, capture.end);
    if (to <= from) return;
    const base = capture.moof.length - capture.mdatAt;
    capture.data.set(to - from === data.length ? data : data.subarray(from - pos, to - pos), base + from);
    // The mdat header is written first (twice: size 0, then its size), the frames after it, in order.
    if (to < capture.end || from < capture.mdatAt + BOX_HEADER_BYTES) return;
    this.capture = undefined;
    if (!this.tracks) return;
    if (this.partSeconds > 0) {
      const timing = parseFragmentTiming(capture.moof, this.tracks, this.partIndependent);
      // Counted apart from the call: a sink without onPart (a multitrack rendition) still gets its segments.
      const index = this.partCount++;
      this.sink.onPart?.({
        data: capture.data,
        index,
        duration: timing.videoDuration ?? timing.duration,
        independent: this.partIndependent,
        initGeneration: this.number,
      });
      return;
    }
    this.emitSegment(capture.data);
  }

  /** With parts: room for the next part at the end of the segment being cut. */
  private nextPartBytes(size: number): Uint8Array {
    const end = this.segmentLength + size;
    if (!this.segmentBytes || end > this.segmentBytes.length) {
      // A tenth over the last segment: most segments fit at once; one that does not is copied once per doubling.
      const grown = Buffer.allocUnsafeSlow(Math.max(end, Math.ceil(this.lastSegmentLength * 1.1), (this.segmentBytes?.length ?? 0) * 2));
      if (this.segmentBytes) grown.set(this.segmentBytes.subarray(0, this.segmentLength));
      this.segmentBytes = grown;
    }
    const part = this.segmentBytes.subarray(this.segmentLength, end);
    this.segmentLength = end;
    return part;
  }

  /** With parts: the segment whose parts have been handed over is complete. */
  endSegment(): void {
    if (this.partCount === 0 || !this.segmentBytes) return;
    const data = this.segmentBytes.subarray(0, this.segmentLength);
    this.lastSegmentLength = this.segmentLength;
    this.segmentBytes = undefined;
    this.segmentLength = 0;
    this.partCount = 0;
    this.emitSegment(data);
  }

  /** With parts: the muxer failed, so the parts of the segment being cut will never make one. */
  abandonParts(): void {
    const handedOver = this.partCount > 0;
    this.segmentBytes = undefined;
    this.segmentLength = 0;
    this.partCount = 0;
    if (handedOver) this.sink.onPartsAbandoned?.();
  }

  private emitSegment(data: Uint8Array): void {
    if (!this.tracks) return;
    const timing = parseFragmentTiming(data, this.tracks);
    const start = this.keyframeAt(timing.videoStart ?? timing.start);
    this.sink.onSegment({
      data,
      duration: timing.duration,
      startSeconds: timing.videoStart ?? timing.start,
      arrivedAt: start?.arrivedAt ?? Date.now(),
      initGeneration: this.number,
      startDtsMs: start?.dtsMs ?? this.baseDtsMs + Math.round((timing.videoStart ?? timing.start) * 1000),
    });
  }

  /**
   * Ends the fragment with what has been fed so far, before the keyframe that
   * starts the next one is fed (see the top of this file).
   */
  async cut(): Promise<void> {
    const muxer = (this.output as unknown as { _muxer?: { forceFragmentFinalization?: () => Promise<void> } })._muxer;
    if (typeof muxer?.forceFragmentFinalization === 'function') await muxer.forceFragmentFinalization();
  }

  /** The keyframe (its arrival time and RTMP timestamp) that starts a segment whose video begins at `mediaStart`. */
  private keyframeAt(mediaStart: number): KeyframeArrival | undefined {
    const first = this.keyframes[0];
    if (!first) return undefined;
    this.ptsShift ??= mediaStart - first.pts;
    let best = 0;
    for (let i = 1; i < this.keyframes.length; i++) {
      if (Math.abs(this.keyframes[i]!.pts + this.ptsShift - mediaStart) < Math.abs(this.keyframes[best]!.pts + this.ptsShift - mediaStart)) best = i;
    }
    const found = this.keyframes[best]!;
    this.keyframes.splice(0, best + 1);
    return found;
  }
}

/**
 * One step for mediabunny, queued: a packet to feed, or a generation to start
 * or finish. A plain record rather than a closure, since there is one per packet.
 */
interface Step {
  gen: Generation;
  kind: 'start' | 'video' | 'audio' | 'cut' | 'finish';
  /** A cut that ends a segment (with parts on; without, every cut does). */
  endsSegment?: boolean;
  pts: number;
  /** A video frame's duration as fed (see Generation.frameInterval). */
  duration: number;
  /** A frame: a keyframe. A cut: the part after it starts with one. */
  keyframe: boolean;
  data: Uint8Array;
  arrivedAt: number;
  /** A video frame's RTMP timestamp. */
  dtsMs: number;
}

const NO_DATA = new Uint8Array(0);

export class Fragmenter {
  private videoConfig: VideoConfig | undefined;
  private audioConfig: AudioConfig | undefined;
  private generation: Generation | undefined;
  private generationCount = 0;
  /** Steps are fed to mediabunny one at a time, in arrival (decode) order, by one pump. */
  private readonly steps: Step[] = [];
  private stepAt = 0;
  /** The pump that feeds the steps, while it runs. */
  private pumping: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly segmentSeconds: number,
    private readonly sink: FragmenterSink,
    /** The bounds of one publish (publish-limits.ts); they throw PublishLimitError, which ends it. */
    private readonly limits?: PublishLimits,
    /**
     * Another video track of a multitrack publish: its timeline is the
     * source's (the fragmenter of track 0), so its segments' decode times are
     * the source's. It starts with the first keyframe once the source has
     * begun, and starts over (a new init segment) when the source does.
     */
    private readonly timelineOf?: Fragmenter,
    /** LL-HLS part duration in seconds (sink.onPart); 0: no parts. */
    private readonly partSeconds = 0,
  ) {}

  /** The RTMP timestamp the current init segment's timeline starts at (its media time 0); undefined before the first keyframe. */
  get timelineBaseMs(): number | undefined {
    const gen = this.generation;
    return gen && !gen.failed ? gen.baseDtsMs : undefined;
  }

  setVideoConfig(config: VideoConfig): void {
    const changed = this.videoConfig !== undefined && !sameConfig(this.videoConfig, config);
    // Video that starts after an audio-only stream has begun needs a track the
    // running init segment lacks: start over at the next keyframe.
    const late = this.generation !== undefined && this.generation.video === undefined;
    this.videoConfig = config;
    // A new SPS or sequence header (resolution or codec change in OBS) needs a new init segment.
    if (changed || late) this.retireGeneration();
  }

  setAudioConfig(config: AudioConfig): void {
    const changed = this.audioConfig !== undefined && !sameConfig(this.audioConfig, config);
    // Audio that starts after video has begun (its header comes late) needs a
    // track the running init segment lacks: start over at the next keyframe.
    const late = this.generation !== undefined && this.generation.audio === undefined;
    this.audioConfig = config;
    if (changed || late) this.retireGeneration();
  }

  video(dtsMs: number, compositionOffsetMs: number, keyframe: boolean, data: Uint8Array, arrivedAt: number): void {
    if (this.closed) return;
    const parts = this.partSeconds > 0;
    this.limits?.pace('video', dtsMs);
    let gen = this.generation;
    // A track following the source's timeline starts over at its first keyframe after the source did.
    if (this.timelineOf && gen && keyframe && this.timelineOf.timelineBaseMs !== gen.baseDtsMs) {
      this.retireGeneration();
      gen = undefined;
    }
    if (!gen || gen.failed) {
      const base = this.timelineOf ? this.timelineOf.timelineBaseMs : dtsMs;
      if (!keyframe || !this.videoConfig || base === undefined || dtsMs < base) {
        this.sink.onDroppedPacket('before_first_keyframe');
        return;
      }
      if (gen) this.retireGeneration();
      gen = this.startGeneration(base);
    }
    if (!gen.video) {
      // Frames with no sequence header while an audio-only stream runs: nothing to decode them with.
      this.sink.onDroppedPacket('no_video_track');
      return;
    }
    let pts = (dtsMs + compositionOffsetMs - gen.baseDtsMs) / 1000;
    let dts = (dtsMs - gen.baseDtsMs) / 1000;
    if (dts < gen.lastVideoDts || pts < gen.prevGopMaxPts) {
      if (!keyframe) {
        this.sink.onDroppedPacket('timestamp_regression');
        return;
      }
      // A keyframe that goes back in time is a new timeline (an encoder that
      // restarted without reconnecting, a 32-bit timestamp wrap): dropping
      // everything after it would end the stream, so start over with a new
      // init segment after a discontinuity.
      this.retireGeneration();
      const base = this.timelineOf?.timelineBaseMs ?? dtsMs;
      if (dtsMs < base) {
        this.sink.onDroppedPacket('timestamp_regression');
        return;
      }
      gen = this.startGeneration(base);
      pts = (dtsMs + compositionOffsetMs - base) / 1000;
      dts = (dtsMs - base) / 1000;
    }
    if (keyframe) {
      gen.prevGopMaxPts = Math.max(gen.prevGopMaxPts, gen.gopMaxPts);
      gen.gopMaxPts = pts;
      this.limits?.keyframe(dtsMs);
      const first = gen.fragmentStartPts === undefined;
      // With an audio track (or parts) only the forced cut below starts a fragment: mediabunny waits for a sample on every track.
      if (first || (!gen.audio && !parts && pts - gen.fragmentStartPts! >= gen.minimumSegmentSeconds)) {
        this.limits?.fragmentStarted(dtsMs, { init: first });
        gen.fragmentStartPts = pts;
      }
      if (gen.segmentStartPts === undefined) {
        gen.segmentStartPts = pts;
        gen.partStartPts = pts;
      } else if ((gen.audioQueued || (parts && !gen.audio)) && pts - gen.segmentStartPts >= gen.minimumSegmentSeconds) {
        this.limits?.fragmentStarted(dtsMs);
        gen.fragmentStartPts = pts;
        // mediabunny would wait for the first audio frame past this keyframe: cut now. The GOP's
        // last frame (last in decode order, shown last) lasts until this keyframe is shown.
        const held = gen.heldVideo;
        if (held) held.duration = Math.max(0, pts - gen.prevGopMaxPts);
        this.feedHeldVideo(gen);
        this.enqueue(gen, 'cut', 0, 0, true, NO_DATA, 0, 0, true);
        gen.segmentStartPts = pts;
        gen.partStartPts = pts;
      } else if (parts) this.cutPartBefore(gen, pts, gen.prevGopMaxPts, true, dtsMs);
    } else {
      if (parts) this.cutPartBefore(gen, pts, gen.gopMaxPts, false, dtsMs);
      gen.gopMaxPts = Math.max(gen.gopMaxPts, pts);
    }
    gen.lastVideoDts = dts;
    this.limits?.hold(data.length, dtsMs);
    if (!gen.audio && !parts) {
      this.enqueue(gen, 'video', pts, 0, keyframe, data, arrivedAt, dtsMs);
      return;
    }
    this.feedHeldVideo(gen);
    gen.heldVideo = { gen, kind: 'video', pts, duration: 0, keyframe, data, arrivedAt, dtsMs };
  }

  /**
   * With parts: ends the part before the video frame at `pts` (not yet fed;
   * `maxPtsBefore`: the largest presentation time fed before it in its GOP)
   * when carrying that frame would take the part past partSeconds, and the
   * cut is allowed there (see the top of this file).
   */
  private cutPartBefore(gen: Generation, pts: number, maxPtsBefore: number, keyframe: boolean, dtsMs: number): void {
    const held = gen.heldVideo;
    if (!held || gen.partStartPts === undefined || (gen.audio && !gen.audioQueued) || pts <= maxPtsBefore) return;
    // The frame interval, from the decode times the publisher sent.
    const interval = Math.max(0, (dtsMs - held.dtsMs) / 1000);
    if (pts + interval - gen.partStartPts <= this.partSeconds - PART_MARGIN_SECONDS) return;
    // The muxer's decode times are the batch's presentation times sorted: the
    // held frame's is maxPtsBefore, and the next part's first is one interval
    // on (a keyframe: its own presentation time).
    held.duration = keyframe ? Math.max(0, pts - maxPtsBefore) : interval;
    this.feedHeldVideo(gen);
    this.enqueue(gen, 'cut', 0, 0, keyframe, NO_DATA, 0);
    gen.partStartPts = maxPtsBefore + held.duration;
  }

  private feedHeldVideo(gen: Generation): void {
    const held = gen.heldVideo;
    if (!held) return;
    gen.heldVideo = undefined;
    this.steps.push(held);
    this.pumping ??= this.pump();
  }

  /**
   * Feeds one audio frame. With no video configuration (an audio-only
   * publish: a radio show, a podcast) audio starts the packaging itself.
   */
  audio(dtsMs: number, data: Uint8Array, arrivedAt: number = Date.now()): void {
    if (this.closed) return;
    this.limits?.pace('audio', dtsMs);
    let gen = this.generation;
    const audioOnly = this.videoConfig === undefined && this.audioConfig !== undefined;
    if ((!gen || gen.failed) && audioOnly) {
      if (gen) this.retireGeneration();
      gen = this.startGeneration(dtsMs);
    }
    if (!gen || gen.failed || !gen.audio) {
      this.sink.onDroppedPacket(!gen || gen.failed ? 'before_first_keyframe' : 'no_audio_track');
      return;
    }
    let pts = (dtsMs - gen.baseDtsMs) / 1000;
    if (!gen.video && pts < gen.lastAudioDts - AUDIO_TIMELINE_RESET_SECONDS) {
      // With no video, every frame is a keyframe: a timeline that jumps far
      // back starts over after a discontinuity, as a video keyframe would.
      this.retireGeneration();
      gen = this.startGeneration(dtsMs);
      pts = 0;
    }
    if (pts < 0) {
      this.sink.onDroppedPacket('before_first_keyframe');
      return;
    }
    if (pts < gen.lastAudioDts) {
      this.sink.onDroppedPacket('timestamp_regression');
      return;
    }
    gen.lastAudioDts = pts;
    if (!gen.video) {
      // Audio only: mediabunny cuts at the first frame at least the minimum past the fragment's start.
      const first = gen.fragmentStartPts === undefined;
      if (first || pts - gen.fragmentStartPts! >= gen.minimumSegmentSeconds) {
        this.limits?.fragmentStarted(dtsMs, { audioOnly: true, init: first });
        gen.fragmentStartPts = pts;
        // With parts the cut is forced here, as mediabunny's would be.
        if (this.partSeconds > 0 && !first) this.enqueue(gen, 'cut', 0, 0, true, NO_DATA, 0, 0, true);
        gen.partStartPts = pts;
      } else if (this.partSeconds > 0 && gen.partStartPts !== undefined) {
        const frame = this.audioConfig!.format === 'opus' ? opusPacketDuration(data) : 1024 / this.audioConfig!.sampleRate;
        if (pts + frame - gen.partStartPts > this.partSeconds - PART_MARGIN_SECONDS) {
          this.enqueue(gen, 'cut', 0, 0, true, NO_DATA, 0);
          gen.partStartPts = pts;
        }
      }
    }
    this.limits?.hold(data.length, dtsMs);
    gen.audioQueued = true;
    this.enqueue(gen, 'audio', pts, 0, true, data, arrivedAt);
  }

  /** Flushes the last segment. Safe to call more than once. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.retireGeneration();
    }
    while (this.pumping) await this.pumping;
  }

  private startGeneration(baseDtsMs: number): Generation {
    const gen = new Generation(++this.generationCount, baseDtsMs, this.segmentSeconds, this.videoConfig, this.audioConfig, this.sink, this.partSeconds);
    this.generation = gen;
    this.enqueue(gen, 'start', 0, 0, false, NO_DATA, 0);
    return gen;
  }

  private retireGeneration(): void {
    const gen = this.generation;
    if (!gen) return;
    this.generation = undefined;
    this.feedHeldVideo(gen);
    this.enqueue(gen, 'finish', 0, 0, false, NO_DATA, 0);
  }

  private enqueue(
    gen: Generation,
    kind: Step['kind'],
    pts: number,
    duration: number,
    keyframe: boolean,
    data: Uint8Array,
    arrivedAt: number,
    dtsMs = 0,
    endsSegment = false,
  ): void {
    this.steps.push({ gen, kind, pts, duration, keyframe, data, arrivedAt, dtsMs, endsSegment });
    this.pumping ??= this.pump();
  }

  /** Feeds the queued steps in order until none is left. */
  private async pump(): Promise<void> {
    while (this.stepAt < this.steps.length) {
      const step = this.steps[this.stepAt]!;
      this.steps[this.stepAt++] = undefined as unknown as Step; // let the packet go once fed
      if (this.stepAt === this.steps.length) {
        this.steps.length = 0;
        this.stepAt = 0;
      }
      await this.run(step);
    }
    this.pumping = undefined;
  }

  private async run(step: Step): Promise<void> {
    const { gen } = step;
    if (step.kind === 'finish') {
      if (gen.failed || gen.output.state !== 'started') return;
      try {
        await gen.output.finalize();
        gen.endSegment();
      } catch (error) {
        gen.abandonParts();
        this.sink.onMuxerError(error);
      }
      return;
    }
    if (gen.failed) return;
    try {
      if (step.kind === 'start') await gen.output.start();
      else if (step.kind === 'cut') {
        await gen.cut();
        gen.partIndependent = step.keyframe;
        if (step.endsSegment) gen.endSegment();
      } else if (step.kind === 'video') await gen.addVideo(step.pts, step.keyframe, step.data, step.arrivedAt, step.duration, step.dtsMs);
      else await gen.addAudio(step.pts, step.data, step.arrivedAt);
    } catch (error) {
      gen.failed = true;
      gen.abandonParts();
      if (step.kind === 'video' || step.kind === 'audio') this.sink.onDroppedPacket('muxer_error');
      this.sink.onMuxerError(error);
      await gen.output.cancel().catch(() => undefined);
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function sameConfig(a: VideoConfig | AudioConfig, b: VideoConfig | AudioConfig): boolean {
  return a.format === b.format && a.description.length === b.description.length && a.description.every((v, i) => v === b.description[i]);
}
