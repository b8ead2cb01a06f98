// The OpenAPI document as a production gateway (a CDN in front of S3, every
// other setting at its default) generates it: what gateway/openapi.json holds.
// `npm run openapi` (make openapi) rewrites that file; test/gateway/openapi.test.ts
// fails when it is out of date.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamView } from '../common/stream-view.ts';
import { gatewayOptionsFrom, loadGatewayConfig } from './config.ts';
import { createGateway } from './gateway.ts';

export const OPENAPI_FILE = join(import.meta.dirname, 'openapi.json');

const noStreams: StreamView = {
  list: () => [],
  get: () => undefined,
  synced: true,
  ready: async () => undefined,
  onChange: () => undefined,
  close: async () => undefined,
};

/** The document, pretty-printed as the committed file is. */
export async function generateOpenApiDocument(): Promise<string> {
  const config = loadGatewayConfig({ TTEOK_PLAYBACK_BASE_URL: 'https://cdn.example.com', TTEOK_FOLLOW_INTERVAL_MS: '0' });
  const { host: _host, port: _port, ...options } = gatewayOptionsFrom(config);
  const app = await createGateway({ ...options, view: noStreams, log: undefined });
  try {
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    return JSON.stringify(JSON.parse(res.body), null, 2) + '\n';
  } finally {
    await app.close();
  }
}

if (import.meta.main) {
  writeFileSync(OPENAPI_FILE, await generateOpenApiDocument());
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}
