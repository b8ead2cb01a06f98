// The publish limits against what real encoders do, on a simulated clock: an
// hour of a steady 30 fps stream with audio, a start-up burst (the frames an
// encoder made while its publish was being admitted), a catch-up after a
// network stall, an encoder restarting its timeline, OBS's automatic keyframe
// interval; none may end a publish. And what only an attacker does: each
// bound, and a timeline that leaps back and forth.
import t from 'tap';
import { DEFAULT_PUBLISH_LIMITS, PublishLimits } from '../../../ingest/packager/publish-limits.ts';
import { PublishLimitError } from '../../../ingest/publish-errors.ts';

/** Limits on a clock the test moves; `segmentSeconds` 1, as the LiveStream default. */
function limits(segmentSeconds = 1) {
  let now = 0;
  const l = new PublishLimits(DEFAULT_PUBLISH_LIMITS, segmentSeconds, 0, () => now);
  return { l, at: (ms: number) => (now = ms) };
}

/** Feeds a steady stream (30 fps video, keyframe every `gopMs`, 1024-sample AAC at 48 kHz) from `fromMs` to `toMs` media time. */
function feed(
  l: PublishLimits,
  at: (ms: number) => void,
  fromMs: number,
  toMs: number,
  options: { gopMs?: number; wallOffsetMs?: number; wall?: (mediaMs: number) => number } = {},
): void {
  const gop = options.gopMs ?? 2000;
  let nextAudio = fromMs;
  let nextKeyframe = fromMs;
  let fragmentStart = fromMs;
  for (let ms = fromMs; ms < toMs; ms += 1000 / 30) {
    const dts = Math.round(ms);
    at(options.wall ? options.wall(dts) : dts + (options.wallOffsetMs ?? 0));
    const keyframe = ms >= nextKeyframe;
    l.pace('video', dts);
    if (keyframe) {
      nextKeyframe += gop;
      l.keyframe(dts);
      // The fragmenter's rule: a keyframe at least the target (less a hair) past the fragment's start cuts.
      if (dts - fragmentStart >= 950) {
        l.fragmentStarted(dts);
        fragmentStart = dts;
      }
    }
    l.hold(keyframe ? 60_000 : 8000, dts);
    for (; nextAudio <= ms; nextAudio += (1024 / 48000) * 1000) {
      l.pace('audio', Math.round(nextAudio));
      l.hold(400, Math.round(nextAudio));
    }
  }
}

t.test('real encoders are never refused', async (t) => {
  {
    const { l, at } = limits();
    l.fragmentStarted(0, { init: true });
    t.doesNotThrow(() => feed(l, at, 0, 3_600_000), 'an hour at 30 fps with audio, a keyframe every 2 s');
  }
  {
    const { l, at } = limits();
    l.fragmentStarted(0, { init: true });
    // 2 s of frames encoded while the publish was admitted arrive at once at 2 s, then real time.
    t.doesNotThrow(() => feed(l, at, 0, 60_000, { wall: (ms) => Math.max(2000, ms) }), 'a 2 s start-up burst');
  }
  {
    const { l, at } = limits();
    l.fragmentStarted(0, { init: true });
    // Real time for 20 s, 30 s of media held up by a slow link, then the backlog sent as fast as possible, then real time.
    t.doesNotThrow(() => feed(l, at, 0, 90_000, { wall: (ms) => (ms < 20_000 ? ms : ms < 50_000 ? 50_000 : ms) }), 'a catch-up of 30 s of media after a stall');
  }
  {
    const { l, at } = limits();
    l.fragmentStarted(0, { init: true });
    feed(l, at, 0, 10_000);
    l.fragmentStarted(0, { init: true }); // the encoder restarted: timestamps from 0 again, a new init segment
    t.doesNotThrow(() => feed(l, at, 0, 10_000, { wallOffsetMs: 10_000 }), 'an encoder restarting its timeline');
  }
  {
    const { l, at } = limits(4);
    l.fragmentStarted(0, { init: true });
    // OBS's keyframe interval 0 ("auto"): 250 frames, 10.4 s at 24 fps, and segments cut at each keyframe.
    t.doesNotThrow(() => feed(l, at, 0, 120_000, { gopMs: 10_416 }), "OBS's automatic keyframe interval");
  }
});

t.test('each bound ends the publish with its reason', async (t) => {
  const reason = (fn: () => void) => {
    try {
      fn();
    } catch (error) {
      if (error instanceof PublishLimitError) return error.reason;
      throw error;
    }
    return undefined;
  };
  {
    const { l, at } = limits();
    at(0);
    l.keyframe(0);
    t.equal(
      reason(() => {
        for (let ms = 0; ms < 20_000; ms += 33) {
          at(ms);
          l.pace('video', ms);
          l.hold(1000, ms);
        }
      }),
      'gop_too_long',
      'no keyframe for 12 s',
    );
  }
  {
    const { l, at } = limits();
    at(0);
    l.keyframe(0);
    t.equal(
      reason(() => {
        for (let i = 0; i < 100; i++) l.hold(1024 * 1024, 0);
      }),
      'fragment_too_large',
      '64 MiB at one timestamp',
    );
  }
  {
    const { l, at } = limits();
    at(0);
    t.equal(
      reason(() => {
        for (let ms = 0; ms < 60_000; ms += 2000) l.pace('video', ms);
      }),
      'ahead_of_real_time',
      'keyframes 2 s apart, sent at once',
    );
  }
  {
    const { l, at } = limits();
    at(0);
    t.equal(
      reason(() => {
        for (let i = 0; i < 1000; i++) l.pace('video', (i % 2) * 2000);
      }),
      'ahead_of_real_time',
      'a timeline leaping back and forth gains media time on every step forward',
    );
  }
  {
    const { l, at } = limits();
    at(0);
    t.equal(
      reason(() => {
        for (let i = 0; i < 100; i++) l.fragmentStarted(0, { init: true });
      }),
      'segment_rate',
      'a new init segment at every keyframe',
    );
  }
  {
    const { l, at } = limits();
    at(0);
    // Decode times stand still while composition offsets leap: segments cut on presentation time, with no media time.
    t.equal(
      reason(() => {
        for (let i = 0; i < 100; i++) {
          l.pace('video', 0);
          l.keyframe(0);
          l.fragmentStarted(0);
        }
      }),
      'segment_rate',
      'segments without media time',
    );
  }
});
