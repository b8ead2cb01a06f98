// hls.js's playlist loader, made to catch the live edge as it moves.
//
// Without blocking reload (a plain origin: S3 behind a CDN, the one-machine
// origin), hls.js reloads a live playlist on a fixed grid of one segment
// duration, anchored at its first load: the grid's phase against the moments
// the ingest lists a new segment is chance, so each session loads playlists
// that are 0 to 1 segment old, and plays that much further behind (measured:
// 0.08 to 0.80 s with 1 s segments on either origin, the same setup, only
// the session differing). This loader looks at what each reload brought:
// when its newest segment ended long enough ago that the next is due before
// the reload would be late anyway, it fetches again when that segment is due
// (then every RETRY_MS until the playlist moves on, within one target
// duration) and hands hls.js the newer playlist. hls.js then learns of each
// segment about when it is listed, whatever the grid's phase.
// Playlists with blocking reload (LL-HLS: CAN-BLOCK-RELOAD), ended ones,
// multivariant playlists and playlists without program date times pass
// through unchanged. The due time is read from EXT-X-PROGRAM-DATE-TIME
// against this browser's clock, as the page's latency readout is; with a
// clock ahead of the server's the loader asks a little more often, behind it
// the loader holds nothing back.
(() => {
  // A playlist older than this share of its target duration is worth waiting past.
  var LATE_SHARE = 0.15;
  // Asked again this long after the next segment is due, and as often while it is not there.
  var DUE_MARGIN_MS = 40;
  var RETRY_MS = 100;

  /** The newest segment (its URI, wall-clock end and duration, ms) and the target duration (ms); null when there is nothing to wait for. */
  function liveEdge(text) {
    if (typeof text !== 'string' || text.indexOf('#EXT-X-STREAM-INF') !== -1) return null;
    if (text.indexOf('#EXT-X-ENDLIST') !== -1 || text.indexOf('CAN-BLOCK-RELOAD=YES') !== -1) return null;
    var target = /#EXT-X-TARGETDURATION:(\d+(?:\.\d+)?)/.exec(text);
    if (!target) return null;
    var lines = text.split('\n');
    var date = null;
    var duration = 0;
    var end = null;
    var uri = null;
    var last = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line.indexOf('#EXT-X-PROGRAM-DATE-TIME:') === 0) date = Date.parse(line.slice(25));
      else if (line.indexOf('#EXTINF:') === 0) duration = parseFloat(line.slice(8)) * 1000;
      else if (line && line[0] !== '#' && date !== null && !Number.isNaN(date)) {
        date += duration;
        end = date;
        uri = line;
        last = duration;
      }
    }
    return end === null ? null : { end: end, uri: uri, lastMs: last, targetMs: Number(target[1]) * 1000 };
  }

  window.tteokEdgeLoader = (Base) => {
    function EdgeLoader(config) {
      this.hlsConfig = config;
      this.inner = new Base(config);
      this.timer = null;
      this.done = false;
    }
    Object.defineProperty(EdgeLoader.prototype, 'stats', {
      get() {
        return this.inner.stats;
      },
    });
    Object.defineProperty(EdgeLoader.prototype, 'context', {
      get() {
        return this.inner.context;
      },
    });
    EdgeLoader.prototype.load = function (context, config, callbacks) {
      var self = this;
      var holdUntil = null; // ms (Date.now()): the latest this load waits for
      var first = null; // the edge the first answer had
      var attempt = (innerCallbacks) => self.inner.load(context, config, innerCallbacks);
      var wrapped = Object.assign({}, callbacks, {
        onSuccess(response, stats, ctx, details) {
          if (self.done) return;
          var edge = liveEdge(response.data);
          var now = Date.now();
          if (edge && first === null) {
            first = edge;
            const age = now - edge.end;
            // Worth waiting only when the playlist is late and the next segment is due within one target duration.
            if (age > LATE_SHARE * edge.targetMs && age < edge.targetMs) holdUntil = now + edge.targetMs;
          }
          var moved = edge && first && edge.uri !== first.uri;
          if (!edge || holdUntil === null || moved || now + RETRY_MS > holdUntil) {
            callbacks.onSuccess(response, stats, ctx, details);
            return;
          }
          var due = first.end + first.lastMs + DUE_MARGIN_MS;
          self.timer = setTimeout(
            () => {
              self.timer = null;
              if (self.done) return;
              self.inner.destroy();
              self.inner = new Base(self.hlsConfig);
              attempt(wrapped);
            },
            Math.max(RETRY_MS, due - now),
          );
        },
      });
      attempt(wrapped);
    };
    EdgeLoader.prototype.abort = function () {
      this.clear();
      this.inner.abort();
    };
    EdgeLoader.prototype.destroy = function () {
      this.done = true;
      this.clear();
      this.inner.destroy();
    };
    EdgeLoader.prototype.clear = function () {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
    };
    EdgeLoader.prototype.getCacheAge = function () {
      return this.inner.getCacheAge ? this.inner.getCacheAge() : null;
    };
    EdgeLoader.prototype.getResponseHeader = function (name) {
      return this.inner.getResponseHeader ? this.inner.getResponseHeader(name) : null;
    };
    return EdgeLoader;
  };
})();
