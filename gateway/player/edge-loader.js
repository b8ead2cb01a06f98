// hls.js's playlist loader: blocking playlist reload, done by the page, for
// origins that cannot hold a request (S3 behind a CDN, the one-machine
// origin).
//
// Without blocking reload hls.js reloads a live playlist on a fixed grid of
// one segment duration, anchored at its first load: the grid's phase against
// the moments the origin lists a new segment is chance, so each session
// loads playlists 0 to 1 segment old and plays that much further behind
// (measured: 0.08 to 0.80 s with 1 s segments on either origin, only the
// session differing). With CAN-BLOCK-RELOAD=YES hls.js instead asks for the
// next segment (`_HLS_msn=<n>`) as soon as it has a playlist, and the answer
// comes when that segment is listed. This loader says CAN-BLOCK-RELOAD=YES
// on the origin's behalf and answers such a request itself: it asks the
// origin (without the query) when the segment is due by the playlist's
// program date times, then every RETRY_MS, and answers once the playlist
// holds segment n, or with what it has after three target durations.
// Nothing is held back: the first answer listing segment n goes to hls.js.
//
// Playlists the origin serves with blocking reload itself (LL-HLS), ended,
// multivariant and without program date times pass through unchanged. The
// due time is read against this browser's clock, as the page's latency
// readout is; a clock ahead of the server's only means a few more requests.
(() => {
  // Asked this long after the next segment is due, then this often while it is not there.
  var DUE_MARGIN_MS = 40;
  var RETRY_MS = 100;
  var SERVER_CONTROL = '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES';
  var DIRECTIVES = /[?&]_HLS_(msn|part|skip)=[^&]*/g;

  /** What the loader needs of a live media playlist it may block for; null when it passes the playlist through. */
  function liveEdge(text) {
    if (typeof text !== 'string' || text.indexOf('#EXT-X-STREAM-INF') !== -1) return null;
    if (text.indexOf('#EXT-X-ENDLIST') !== -1 || text.indexOf('#EXT-X-SERVER-CONTROL') !== -1) return null;
    var target = /#EXT-X-TARGETDURATION:(\d+(?:\.\d+)?)/.exec(text);
    var sequence = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
    if (!target) return null;
    var lines = text.split('\n');
    var date = null;
    var duration = 0;
    var end = null;
    var last = 0;
    var count = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line.indexOf('#EXT-X-PROGRAM-DATE-TIME:') === 0) date = Date.parse(line.slice(25));
      else if (line.indexOf('#EXTINF:') === 0) duration = parseFloat(line.slice(8)) * 1000;
      else if (line && line[0] !== '#') {
        count++;
        if (date !== null && !Number.isNaN(date)) {
          date += duration;
          end = date;
          last = duration;
        }
      }
    }
    if (end === null || count === 0) return null;
    return { lastMsn: Number(sequence ? sequence[1] : 0) + count - 1, end: end, lastMs: last, targetMs: Number(target[1]) * 1000 };
  }

  /** The playlist as hls.js gets it: with blocking reload announced. */
  function announce(text) {
    var newline = text.indexOf('\n');
    return newline === -1 ? text : text.slice(0, newline + 1) + SERVER_CONTROL + '\n' + text.slice(newline + 1);
  }

  /** The next segment hls.js asks for (`_HLS_msn`), or null. */
  function requestedMsn(url) {
    var match = /[?&]_HLS_msn=(\d+)/.exec(url);
    return match ? Number(match[1]) : null;
  }

  window.tteokEdgeLoader = (Base) => {
    // Playlist URLs (without the query) this loader has announced blocking reload for.
    var emulated = {};
    function EdgeLoader(config) {
      this.hlsConfig = config;
      this.inner = new Base(config);
      this.outerContext = null;
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
        return this.outerContext;
      },
    });
    EdgeLoader.prototype.load = function (context, config, callbacks) {
      var self = this;
      this.outerContext = context;
      var plain = context.url.replace(DIRECTIVES, '').replace(/^([^?]*)&/, '$1?');
      var wanted = requestedMsn(context.url);
      if (wanted !== null && !emulated[plain]) {
        // The origin's own blocking reload (LL-HLS): not ours to answer.
        this.inner.load(context, config, callbacks);
        return;
      }
      var innerContext = Object.assign({}, context, { url: plain });
      var giveUpAt = null;
      // hls.js hears of its own request (the URL it asked for), whichever the origin was asked.
      var wrapped = {
        onError(error, _ctx, details, stats) {
          callbacks.onError(error, context, details, stats);
        },
        onTimeout(stats, _ctx, details) {
          callbacks.onTimeout(stats, context, details);
        },
        onAbort(stats, _ctx, details) {
          if (callbacks.onAbort) callbacks.onAbort(stats, context, details);
        },
        onProgress: callbacks.onProgress,
        onSuccess(response, stats, _ctx, details) {
          if (self.done) return;
          var edge = liveEdge(response.data);
          if (!edge) {
            delete emulated[plain];
            callbacks.onSuccess(response, stats, context, details);
            return;
          }
          emulated[plain] = true;
          var now = Date.now();
          if (giveUpAt === null) giveUpAt = now + 3 * edge.targetMs;
          if (wanted === null || edge.lastMsn >= wanted || now + RETRY_MS > giveUpAt) {
            callbacks.onSuccess(Object.assign({}, response, { data: announce(response.data) }), stats, context, details);
            return;
          }
          var due = edge.end + edge.lastMs + DUE_MARGIN_MS;
          self.timer = setTimeout(
            () => {
              self.timer = null;
              if (self.done) return;
              self.inner.destroy();
              self.inner = new Base(self.hlsConfig);
              self.inner.load(innerContext, config, wrapped);
            },
            Math.max(RETRY_MS, due - now),
          );
        },
      };
      this.inner.load(innerContext, config, wrapped);
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
