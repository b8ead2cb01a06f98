// Wires the ingest together: key source → stream hub → RTMP listener, the
// packagers writing to the media volume, the uploader storing from it, and
// the HTTP side. `startIngest` returns a handle whose `shutdown` does what
// SIGTERM must: stop taking publishes, end live streams (on Kubernetes, hand
// them over to the pod their publishers reconnect to), finish uploads.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { createLogger, type Logger } from '../common/log.ts';
import type { LiveEvents } from '../common/stream-view.ts';
import type { IngestConfig } from './config.ts';
import { listenOn } from '../common/listen.ts';
import { closeServer, createProbeServer } from '../common/probe-server.ts';
import { MediaVolume } from './media-volume.ts';
import { MEDIA_TMP_DIR } from '../common/atomic-file.ts';
import { FileKeySource } from '../common/keys/file-key-source.ts';
import type { KeySource } from '../common/keys/key-source.ts';
import { IngestMetrics } from './metrics.ts';
import { RtmpServer } from './rtmp/rtmp-server.ts';
import { RtmpsListener } from './rtmp/rtmps-listener.ts';
import { LocalDirectoryStore } from '../common/storage/local-store.ts';
import type { ObjectStore } from '../common/storage/object-store.ts';
import { S3Store } from '../common/storage/s3-store.ts';
import { StreamHub, type StreamClaims } from './stream-hub.ts';
import { Uploader } from './upload/uploader.ts';
import { createRenditionEncoder } from './renditions/create-encoder.ts';
import { RenditionMetrics } from './renditions/rendition-metrics.ts';
import { RunRenditions } from './renditions/run-renditions.ts';
import { ThumbnailStore } from './renditions/thumbnail-store.ts';
import { LowLatencyRegistry } from './low-latency/ll-source.ts';
import { routeLowLatency } from './low-latency/ll-http.ts';
import type { LowLatencySource } from '../common/low-latency.ts';

export interface IngestDeps {
  log?: Logger;
  /** Replaces the configured key source (the Kubernetes one is plugged in here). */
  keys?: KeySource;
  claims?: StreamClaims;
}

export interface RunningIngest {
  rtmpPort: number;
  /** The RTMPS port, when configured. */
  rtmpsPort: number | undefined;
  httpPort: number;
  metrics: IngestMetrics;
  /** Streams going live and ending, for a gateway in the same process. */
  live: LiveEvents;
  /** LL-HLS playlists and parts of the streams live here, for a gateway in the same process (also on the HTTP port under /ll/). */
  lowLatency: LowLatencySource;
  shutdown(): Promise<void>;
}

export function createStore(config: IngestConfig): ObjectStore {
  return config.storage === 'local'
    ? new LocalDirectoryStore(config.localOriginDir)
    : new S3Store({
        bucket: config.s3.bucket,
        region: config.s3.region,
        ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
        forcePathStyle: config.s3.forcePathStyle,
        requestTimeoutMs: config.s3.requestTimeoutMs,
        maxConnections: config.uploadConcurrency,
      });
}

export async function startIngest(config: IngestConfig, deps: IngestDeps = {}): Promise<RunningIngest> {
  const log = deps.log ?? createLogger('ingest');
  const metrics = new IngestMetrics();
  // Temporary files left by a killed process are incomplete writes: the
  // packager never renamed them into place, so nothing refers to them.
  await rm(join(config.mediaDir, MEDIA_TMP_DIR), { recursive: true, force: true });
  await mkdir(join(config.mediaDir, MEDIA_TMP_DIR), { recursive: true });
  const keys = deps.keys ?? new FileKeySource(config.keysFile, log, { renditions: config.defaultRenditions });
  await keys.ready();
  const store = createStore(config);
  const uploader = new Uploader({
    mediaDir: config.mediaDir,
    store,
    prefix: config.storage === 's3' ? config.s3.prefix : '',
    playlistMaxAgeSeconds: config.playlistMaxAgeSeconds,
    concurrency: config.uploadConcurrency,
    backlogWarnSegments: config.backlogWarnSegments,
    memoryBytes: config.uploadMemoryBytes,
    deleteDelayMs: config.deleteDelayMs,
    settleTimeoutMs: config.shutdownTimeoutMs,
    // A stream no longer known (deleted meanwhile) is treated as private: fail closed.
    accessOf: (ref) => keys.grantOf(ref)?.settings.access ?? 'private',
    metrics,
    log,
  });
  const volume = new MediaVolume({
    dir: config.mediaDir,
    highWaterPercent: config.mediaHighWaterPercent,
    fullPercent: config.mediaFullPercent,
    volumeBytes: config.mediaVolumeBytes,
    backlogBytes: () => uploader.waitingBytes,
    metrics,
    log,
  });
  await volume.start();
  // Renditions and thumbnails (TTEOK_TRANSCODER): each run's source segments go to the encoder, its answers back into the run's packager.
  const encoder = createRenditionEncoder(config.renditions);
  const renditions = encoder
    ? new RunRenditions({
        encoder,
        ...(config.renditions.thumbnailMs > 0
          ? {
              thumbnails: {
                intervalMs: config.renditions.thumbnailMs,
                sink: new ThumbnailStore(store, config.storage === 's3' ? config.s3.prefix : '', (ref) => keys.grantOf(ref)?.settings.access ?? 'private'),
              },
            }
          : {}),
        metrics: new RenditionMetrics(metrics.registry),
        log,
      })
    : undefined;
  const lowLatency = new LowLatencyRegistry(config.llPartSeconds, config.mediaDir);
  const hub = new StreamHub({
    app: config.rtmpApp,
    mediaDir: config.mediaDir,
    reconnectGraceMs: config.reconnectGraceMs,
    publisherIdleMs: config.publisherIdleMs,
    takeoverSilenceMs: config.takeoverSilenceMs,
    keys,
    ...(deps.claims ? { claims: deps.claims } : {}),
    metrics,
    log,
    storage: uploader,
    mediaVolume: volume,
    publishLimits: config.publishLimits,
    ...(renditions ? { onSourceSegment: renditions.onSourceSegment } : {}),
    ...(config.llPartSeconds > 0 ? { lowLatency } : {}),
  });
  // Files left by a previous process are uploaded first, and its unfinished
  // streams wait for their publishers to come back.
  await uploader.start();
  await hub.recover();

  let shuttingDown = false;
  let rtmpUp = false;
  const http: Server = createProbeServer(metrics.registry, {
    ready: () => rtmpUp && !shuttingDown && volume.admitsPublishes(),
    notReadyReason: () => (shuttingDown ? 'shutting down' : !rtmpUp ? 'RTMP listener not up' : volume.notReadyReason()),
    beforeMetrics: () => metrics.llBlockedRequests.set(lowLatency.waiting),
    route: (path, req, res) => routeLowLatency(lowLatency, path, req, res),
  });
  const httpPort = await listenOn(http, config.httpPort, config.httpHost);
  const rtmp = new RtmpServer({ host: config.rtmpHost, port: config.rtmpPort, hub, log, metrics, limits: config.rtmp });
  const rtmpPort = await rtmp.listen();
  const rtmps = config.rtmps
    ? new RtmpsListener({
        ...config.rtmps,
        log,
        metrics,
        rtmp,
      })
    : undefined;
  const rtmpsPort = await rtmps?.listen();
  rtmpUp = true;
  log.info(
    {
      rtmpPort,
      ...(rtmpsPort !== undefined ? { rtmpsPort } : {}),
      httpPort,
      store: store.description,
      mediaDir: config.mediaDir,
      transcoder: config.renditions.transcoder,
    },
    'ingest ready',
  );

  return {
    rtmpPort,
    rtmpsPort,
    httpPort,
    metrics,
    live: hub,
    lowLatency,
    async shutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      log.info(
        deps.claims
          ? 'shutting down: refusing new publishes, handing live streams over to the pod their publishers reconnect to (or ending them), finishing uploads'
          : 'shutting down: refusing new publishes, ending live streams, finishing uploads',
      );
      hub.stopAccepting();
      rtmp.stopListening();
      rtmps?.stopListening();
      // With claims (Kubernetes) another pod may take each live stream over
      // while its publisher reconnects: the streams wait up to the reconnect
      // grace, at most half the shutdown timeout (the rest is the uploads').
      const handOverMs = deps.claims ? Math.min(config.reconnectGraceMs, config.shutdownTimeoutMs / 2) : 0;
      const handOverStarted = performance.now();
      await hub.finishAll({ waitForTakeoverMs: handOverMs });
      await rtmp.closeAll();
      await renditions?.close();
      const spent = handOverMs > 0 ? performance.now() - handOverStarted : 0;
      const drained = await uploader.drain(Math.max(0, config.shutdownTimeoutMs - spent));
      if (!drained) log.error('shutdown timeout reached with uploads pending; they stay on the media volume for the next start');
      // Held until the uploads are done (a run keeps its claim until its last objects are stored).
      await deps.claims?.stop?.();
      await uploader.close();
      volume.close();
      await keys.close();
      await closeServer(http);
      log.info('ingest stopped');
    },
  };
}
