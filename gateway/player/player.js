// tteok's player page: lists the gateway's streams (kept current by its
// live-state events, /v1/streams/events) with a thumbnail of each live one,
// plays the chosen one with hls.js, close to the live edge, and shows how far
// behind live it is. A stream with an adaptive ladder gets a quality menu:
// Auto (hls.js picks by the measured bandwidth) or one rendition, and the
// rendition playing now.
// Plain browser JavaScript, no build step. Measurements are exposed on
// window.tteokStats for benchmarks and tests.
(() => {
  // Playlist loads: the stream may be between segments or restarting, so
  // retry quietly and quickly rather than fail.
  var RETRYING_LOAD_POLICY = {
    default: {
      maxTimeToFirstByteMs: 4000,
      maxLoadTimeMs: 8000,
      timeoutRetry: { maxNumRetry: 4, retryDelayMs: 250, maxRetryDelayMs: 1000 },
      errorRetry: { maxNumRetry: 6, retryDelayMs: 500, maxRetryDelayMs: 2000 },
    },
  };

  // hls.js by default sits three target durations behind the live edge
  // (liveSyncDurationCount: 3, about 3.2 s with 1 s segments). Ours aims at
  // 1.25 s behind the edge: the edge moves in whole segments, so much closer
  // than one segment and the buffer runs dry at every segment boundary (hls.js
  // will not go closer than one target duration anyway). Measured on one
  // machine with 1 s segments, this puts the frame on screen about 1.9 s
  // behind its arrival at the ingest, without stalls. Start-up and stalls (network, a slow segment)
  // leave the player further behind; it then plays up to 15 % faster until it
  // is back at the target, and jumps to the target if it falls more than 5 s
  // behind. hls.js does that rate catch-up only in lowLatencyMode, hence on
  // (with LL-HLS parts live-catch-up.js does it instead, closer to the edge);
  // its blocking reloads are done by edge-loader.js where the origin cannot.
  var HLS_CONFIG = {
    lowLatencyMode: true,
    liveSyncDuration: 1.25,
    liveMaxLatencyDuration: 5,
    maxLiveSyncPlaybackRate: 1.15,
    // After a stall hls.js moves the target back by this much per stall, at most one segment.
    liveSyncOnStallIncrease: 0.25,
    liveDurationInfinity: true,
    maxBufferLength: 4,
    maxMaxBufferLength: 8,
    backBufferLength: 8,
    initialLiveManifestSize: 1,
    startFragPrefetch: true,
    enableWorker: true,
    // Switching up: hls.js's default asks the measured bandwidth × 0.7 to carry
    // the higher rendition, made for its default buffer of three segments.
    // Ours is 1.25 s, so a switch up that the link only just carries stalls:
    // measured on a 1.5 Mbit/s emulated link (test/gateway/player/adaptive.test.ts),
    // 360p → 480p (0.93 Mbit/s) waited 0.5 s. Switch up only with more headroom.
    abrBandWidthUpFactor: 0.5,
    // The stream may be between segments or restarting: keep retrying quietly.
    manifestLoadPolicy: RETRYING_LOAD_POLICY,
    playlistLoadPolicy: RETRYING_LOAD_POLICY,
  };
  // ?target=<seconds> overrides the latency target (1 to 10), for benchmarks.
  var targetParam = Number(new URLSearchParams(location.search).get('target'));
  if (targetParam >= 1 && targetParam <= 10) {
    HLS_CONFIG.liveSyncDuration = targetParam;
    HLS_CONFIG.liveMaxLatencyDuration = Math.max(HLS_CONFIG.liveMaxLatencyDuration, targetParam + 3.5);
  }
  // The stream list follows the gateway's live-state events; it polls only
  // while the events are unavailable (no EventSource, or the gateway refused
  // the connection, e.g. over its cap), and tries the events again later.
  var LIST_REFRESH_MS = 2000;
  var EVENTS_RETRY_MS = 30000;
  // Events come in bursts (the current state on connecting): render once per burst.
  var EVENT_RENDER_DELAY_MS = 30;
  var STATS_INTERVAL_MS = 250;
  // The ingest replaces a thumbnail about every 10 s.
  var THUMBNAIL_REFRESH_MS = 10000;
  var MAX_SAMPLES = 2400; // 10 minutes at 4 samples a second

  var el = (id) => document.getElementById(id);
  var video = el('video');
  var ui = {
    list: el('streams'),
    title: el('title'),
    badge: el('badge'),
    overlay: el('overlay'),
    golive: el('golive'),
    message: el('message'),
    latency: el('latency'),
    median: el('median'),
    target: el('target'),
    buffer: el('buffer'),
    rate: el('rate'),
    stalls: el('stalls'),
    qualityControl: el('quality-control'),
    quality: el('quality'),
    playingLevel: el('playing-level'),
  };

  var stats = {
    stream: null, // "namespace/name"
    state: 'loading', // loading | live | offline | disabled | not-found | error
    playing: false, // frames advancing now
    currentTime: 0, // video.currentTime
    latency: null, // seconds, now - playingDate
    latencyMedian: null, // median of the samples taken while playing
    latencies: [], // samples (seconds), oldest first
    edgeDistance: null, // hls.latency: distance to the playlist's live edge as hls.js estimates it
    targetLatency: null, // hls.targetLatency
    bufferAhead: 0,
    playbackRate: 1,
    catchUp: 'off', // LL-HLS latency keeping (live-catch-up.js): off | idle | jumped | catching-up | at-target
    stalls: 0,
    playlistAges: [], // seconds: for each live playlist loaded, how long its newest segment had ended (by its program date time) when the answer came, oldest first
    waits: [], // { start, end } (ms): each time the video element waited for data (its waiting → playing events), start-up included
    waitingSince: null, // ms: the wait going on now
    playingSeconds: 0, // wall-clock seconds with frames advancing, this playback
    videoHeight: 0, // the picture on screen (video.videoHeight)
    errors: [],
    unsupportedCodec: null, // the MIME type this browser cannot decode, when that stopped playback
    hlsVersion: window.Hls ? window.Hls.version : null,
    listSource: null, // how the stream list is kept current: events | polling
    levels: [], // the renditions hls.js can play, as the quality menu labels them (index = hls.js level)
    levelDetails: [], // the same as { name, height, bitrate } (bitrate: the playlist's BANDWIDTH)
    level: null, // the level playing now (hls.js LEVEL_SWITCHED)
    levelName: null, // its label
    autoLevel: true, // hls.autoLevelEnabled: the quality menu's Auto
    levelSwitches: [], // { at: ms, level, name }, each switch hls.js made, oldest first
    thumbnails: {}, // "namespace/name" → 'loaded' | 'failed', the list page's posters
  };
  window.tteokStats = stats;

  // ?src=<playlist URL> plays a live HLS URL with the same tuned player,
  // without the gateway's stream list (benchmarks use it on other servers).
  // Only from this page's own origin or one the operator allows
  // (TTEOK_PLAYER_SRC_ORIGINS, handed over in a meta tag): anything else
  // would let a link show someone else's video under this site's name.
  var srcParam = new URLSearchParams(location.search).get('src');
  var srcUrl = srcParam === null ? null : allowedSource(srcParam);
  var srcMode = srcUrl !== null;
  var srcRefused = srcParam !== null && !srcMode;

  function allowedSource(value) {
    var url;
    try {
      url = new URL(value, location.href);
    } catch (err) {
      return null;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    var meta = document.querySelector('meta[name="tteok-src-origins"]');
    var allowed = meta ? meta.content.split(/\s+/).filter(Boolean) : [];
    return url.origin === location.origin || allowed.indexOf(url.origin) !== -1 ? url.href : null;
  }

  // ?token=<playback token> plays a private stream (the app's backend mints
  // it): the lookup with the token answers a playbackUrl that carries it.
  var tokenParam = new URLSearchParams(location.search).get('token');
  var privateUrls = {}; // "namespace/name" → tokenized playbackUrl; null while asked or refused
  var privateThumbnails = {}; // "namespace/name" → tokenized thumbnailUrl, from the same lookup
  var thumbnails = {}; // "namespace/name" → { url, objectUrl, failed } of the poster shown

  var streams = [];
  var selected = selectedFromUrl();
  var current = null; // the stream object being played
  var hls = null;
  var catchUp = null; // tick of live-catch-up.js for the playback going on
  var playingUrl = null;
  // A run this browser cannot decode (HEVC in most browsers): not retried until the stream goes offline.
  var undecodableUrl = null;

  function selectedFromUrl() {
    var q = new URLSearchParams(location.search).get('stream');
    var h = location.hash ? decodeURIComponent(location.hash.slice(1)) : null;
    return q || h || null;
  }

  function idOf(s) {
    return s.namespace + '/' + s.name;
  }

  function setMessage(text) {
    ui.message.textContent = text || '';
  }

  async function refreshList() {
    try {
      var res = await fetch('/v1/streams', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      var body = await res.json();
      streams = body.streams;
      renderList();
      update();
    } catch (err) {
      setMessage('Cannot reach the gateway: ' + err.message);
    }
  }

  var events = null;
  var pollTimer = null;
  var renderTimer = null;

  function watchStreams() {
    if (!window.EventSource) return startPolling();
    events = new EventSource('/v1/streams/events');
    var source = events;
    events.addEventListener('open', () => {
      stats.listSource = 'events';
      if (pollTimer !== null) clearInterval(pollTimer);
      pollTimer = null;
    });
    // A connection that is not a resume: the current state of every stream follows.
    events.addEventListener('reset', () => {
      streams = [];
      scheduleRender();
    });
    ['live', 'offline', 'changed'].forEach((name) => {
      events.addEventListener(name, (event) => {
        upsert(JSON.parse(event.data));
      });
    });
    events.addEventListener('deleted', (event) => {
      var gone = JSON.parse(event.data);
      streams = streams.filter((s) => idOf(s) !== idOf(gone));
      scheduleRender();
    });
    events.addEventListener('error', () => {
      // CONNECTING: EventSource reconnects by itself (resuming with Last-Event-ID).
      // CLOSED: the gateway refused it; poll, and try the events again later.
      if (source.readyState !== EventSource.CLOSED || events !== source) return;
      events = null;
      startPolling();
      setTimeout(watchStreams, EVENTS_RETRY_MS);
    });
  }

  function startPolling() {
    stats.listSource = 'polling';
    if (pollTimer === null) pollTimer = setInterval(refreshList, LIST_REFRESH_MS);
    refreshList();
  }

  function upsert(stream) {
    var id = idOf(stream);
    streams = streams.filter((s) => idOf(s) !== id).concat([stream]);
    streams.sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    scheduleRender();
  }

  function scheduleRender() {
    if (renderTimer !== null) return;
    renderTimer = setTimeout(() => {
      renderTimer = null;
      renderList();
      update();
    }, EVENT_RENDER_DELAY_MS);
  }

  function renderList() {
    ui.list.replaceChildren();
    if (streams.length === 0) {
      var empty = document.createElement('li');
      empty.className = 'empty';
      empty.textContent = 'No streams. Add a LiveStream to the key file.';
      ui.list.append(empty);
      return;
    }
    streams.forEach((s) => {
      var li = document.createElement('li');
      var a = document.createElement('a');
      a.href = '?stream=' + encodeURIComponent(idOf(s));
      a.setAttribute('aria-current', String(selected === idOf(s)));
      a.addEventListener('click', (event) => {
        event.preventDefault();
        srcRefused = false;
        selected = idOf(s);
        history.replaceState(null, '', '?stream=' + encodeURIComponent(selected));
        renderList();
        update();
      });
      a.append(thumbnailElement(s));
      var title = document.createElement('span');
      title.className = 'stream-title';
      title.textContent = (s.title || s.name) + (s.live ? '  ●' : '');
      var id = document.createElement('span');
      id.className = 'stream-id';
      id.textContent = idOf(s) + ' · ' + (s.live ? 'live' : s.phase.toLowerCase());
      a.append(title, id);
      li.append(a);
      ui.list.append(li);
    });
  }

  function update() {
    // A refused ?src= keeps its message until the viewer picks a stream from the list.
    if (srcRefused) return;
    if (!selected) {
      var firstLive = streams.find((s) => s.live);
      var pick = firstLive || streams[0];
      if (pick) selected = idOf(pick);
    }
    current = streams.find((s) => idOf(s) === selected) || null;
    stats.stream = selected;
    if (!current) {
      ui.title.textContent = selected ? selected + ' (not found)' : 'No stream selected';
      setBadge('offline', 'offline');
      stats.state = selected ? 'not-found' : 'loading';
      stopPlayback();
      ui.overlay.textContent = selected ? 'No such stream on this gateway.' : 'No streams yet.';
      ui.overlay.hidden = false;
      return;
    }
    ui.title.textContent = current.title || current.name;
    if (current.phase === 'Disabled') {
      setBadge('disabled', 'disabled');
      stats.state = 'disabled';
    } else if (current.live) {
      setBadge('live', 'live');
      stats.state = 'live';
    } else {
      setBadge('offline', 'offline');
      stats.state = 'offline';
    }
    var url = playableUrl(current);
    if (!current.live) undecodableUrl = null;
    if (current.live && url && undecodableUrl === url) {
      // The reason stays on screen (see the ERROR handler).
    } else if (current.live && url) {
      if (playingUrl !== url || !hls) startPlayback(url);
    } else if (hls && (video.ended || !stats.playing)) {
      // The run ended: the player plays out what it has, then stops.
      stopPlayback();
    }
    if (!hls) {
      ui.overlay.textContent =
        current.phase === 'Disabled'
          ? 'This stream is disabled.'
          : !url
            ? 'This stream is private: it plays only from a link with a valid playback token.'
            : 'Offline. Waiting for the stream to go live…';
      ui.overlay.hidden = false;
    }
  }

  function playableUrl(s) {
    if (s.access !== 'private') return s.playbackUrl;
    var id = idOf(s);
    if (privateUrls[id] !== undefined || !tokenParam) return privateUrls[id] || null;
    privateUrls[id] = null;
    fetch('/v1/streams/' + s.namespace + '/' + s.name + '?token=' + encodeURIComponent(tokenParam), { cache: 'no-store' })
      .then((res) =>
        res.json().then((body) => {
          if (!res.ok) throw new Error(body.message || 'HTTP ' + res.status);
          privateUrls[id] = body.playbackUrl;
          privateThumbnails[id] = body.thumbnailUrl;
          renderList();
          update();
        }),
      )
      .catch((err) => {
        stats.errors.push('token: ' + err.message);
        setMessage('Private stream: ' + err.message);
      });
    return null;
  }

  // Thumbnails: fetched (revalidated, so a refreshed poster shows) and shown
  // as blob: URLs; a stream that is not live, has none yet, or whose poster
  // fails to load shows a placeholder of the same size.
  function thumbnailUrlOf(s) {
    if (!s.live) return null;
    return s.access === 'private' ? privateThumbnails[idOf(s)] || null : s.thumbnailUrl || null;
  }

  function thumbnailElement(s) {
    var id = idOf(s);
    var url = thumbnailUrlOf(s);
    var shown = thumbnails[id];
    if (url && (!shown || shown.url !== url)) loadThumbnail(id, url);
    shown = thumbnails[id];
    if (url && shown && shown.objectUrl) {
      var img = document.createElement('img');
      img.className = 'thumbnail';
      img.alt = '';
      img.src = shown.objectUrl;
      img.dataset.stream = id;
      // A poster the browser cannot decode: the placeholder instead.
      img.addEventListener('error', () => {
        shown.failed = true;
        stats.thumbnails[id] = 'failed';
        img.replaceWith(placeholderElement(id));
      });
      return img;
    }
    return placeholderElement(id);
  }

  function placeholderElement(id) {
    var div = document.createElement('div');
    div.className = 'thumbnail placeholder';
    div.dataset.stream = id;
    div.setAttribute('aria-hidden', 'true');
    div.textContent = 'No preview';
    return div;
  }

  function loadThumbnail(id, url) {
    var entry = thumbnails[id] && thumbnails[id].url === url ? thumbnails[id] : { url: url, objectUrl: null, failed: false, loading: false };
    thumbnails[id] = entry;
    if (entry.loading) return;
    entry.loading = true;
    fetch(url, { cache: 'no-cache' })
      .then((res) => {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.blob();
      })
      .then((blob) => {
        if (!/^image\//.test(blob.type)) throw new Error('not an image: ' + blob.type);
        if (entry.objectUrl) URL.revokeObjectURL(entry.objectUrl);
        entry.objectUrl = URL.createObjectURL(blob);
        entry.failed = false;
        stats.thumbnails[id] = 'loaded';
      })
      .catch(() => {
        entry.failed = true;
        if (entry.objectUrl) URL.revokeObjectURL(entry.objectUrl);
        entry.objectUrl = null;
        stats.thumbnails[id] = 'failed';
      })
      .finally(() => {
        entry.loading = false;
        if (thumbnails[id] === entry) scheduleRender();
      });
  }

  function refreshThumbnails() {
    streams.forEach((s) => {
      var url = thumbnailUrlOf(s);
      if (url) loadThumbnail(idOf(s), url);
    });
  }

  // The quality menu: Auto, then every level hls.js has (one per rendition of
  // the multivariant playlist it can decode, highest first), labelled by
  // the rendition's name, its height and its bit rate; hidden when there is
  // nothing to choose. Picking one switches at the next segment (nextLevel),
  // Auto hands the choice back to hls.js's bandwidth estimate.
  function levelLabel(level) {
    var parts = [];
    var name = level.name || (level.height ? level.height + 'p' : 'audio');
    parts.push(name);
    if (level.height && name.indexOf(level.height + 'p') === -1) parts.push(level.height + 'p');
    var bps = level.averageBitrate || level.bitrate;
    if (bps) parts.push(bps >= 1e6 ? (bps / 1e6).toFixed(1) + ' Mbit/s' : Math.round(bps / 1000) + ' kbit/s');
    return parts.join(' · ');
  }

  function buildQualityMenu(levels) {
    stats.levels = levels.map(levelLabel);
    stats.levelDetails = levels.map((l) => ({ name: l.name || null, height: l.height || null, bitrate: l.bitrate }));
    var options = [new Option('Auto', '-1')];
    // hls.js sorts its levels by bit rate, lowest first: the menu lists the highest first.
    for (var i = levels.length - 1; i >= 0; i--) options.push(new Option(stats.levels[i], String(i)));
    ui.quality.replaceChildren(...options);
    ui.quality.value = '-1';
    ui.qualityControl.hidden = levels.length < 2;
  }

  function showPlayingLevel(index) {
    stats.level = index;
    stats.levelName = stats.levels[index] === undefined ? null : stats.levels[index];
    stats.levelSwitches.push({ at: Date.now(), level: index, name: stats.levelName });
    if (stats.levelSwitches.length > 200) stats.levelSwitches.shift();
    ui.playingLevel.textContent = stats.levelName === null ? '' : 'Playing: ' + stats.levelName;
    var auto = ui.quality.options[0];
    if (auto) auto.textContent = stats.autoLevel && stats.levelName !== null ? 'Auto (' + stats.levelName + ')' : 'Auto';
  }

  function resetQualityMenu() {
    ui.qualityControl.hidden = true;
    ui.quality.replaceChildren(new Option('Auto', '-1'));
    ui.playingLevel.textContent = '';
    stats.levels = [];
    stats.levelDetails = [];
    stats.level = null;
    stats.levelName = null;
    stats.autoLevel = true;
  }

  ui.quality.addEventListener('change', () => {
    if (!hls) return;
    var choice = Number(ui.quality.value);
    hls.nextLevel = choice;
    stats.autoLevel = choice === -1;
    if (stats.level !== null) showPlayingLevel(stats.level);
  });

  function setBadge(cls, text) {
    ui.badge.className = 'badge ' + cls;
    ui.badge.textContent = text;
  }

  function startPlayback(url) {
    stopPlayback();
    playingUrl = url;
    stats.waitingSince = null;
    stats.playingSeconds = 0;
    ui.overlay.textContent = 'Loading…';
    ui.overlay.hidden = false;
    if (!window.Hls || !window.Hls.isSupported()) {
      // Safari plays HLS natively (without the latency tuning above).
      if (video.canPlayType('application/vnd.apple.mpegurl')) {
        video.src = url;
        video.play().catch(() => {});
        return;
      }
      setMessage('This browser cannot play HLS (no Media Source Extensions).');
      stats.state = 'error';
      return;
    }
    // Blocking playlist reload on a plain origin too: hls.js learns of each segment as it is listed (edge-loader.js).
    if (window.tteokEdgeLoader) HLS_CONFIG.pLoader = window.tteokEdgeLoader(window.Hls.DefaultConfig.loader);
    hls = new window.Hls(HLS_CONFIG);
    var instance = hls;
    // LL-HLS: the page keeps the latency target itself (live-catch-up.js says why).
    catchUp = window.tteokLiveCatchUp ? window.tteokLiveCatchUp(hls, video) : null;
    hls.on(window.Hls.Events.MANIFEST_PARSED, (_event, data) => {
      buildQualityMenu(data.levels);
      video.play().catch((err) => {
        setMessage('Press play: ' + err.message);
      });
    });
    hls.on(window.Hls.Events.LEVEL_LOADED, (_event, data) => {
      if (instance !== hls || !data.details.live) return;
      var fragments = data.details.fragments;
      var newest = fragments[fragments.length - 1];
      if (!newest || !newest.programDateTime || !data.stats.loading.first) return;
      var answeredAt = Date.now() - (performance.now() - data.stats.loading.first);
      stats.playlistAges.push((answeredAt - (newest.programDateTime + newest.duration * 1000)) / 1000);
      if (stats.playlistAges.length > MAX_SAMPLES) stats.playlistAges.shift();
    });
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      if (instance !== hls) return;
      stats.autoLevel = hls.autoLevelEnabled;
      showPlayingLevel(data.level);
    });
    // LL-HLS: aim at the origin's PART-HOLD-BACK (three parts), not at
    // liveSyncDuration above, which is made for whole segments and which
    // hls.js lets win over PART-HOLD-BACK once configured (issue 20: 0.25 s
    // more latency at 0.333 s parts). Once per playback; ?target= still wins.
    // (Set at the first playlist's update, after hls.js chose its start from
    // liveSyncDuration: aiming at PART-HOLD-BACK from the start measured no
    // lower and risks a start-up stall.)
    var llTargetSet = targetParam >= 1 && targetParam <= 10;
    hls.on(window.Hls.Events.LEVEL_UPDATED, (_event, data) => {
      if (instance !== hls || llTargetSet || !data.details.partHoldBack) return;
      llTargetSet = true;
      hls.targetLatency = data.details.partHoldBack;
    });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (instance !== hls) return;
      if (!data.fatal) return;
      stats.errors.push(data.type + ': ' + data.details);
      if (stats.errors.length > 50) stats.errors.shift();
      if (/^(bufferAddCodecError|bufferIncompatibleCodecsError|manifestIncompatibleCodecsError)$/.test(data.details)) {
        // No decoder for the stream's codec: recovering would only loop. Say so and stop.
        stats.unsupportedCodec = data.mimeType || data.details;
        undecodableUrl = playingUrl;
        stopPlayback();
        ui.overlay.textContent =
          'This browser cannot decode this stream (' +
          stats.unsupportedCodec +
          '). ' +
          'HEVC plays in Safari, and in Chrome or Edge with hardware HEVC decoding; H.264 plays everywhere, AV1 in current Chrome, Edge and Firefox.';
        ui.overlay.hidden = false;
        return;
      }
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      // Network: the playlist is gone (the run ended) or unreachable (a CDN
      // outage). In a second, start over if the stream is still live: with
      // ?src= the same URL again; otherwise as the stream list says now (no
      // list event may ever come: the stream's state did not change).
      setMessage('Playback interrupted (' + data.details + '); retrying…');
      var retryUrl = playingUrl;
      stopPlayback();
      setTimeout(() => {
        if (hls) return;
        if (srcMode) {
          if (retryUrl) startPlayback(retryUrl);
        } else update();
      }, 1000);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function stopPlayback() {
    if (hls) {
      hls.destroy();
      hls = null;
    }
    catchUp = null;
    playingUrl = null;
    stats.playing = false;
    resetQualityMenu();
    if (video.getAttribute('src')) {
      video.removeAttribute('src');
      video.load();
    }
  }

  function goLive() {
    if (hls && hls.liveSyncPosition !== null && hls.liveSyncPosition !== undefined) {
      video.currentTime = hls.liveSyncPosition;
    }
    video.play().catch(() => {});
  }

  ui.golive.addEventListener('click', goLive);

  // Back to the tab after a while: jump to the edge rather than crawl there.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && stats.latency !== null && hls && stats.latency > hls.targetLatency + 3) goLive();
  });

  var lastTime = 0;
  video.addEventListener('waiting', () => {
    // A seek's wait for the decoder (the start-up jump, Go live) is not a stall.
    if (stats.playing && !video.seeking) stats.stalls++;
    if (hls && stats.waitingSince === null) stats.waitingSince = Date.now();
  });
  video.addEventListener('playing', () => {
    if (stats.waitingSince !== null) {
      stats.waits.push({ start: stats.waitingSince, end: Date.now() });
      if (stats.waits.length > 500) stats.waits.shift();
      stats.waitingSince = null;
    }
    ui.overlay.hidden = true;
    setMessage('');
  });
  video.addEventListener('ended', () => {
    update();
  });

  function bufferAhead() {
    var b = video.buffered;
    for (var i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
    }
    return 0;
  }

  function median(values) {
    if (values.length === 0) return null;
    var sorted = values.slice().sort((a, b) => a - b);
    var mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function fmt(seconds) {
    return seconds === null || seconds === undefined || !isFinite(seconds) ? '–' : seconds.toFixed(2) + ' s';
  }

  var lastSampleAt = Date.now();
  function sample() {
    var t = video.currentTime;
    var now = Date.now();
    stats.currentTime = t;
    stats.playing = !video.paused && !video.ended && video.readyState >= 3 && t !== lastTime;
    if (stats.playing) stats.playingSeconds += (now - lastSampleAt) / 1000;
    lastSampleAt = now;
    lastTime = t;
    stats.videoHeight = video.videoHeight;
    stats.bufferAhead = bufferAhead();
    if (catchUp) stats.catchUp = catchUp(stats.playingSeconds, stats.bufferAhead);
    stats.playbackRate = video.playbackRate;
    if (hls) {
      stats.edgeDistance = typeof hls.latency === 'number' ? hls.latency : null;
      stats.targetLatency = typeof hls.targetLatency === 'number' ? hls.targetLatency : null;
      var date = hls.playingDate;
      if (date && stats.playing) {
        stats.latency = (Date.now() - date.getTime()) / 1000;
        stats.latencies.push(stats.latency);
        if (stats.latencies.length > MAX_SAMPLES) stats.latencies.shift();
        stats.latencyMedian = median(stats.latencies);
      }
    }
    if (!stats.playing && !hls) stats.latency = null;
    ui.latency.textContent = fmt(stats.latency);
    ui.median.textContent = fmt(stats.latencyMedian);
    ui.target.textContent = fmt(stats.targetLatency);
    ui.buffer.textContent = fmt(stats.bufferAhead);
    ui.rate.textContent = stats.playbackRate.toFixed(2) + '×';
    ui.stalls.textContent = String(stats.stalls);
    ui.golive.disabled = !(hls && stats.latency !== null && stats.targetLatency !== null && stats.latency > stats.targetLatency + 1.5);
  }

  setInterval(sample, STATS_INTERVAL_MS);
  setInterval(refreshThumbnails, THUMBNAIL_REFRESH_MS);
  if (srcMode) {
    stats.stream = srcUrl;
    stats.state = 'live';
    ui.title.textContent = srcUrl;
    setBadge('live', 'external');
    startPlayback(srcUrl);
  } else {
    if (srcRefused) {
      // Nothing from the URL is shown: it is someone else's text.
      stats.state = 'refused';
      ui.title.textContent = 'Playback refused';
      setBadge('refused', 'refused');
      ui.overlay.textContent = 'Not playing the ?src= address: it is not on this site or an allowed source. Pick a stream from the list.';
      ui.overlay.hidden = false;
    }
    watchStreams();
  }
})();
