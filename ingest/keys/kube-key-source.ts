// The Kubernetes key source: an informer on the stream key Secrets the
// controller writes (label tteok.dev/stream-key=true), in every namespace or
// in $TTEOK_WATCH_NAMESPACE. Each Secret names its LiveStream (label), holds
// the key (data.streamKey) and the stream's settings (annotation), so the
// ingest watches nothing but Secrets. A deleted Secret or a rotated key
// changes the view at once, and StreamHub ends a publish whose key is gone.
import type { KubeConfig } from '@kubernetes/client-node';
import type { V1Secret } from '@kubernetes/client-node';
import { envInt, envOptional, type Env } from '../../common/env-config.ts';
import type { Logger } from '../../common/log.ts';
import { isValidName, isValidNamespace, streamId } from '../../common/livestream.ts';
import { loadKubeConfig } from '../../common/kube/client.ts';
import {
  ANNOTATION_SETTINGS,
  LABEL_LIVESTREAM,
  SECRET_KEY_FIELD,
  STREAM_KEY_SELECTOR,
  decodeSettings,
  secretsPath,
} from '../../common/kube/contract.ts';
import { Informer } from '../../common/kube/informer.ts';
import { GrantTable, isWellFormedKey, type KeySource, type StreamGrant } from './key-source.ts';
import type { StreamClaims } from '../stream-hub.ts';

export interface KubeKeySourceOptions {
  kc: KubeConfig;
  /** Only this namespace; all namespaces when undefined. */
  namespace?: string;
  log: Logger;
  idleRelistMs?: number;
}

/** Reads one Secret into a grant; undefined (with the reason) if it is not usable. */
export function grantFromSecret(secret: V1Secret): { key: string; grant: StreamGrant } | { problem: string } {
  const namespace = secret.metadata?.namespace ?? '';
  const name = secret.metadata?.labels?.[LABEL_LIVESTREAM] ?? '';
  if (!isValidNamespace(namespace) || !isValidName(name)) return { problem: `label ${LABEL_LIVESTREAM} does not name a LiveStream` };
  const encoded = secret.data?.[SECRET_KEY_FIELD];
  if (!encoded) return { problem: `no data.${SECRET_KEY_FIELD}` };
  const key = Buffer.from(encoded, 'base64').toString('utf8');
  if (!isWellFormedKey(key)) return { problem: 'the stream key is malformed' };
  const settings = decodeSettings(secret.metadata?.annotations?.[ANNOTATION_SETTINGS]);
  if (!settings) return { problem: `annotation ${ANNOTATION_SETTINGS} is missing or invalid` };
  return { key, grant: { ref: { namespace, name }, settings } };
}

export class KubeKeySource extends GrantTable {
  private readonly informer: Informer<V1Secret>;
  private readonly log: Logger;
  private readonly reported = new Map<string, string>();

  constructor(options: KubeKeySourceOptions) {
    super();
    this.log = options.log;
    this.informer = new Informer<V1Secret>({
      kc: options.kc,
      path: secretsPath(options.namespace),
      labelSelector: STREAM_KEY_SELECTOR,
      log: options.log,
      ...(options.idleRelistMs !== undefined ? { idleRelistMs: options.idleRelistMs } : {}),
    });
    this.informer.on(() => {
      if (!this.informer.synced) return; // the first list is applied as a whole below
      this.rebuild();
    });
    this.informer.start();
    void this.informer.ready().then(() => {
      this.rebuild();
      this.log.info({ streams: this.grants.size }, 'stream keys loaded from Kubernetes Secrets');
    });
  }

  get synced(): boolean {
    return this.informer.synced;
  }

  async ready(): Promise<void> {
    // The constructor's continuation on the same promise, registered first, has rebuilt the view.
    await this.informer.ready();
  }

  async close(): Promise<void> {
    await this.informer.stop();
  }

  private rebuild(notify = true): void {
    const next = new Map<string, StreamGrant>();
    const owners = new Map<string, string>();
    const duplicates = new Set<string>();
    const seen = new Set<string>();
    for (const secret of this.informer.list()) {
      const where = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
      seen.add(where);
      const read = grantFromSecret(secret);
      if ('problem' in read) {
        // Once per Secret and problem, and never with the key in it.
        if (this.reported.get(where) !== read.problem) {
          this.reported.set(where, read.problem);
          this.log.warn({ secret: where }, `stream key Secret ignored: ${read.problem}`);
        }
        continue;
      }
      this.reported.delete(where);
      if (next.has(read.key) && owners.get(read.key) !== streamId(read.grant.ref)) duplicates.add(read.key);
      next.set(read.key, read.grant);
      owners.set(read.key, streamId(read.grant.ref));
    }
    for (const key of duplicates) {
      this.log.error({ streams: owners.get(key) }, 'the same stream key is in two Secrets; refusing it for both');
      next.delete(key);
    }
    for (const where of [...this.reported.keys()]) if (!seen.has(where)) this.reported.delete(where);
    this.replaceGrants(next, notify);
  }
}

/**
 * The ingest's Kubernetes dependencies for `startIngest(config, deps)`:
 * the Secret-backed key source and the Lease-backed stream claims.
 */
export async function kubernetesIngestDeps(env: Env, log: Logger): Promise<{ keys: KeySource; claims: StreamClaims }> {
  const { LeaseStreamClaims, claimsConfigFromEnv } = await import('../claims/lease-claims.ts');
  const kc = loadKubeConfig();
  const idleRelistMs = envInt(env, 'TTEOK_KUBE_RELIST_IDLE_SECONDS', 300, 1) * 1000;
  const namespace = envOptional(env, 'TTEOK_WATCH_NAMESPACE');
  const keys = new KubeKeySource({ kc, log, idleRelistMs, ...(namespace ? { namespace } : {}) });
  const claims = new LeaseStreamClaims({ kc, log, ...claimsConfigFromEnv(env) });
  return { keys, claims };
}
