// `make run`: tteok on one machine, no Kubernetes, no AWS. The ingest stores
// into a local directory (the origin), streams and their keys come from a
// local key file made from manifests/examples/ on the first run.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { envInt, envString } from '../common/env-config.ts';
import type { Logger } from '../common/log.ts';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest } from '../ingest/ingest.ts';
import { parseKeyFile } from '../ingest/keys/file-key-source.ts';

export interface LocalMode {
  shutdown(): Promise<void>;
}

export function newStreamKey(): string {
  return randomBytes(24).toString('base64url');
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
  const home = resolve(envString(process.env, 'TTEOK_LOCAL_HOME', '.tteok'));
  mkdirSync(home, { recursive: true });
  const keysFile = join(home, 'keys.yaml');
  ensureKeyFile(keysFile, resolve('manifests/examples/livestream.yaml'));
  const rtmpPort = envInt(process.env, 'TTEOK_RTMP_PORT', 1935, 0, 65535);
  const config = loadIngestConfig({
    TTEOK_STORAGE: 'local',
    TTEOK_LOCAL_ORIGIN_DIR: join(home, 'origin'),
    TTEOK_MEDIA_DIR: join(home, 'media'),
    TTEOK_KEYS_FILE: keysFile,
    TTEOK_RTMP_HOST: '127.0.0.1',
    TTEOK_HTTP_HOST: '127.0.0.1',
    ...process.env,
  });
  const ingest = await startIngest(config, { log });
  const grants = parseKeyFile(readFileSync(keysFile, 'utf8'));
  const lines = ['', 'tteok is running on this machine.', ''];
  for (const [key, grant] of grants) {
    lines.push(`  Stream ${grant.ref.namespace}/${grant.ref.name}${grant.settings.title ? ` ("${grant.settings.title}")` : ''}`);
    lines.push(`    OBS > Settings > Stream > Service: Custom`);
    lines.push(`    Server:      rtmp://127.0.0.1:${rtmpPort}/live`);
    lines.push(`    Stream Key:  ${key}`);
    lines.push(`    HLS output:  ${join(config.localOriginDir, grant.ref.namespace, grant.ref.name, 'index.m3u8')}`);
    lines.push('');
  }
  lines.push(`  Keys live in ${keysFile}; metrics at http://127.0.0.1:${ingest.httpPort}/metrics. Ctrl-C stops.`, '');
  process.stdout.write(lines.join('\n') + '\n');
  return { shutdown: () => ingest.shutdown() };
}
