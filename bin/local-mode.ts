// `make run`: tteok on one machine, no Kubernetes, no AWS. The ingest stores
// into a local directory (the origin), streams and their keys come from a
// local key file made from manifests/examples/ on the first run, and the
// gateway in the same process serves the origin under /origin/, the playback
// lookup, its metrics and the player page at http://127.0.0.1:8080/.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { createLogger, type Logger } from '../common/log.ts';
import { streamId } from '../common/livestream.ts';
import { accessRoot } from '../common/playback-token.ts';
import { gatewayOptionsFrom, loadGatewayConfig } from '../gateway/config.ts';
import { startGateway, type RunningGateway } from '../gateway/gateway.ts';
import { LocalStreamView } from '../gateway/views/local-stream-view.ts';
import { inProcessHolders } from '../gateway/low-latency/holders.ts';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest } from '../ingest/ingest.ts';
import { parseKeyFile } from '../common/keys/file-key-source.ts';
import { newStreamKey } from '../common/keys/key-source.ts';
import { LOCAL_ENV } from './roles.ts';

export interface LocalMode {
  /** The media volume: segments wait here until stored in the origin. */
  mediaDir: string;
  /** What to tell the person at the terminal: print it once Ctrl-C is handled, since it invites streaming and stopping. */
  banner: string;
  shutdown(): Promise<void>;
}

/** Creates the local key file from the example LiveStream, with a fresh key. */
export function ensureKeyFile(path: string, examplePath: string): void {
  if (existsSync(path)) return;
  const doc = parseDocument(readFileSync(examplePath, 'utf8'));
  doc.set('streamKey', newStreamKey());
  writeFileSync(
    path,
    '# Local mode: LiveStreams this machine accepts, each with its stream key.\n' +
      '# Add more documents (---) to add streams; the ingest reloads this file.\n' +
      doc.toString(),
    { mode: 0o600 },
  );
}

export async function startLocalMode(log: Logger): Promise<LocalMode> {
  const home = resolve(LOCAL_ENV.home.read(process.env));
  mkdirSync(home, { recursive: true });
  const keysFile = join(home, 'keys.yaml');
  ensureKeyFile(keysFile, resolve('manifests/examples/livestream.yaml'));
  const config = loadIngestConfig({
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(home, 'origin'),
    TTEOK_MEDIA_DIR: join(home, 'media'),
    TTEOK_KEYS_FILE: keysFile,
    TTEOK_RTMP_HOST: '127.0.0.1',
    TTEOK_HTTP_HOST: '127.0.0.1',
    // The media folder shares the user's own disk, not a volume of its own:
    // refuse new streams only when that disk is nearly full.
    TTEOK_MEDIA_HIGH_WATER_PERCENT: '98',
    TTEOK_MEDIA_FULL_PERCENT: '99',
    // Renditions and thumbnails by ffmpeg child processes of this one process (TTEOK_TRANSCODER=off turns them off).
    TTEOK_TRANSCODER: 'local',
    ...process.env,
  });
  const gatewayConfig = loadGatewayConfig({
    TTEOK_GATEWAY_HOST: '127.0.0.1',
    ...process.env,
    // The gateway serves what this ingest stores and knows the streams it accepts.
    TTEOK_STORAGE: config.storage,
    TTEOK_LOCAL_ORIGIN_DIR: config.localOriginDir,
    TTEOK_KEYS_FILE: config.keysFile,
  });
  // Private streams need a signing key; without one configured, a random key
  // for this process (its tokens stop working when it stops).
  if (!gatewayConfig.playbackTokens.keyring) {
    const key = { id: 'local', secret: randomBytes(32).toString('base64url') };
    gatewayConfig.playbackTokens.keyring = { signing: key, all: [key] };
  }
  const ingest = await startIngest(config, { log });
  const gatewayLog = createLogger('gateway');
  const view = LocalStreamView.fromFile(gatewayConfig.keysFile, gatewayLog, ingest.live);
  let gateway: RunningGateway;
  try {
    await view.ready();
    // Live streams' LL-HLS playlists and parts come from the ingest in this process.
    const ll = gatewayConfig.lowLatency;
    // With TTEOK_LL_PART_SECONDS=0 the ingest holds no LL playlists: the origin then serves the directory alone.
    const lowLatency = ll.enabled ? { holders: inProcessHolders(ingest.lowLatency), upstreamTimeoutMs: ll.upstreamTimeoutMs } : undefined;
    gateway = await startGateway({ ...gatewayOptionsFrom(gatewayConfig), view, lowLatency, log: gatewayLog });
  } catch (error) {
    await view.close();
    await ingest.shutdown();
    throw error;
  }
  const grants = parseKeyFile(readFileSync(keysFile, 'utf8'));
  const lines = ['', 'tteok is running on this machine.', '', `  Watch:  ${gateway.url}/`, ''];
  for (const [key, grant] of grants) {
    const id = streamId(grant.ref);
    lines.push(`  Stream ${id}${grant.settings.title ? ` ("${grant.settings.title}")` : ''}`);
    lines.push(`    OBS > Settings > Stream > Service: Custom`);
    lines.push(`    Server:      rtmp://127.0.0.1:${ingest.rtmpPort}/live`);
    lines.push(`    Stream Key:  ${key}`);
    const token = grant.settings.access === 'private' ? gateway.app.playbackTokens.mint(grant.ref)?.token : undefined;
    lines.push(`    Watch:       ${gateway.url}/?stream=${id}${token ? `&token=${token}` : ''}`);
    if (token)
      lines.push(
        `                 (private: without its token the stream does not play; this one is valid for ${Math.round(gatewayConfig.playbackTokens.ttlSeconds / 3600)} h)`,
      );
    lines.push(`    Playback:    ${gateway.app.playbackUrl(grant.ref)}`);
    lines.push(`    HLS output:  ${join(config.localOriginDir, accessRoot(grant.settings.access), grant.ref.namespace, grant.ref.name, 'index.m3u8')}`);
    lines.push('');
  }
  lines.push(
    `  Keys live in ${keysFile}. Metrics: ingest http://127.0.0.1:${ingest.httpPort}/metrics, gateway ${gateway.url}/metrics.`,
    '  No OBS at hand? `make demo` publishes a test pattern to the first stream. Ctrl-C stops.',
    '',
  );
  return {
    mediaDir: config.mediaDir,
    banner: lines.join('\n') + '\n',
    async shutdown() {
      // The ingest first: it ends live playlists, which viewers should still get.
      await ingest.shutdown();
      await gateway.close();
      await view.close();
    },
  };
}
