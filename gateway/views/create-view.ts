// Picks the gateway's StreamView (TTEOK_VIEW). This is the seam for the
// Kubernetes view: an informer on LiveStreams (status.phase, status.liveSince)
// implementing common/stream-view.ts goes in gateway/views/ and is returned
// here for `kubernetes`; nothing else in the gateway changes.
import { ConfigError } from '../../common/env-config.ts';
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
    case 'kubernetes':
      throw new ConfigError('TTEOK_VIEW=kubernetes is not available yet (gateway/views/create-view.ts is where it plugs in); use TTEOK_VIEW=local with TTEOK_KEYS_FILE');
  }
}
