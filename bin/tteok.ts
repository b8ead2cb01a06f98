#!/usr/bin/env node
// tteok's one entry point: `tteok ingest`, `tteok gateway`, `tteok controller`.
// One image, one binary; the role is chosen by the command.
import { ConfigError } from '../common/env-config.ts';
import { createLogger } from '../common/log.ts';

const role = process.argv[2];
const log = createLogger(role ?? 'tteok');

async function main(): Promise<void> {
  switch (role) {
    case 'ingest': {
      const { loadIngestConfig } = await import('../ingest/config.ts');
      const { startIngest } = await import('../ingest/ingest.ts');
      const config = loadIngestConfig();
      // TTEOK_KEY_SOURCE=kubernetes: keys checked against the SHA-256 the controller publishes on each LiveStream, fleet-wide claims on Leases.
      const kube = config.keySource === 'kubernetes' ? await (await import('../ingest/keys/kube-key-source.ts')).kubernetesIngestDeps(process.env, log) : {};
      const ingest = await startIngest(config, { log, ...kube });
      onTermination(() => ingest.shutdown());
      return;
    }
    case 'gateway': {
      const { gatewayOptionsFrom, loadGatewayConfig } = await import('../gateway/config.ts');
      const { startGateway } = await import('../gateway/gateway.ts');
      const { createStreamView } = await import('../gateway/views/create-view.ts');
      const config = loadGatewayConfig();
      const view = await createStreamView(config, log);
      const gateway = await startGateway({ ...gatewayOptionsFrom(config), view, log });
      onTermination(async () => {
        await gateway.close();
        await view.close();
      });
      return;
    }
    case 'controller': {
      const { loadControllerConfig } = await import('../controller/config.ts');
      const { startController } = await import('../controller/controller.ts');
      const controller = await startController(loadControllerConfig(), { log });
      onTermination(() => controller.shutdown());
      return;
    }
    case 'local': {
      const { startLocalMode } = await import('./local-mode.ts');
      const local = await startLocalMode(log);
      onTermination(() => local.shutdown());
      return;
    }
    default:
      process.stderr.write('usage: tteok <ingest|gateway|controller|local>\n');
      process.exit(2);
  }
}

function onTermination(shutdown: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      shutdown().then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) log.fatal(`configuration error: ${error.message}`);
  else log.fatal({ err: error }, 'failed to start');
  process.exit(1);
});
