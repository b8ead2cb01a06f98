// Picks the gateway's StreamView (TTEOK_VIEW): `local`, the key file (with
// live state from an ingest in the same process), or `kubernetes`, an
// informer on LiveStreams and their status. Nothing else in the gateway
// depends on which.
import type { Logger } from '../../common/log.ts';
import type { LiveEvents, StreamView } from '../../common/stream-view.ts';
import type { GatewayConfig } from '../config.ts';
import { LocalStreamView } from './local-stream-view.ts';

export async function createStreamView(config: GatewayConfig, log: Logger, live?: LiveEvents): Promise<StreamView> {
  switch (config.view) {
    case 'local': {
      const view = LocalStreamView.fromFile(config.keysFile, log, live);
      await view.ready();
      return view;
    }
    case 'kubernetes': {
      // Loaded only here: the local mode never needs the Kubernetes client.
      const { createKubeStreamView } = await import('./kube-stream-view.ts');
      return createKubeStreamView(process.env, log);
    }
  }
}
