// Keeps an LL-HLS viewer at hls.js's latency target (PART-HOLD-BACK, three
// parts): a gentle speed-up whenever playback is behind it.
//
// Why not hls.js's own: hls.js 1.7 changes the playback rate towards its
// target only while more than 1 s is buffered ahead of the playhead
// (latency-controller.ts, `forwardBufferLength > 1`). At a target of three
// 0.333 s parts (1.0 s) the buffer ahead is the target minus the part in
// progress, under 1 s, so whatever start-up or a stall left above the target
// stays: measured 1.25–1.30 s behind the live edge against a 1.0 s target
// (issue 20, bench/ll-latency.ts). This does the same catch-up, with hls.js's
// rate curve, while at least two parts are buffered ahead. At start-up it
// jumps instead: hls.js starts at the keyframe before its start position
// (2.2 s behind the edge with 2 s keyframes, measured), which would take 8 s
// to catch up at 1.15×; the jump is taken only once playback runs, into
// what is already buffered, keeping two parts ahead, and when it gains at
// least half a second (a first version jumped 0.3 s with one part left
// ahead, and stalled).
// The page turns hls.js's own rate control off (maxLiveSyncPlaybackRate 1)
// while this one runs: only for playlists with parts; plain HLS keeps
// hls.js's.
(() => {
  var MAX_RATE = 1.15;
  /** Parts that stay buffered ahead of the playhead, whatever the catch-up. */
  var FLOOR_PARTS = 2;
  /** Start-up: a jump is taken only between these seconds of playback, and only when it gains this much. */
  var JUMP_AFTER_SECONDS = 0.5;
  var JUMP_WITHIN_SECONDS = 4;
  var MIN_JUMP_SECONDS = 0.5;

  /** hls.js's rate curve (latency-controller.ts): 1.05× a tenth of a second behind, 1.1× at 0.3 s, capped. */
  function rateFor(distance) {
    var rate = Math.round((2 / (1 + Math.exp(-0.75 * distance))) * 20) / 20;
    return Math.min(MAX_RATE, Math.max(1, rate));
  }

  /**
   * tick(playingSeconds, ahead) every few hundred milliseconds from the start
   * of playback, `ahead` being the seconds buffered ahead of the playhead (0
   * when it is outside what is buffered: the page's bufferAhead()); a no-op
   * until the playlist has parts. Returns what it did, for the page's stats.
   */
  window.tteokLiveCatchUp = function (hls, video) {
    return function tick(playingSeconds, ahead) {
      var details = hls.latestLevelDetails;
      var partTarget = details && details.partTarget;
      if (!partTarget || !details.live) return 'off';
      if (hls.config.maxLiveSyncPlaybackRate !== 1) hls.config.maxLiveSyncPlaybackRate = 1;
      var latency = hls.latency;
      var target = hls.targetLatency;
      if (typeof latency !== 'number' || typeof target !== 'number' || ahead <= 0 || video.paused || video.seeking) {
        // Nothing to play ahead (start-up, a stall): never faster than real time.
        if (video.playbackRate > 1) video.playbackRate = 1;
        return 'idle';
      }
      var distance = latency - target;
      var floor = FLOOR_PARTS * partTarget;
      var jump;
      if (playingSeconds >= JUMP_AFTER_SECONDS && playingSeconds < JUMP_WITHIN_SECONDS) {
        jump = Math.min(distance, ahead - floor);
        if (jump >= MIN_JUMP_SECONDS) {
          video.currentTime += jump;
          if (video.playbackRate !== 1) video.playbackRate = 1;
          return 'jumped';
        }
      }
      var rate = distance > 0 && distance < target + details.targetduration && ahead > floor ? rateFor(distance) : 1;
      if (video.playbackRate !== rate) video.playbackRate = rate;
      return rate > 1 ? 'catching-up' : 'at-target';
    };
  };
})();
