// The Kubernetes key source: an informer on LiveStreams, in every namespace or
// in $TTEOK_WATCH_NAMESPACE. The ingest never reads a Secret: the controller
// publishes the SHA-256 of each stream's key in status.streamKeySha256, and a
// presented key is verified by hashing it and looking the hash up. The keys
// are 192 random bits, so their hashes, readable by whoever may read
// LiveStreams, give nothing away; and this internet-facing process holds no
// credential that could read the cluster's Secrets.
//
// A stream grants publishes from when the controller has published its hash
// (a brand-new LiveStream has none for the moment until its key Secret exists:
// no key can publish to it yet, and none is known to anyone yet either) until
// it is being deleted. A rotated key is a new hash: the old key is unknown from
// then on, and StreamHub ends a publish whose key is no longer valid. Settings
// (title, enabled, HLS, retention, renditions) come straight from the spec,
// renditions from TTEOK_DEFAULT_RENDITIONS when the spec names none.
import type { KubeConfig } from '@kubernetes/client-node';
import { readEnv, type Env } from '../../common/env-config.ts';
import { KUBE_VIEW_ENV, RENDITIONS_ENV } from '../../common/shared-env.ts';
import type { Logger } from '../../common/log.ts';
import { isValidName, isValidNamespace, settingsFromSpec, streamId, type LiveStreamObject, type SpecDefaults } from '../../common/livestream.ts';
import { loadKubeConfig } from '../../common/kube/client.ts';
import { STREAM_KEY_SHA256_PATTERN, liveStreamsPath, streamKeySha256, type LiveStreamStatus } from '../../common/kube/contract.ts';
import { Informer } from '../../common/kube/informer.ts';
import { GrantTable, isWellFormedKey, type KeySource, type StreamGrant } from '../../common/keys/key-source.ts';
import type { StreamClaims } from '../stream-hub.ts';

export interface KubeKeySourceOptions {
  kc: KubeConfig;
  /** Only this namespace; all namespaces when undefined. */
  namespace?: string;
  log: Logger;
  idleRelistMs?: number;
  /** What a LiveStream that does not say gets (TTEOK_DEFAULT_RENDITIONS). */
  defaults?: SpecDefaults;
}

type LiveStream = LiveStreamObject & { metadata: { deletionTimestamp?: string } };

/**
 * Reads one LiveStream into a grant keyed by its key's hash; `none` when it
 * grants nothing (yet, or any more), `problem` when it is unusable.
 */
export function grantFromLiveStream(
  ls: LiveStream,
  defaults: SpecDefaults = {},
): { keySha256: string; grant: StreamGrant } | { none: string } | { problem: string } {
  if (ls.metadata.deletionTimestamp) return { none: 'being deleted' };
  const hash = (ls.status as LiveStreamStatus | undefined)?.streamKeySha256;
  if (hash === undefined) return { none: 'no key published yet' };
  if (typeof hash !== 'string' || !STREAM_KEY_SHA256_PATTERN.test(hash)) return { problem: 'status.streamKeySha256 is not a SHA-256 in hex' };
  const namespace = ls.metadata.namespace ?? '';
  const name = ls.metadata.name;
  if (!isValidNamespace(namespace) || !isValidName(name)) return { problem: 'not a valid LiveStream name' };
  // The API server validated the spec against the CRD; this fills in defaults.
  const { settings, problems } = settingsFromSpec(ls.spec, defaults);
  if (problems.length > 0) return { problem: problems.join('; ') };
  return { keySha256: hash, grant: { ref: { namespace, name }, settings } };
}

export class KubeKeySource extends GrantTable {
  private readonly informer: Informer<LiveStream>;
  private readonly log: Logger;
  private readonly defaults: SpecDefaults;
  private readonly reported = new Map<string, string>();
  private fingerprint = '';

  constructor(options: KubeKeySourceOptions) {
    super();
    this.log = options.log;
    this.defaults = options.defaults ?? {};
    this.informer = new Informer<LiveStream>({
      kc: options.kc,
      path: liveStreamsPath(options.namespace),
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
      this.log.info({ streams: this.grants.size }, 'stream key hashes loaded from LiveStreams');
    });
  }

  get synced(): boolean {
    return this.informer.synced;
  }

  /** The table is keyed by the key's SHA-256: hash the presented key and look that up. */
  override lookup(key: string): StreamGrant | undefined {
    if (!isWellFormedKey(key)) return undefined;
    return this.grants.get(streamKeySha256(key));
  }

  async ready(): Promise<void> {
    // The constructor's continuation on the same promise, registered first, has rebuilt the view.
    await this.informer.ready();
  }

  async close(): Promise<void> {
    await this.informer.stop();
  }

  private rebuild(): void {
    const next = new Map<string, StreamGrant>();
    const owners = new Map<string, string>();
    const duplicates = new Set<string>();
    const seen = new Set<string>();
    for (const ls of this.informer.list()) {
      const where = streamId({ namespace: ls.metadata.namespace ?? '', name: ls.metadata.name ?? '' });
      seen.add(where);
      const read = grantFromLiveStream(ls, this.defaults);
      if ('problem' in read) {
        // Once per LiveStream and problem.
        if (this.reported.get(where) !== read.problem) {
          this.reported.set(where, read.problem);
          this.log.warn({ stream: where }, `LiveStream ignored: ${read.problem}`);
        }
        continue;
      }
      this.reported.delete(where);
      if ('none' in read) continue;
      if (next.has(read.keySha256) && owners.get(read.keySha256) !== streamId(read.grant.ref)) duplicates.add(read.keySha256);
      next.set(read.keySha256, read.grant);
      owners.set(read.keySha256, streamId(read.grant.ref));
    }
    for (const hash of duplicates) {
      this.log.error({ streams: owners.get(hash) }, "the same stream key is in two LiveStreams' key Secrets; refusing it for both");
      next.delete(hash);
    }
    for (const where of [...this.reported.keys()]) if (!seen.has(where)) this.reported.delete(where);
    // Most LiveStream events are status writes that change no grant (live, ended): tell listeners only of real changes.
    const fingerprint = JSON.stringify([...next].sort(([a], [b]) => (a < b ? -1 : 1)));
    const changed = fingerprint !== this.fingerprint;
    this.fingerprint = fingerprint;
    this.replaceGrants(next, changed);
  }
}

/**
 * The ingest's Kubernetes dependencies for `startIngest(config, deps)`:
 * the LiveStream-backed key source and the Lease-backed stream claims.
 */
export async function kubernetesIngestDeps(env: Env, log: Logger): Promise<{ keys: KeySource; claims: StreamClaims }> {
  const { LeaseStreamClaims, claimsConfigFromEnv } = await import('../claims/lease-claims.ts');
  const kc = loadKubeConfig();
  const { relistIdleSeconds, watchNamespace: namespace } = readEnv(KUBE_VIEW_ENV, env);
  const { defaultRenditions } = readEnv(RENDITIONS_ENV, env);
  const idleRelistMs = relistIdleSeconds * 1000;
  const keys = new KubeKeySource({ kc, log, idleRelistMs, defaults: { renditions: defaultRenditions }, ...(namespace ? { namespace } : {}) });
  const claims = new LeaseStreamClaims({ kc, log, ...claimsConfigFromEnv(env) });
  return { keys, claims };
}
