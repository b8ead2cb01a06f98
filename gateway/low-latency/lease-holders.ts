// The holders in Kubernetes: an informer on the claim Leases (CLAIM_SELECTOR,
// in the ingest's namespace) tells which pod holds each live stream, and its
// annotation tteok.dev/ll-origin (common/kube/contract.ts) where that pod
// serves LL-HLS. A claim that has expired (its pod died and stopped renewing)
// names no holder, so the origin answers 404 and the CDN falls back to the
// object store's plain playlist.
import type { KubeConfig } from '@kubernetes/client-node';
import { readEnv, type Env } from '../../common/env-config.ts';
import { loadKubeConfig } from '../../common/kube/client.ts';
import { ANNOTATION_LL_ORIGIN, CLAIM_SELECTOR, claimLeaseName, leasesPath } from '../../common/kube/contract.ts';
import { Informer } from '../../common/kube/informer.ts';
import { leaseHeld, type LeaseObject } from '../../common/kube/lease.ts';
import type { StreamRef } from '../../common/livestream.ts';
import type { Logger } from '../../common/log.ts';
import { KUBE_VIEW_ENV, POD_ENV } from '../../common/shared-env.ts';
import type { Holder, HolderResolver } from './holders.ts';
import { HttpLowLatencySource } from './http-source.ts';

export interface LeaseHoldersOptions {
  kc: KubeConfig;
  /** Where the claim Leases live: the ingest's (the release's) namespace. */
  namespace: string;
  log: Logger;
  idleRelistMs?: number;
}

/** `http://<IPv4 or [IPv6] or a DNS name>:<port>` and nothing more: an annotation is data, never a URL with a path or credentials. */
export function llOriginUrl(annotation: string | undefined): string | undefined {
  if (!annotation || !/^http:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(annotation)) return undefined;
  try {
    return new URL(annotation).origin === annotation ? annotation : undefined;
  } catch {
    return undefined; // a port above 65535
  }
}

export class LeaseHolders implements HolderResolver {
  private readonly informer: Informer<LeaseObject>;
  /** One source per upstream (keep-alive connections are undici's, per origin). */
  private readonly sources = new Map<string, Holder>();

  constructor(private readonly options: LeaseHoldersOptions) {
    this.informer = new Informer<LeaseObject>({
      kc: options.kc,
      path: leasesPath(options.namespace),
      labelSelector: CLAIM_SELECTOR,
      log: options.log,
      ...(options.idleRelistMs !== undefined ? { idleRelistMs: options.idleRelistMs } : {}),
    });
    this.informer.on((type) => {
      if (type !== 'add') this.forgetUnnamed();
    });
    this.informer.start();
  }

  ready(): Promise<void> {
    return this.informer.ready();
  }

  holderOf(ref: StreamRef): Holder | undefined {
    const lease = this.informer.get(this.options.namespace, claimLeaseName(ref));
    if (!lease || !leaseHeld(lease)) return undefined;
    const url = llOriginUrl(lease.metadata.annotations?.[ANNOTATION_LL_ORIGIN]);
    if (!url) return undefined;
    let holder = this.sources.get(url);
    if (!holder) {
      holder = { id: url, source: new HttpLowLatencySource(url) };
      this.sources.set(url, holder);
    }
    return holder;
  }

  /** Forgets the upstreams no claim names any more (pods come and go, and so do their IPs). */
  private forgetUnnamed(): void {
    const named = new Set(this.informer.list().map((lease) => llOriginUrl(lease.metadata.annotations?.[ANNOTATION_LL_ORIGIN])));
    for (const url of this.sources.keys()) if (!named.has(url)) this.sources.delete(url);
  }

  close(): Promise<void> {
    return this.informer.stop();
  }
}

/**
 * The holders for TTEOK_VIEW=kubernetes: claim Leases in this pod's namespace
 * (the release's). Not waited for: until the first list (or without the
 * RBAC to make it) no stream has a holder, so the CDN serves the bucket's
 * playlists, and the gateway's API starts regardless.
 */
export function createLeaseHolders(env: Env, log: Logger): LeaseHolders {
  const { relistIdleSeconds } = readEnv(KUBE_VIEW_ENV, env);
  return new LeaseHolders({ kc: loadKubeConfig(), namespace: POD_ENV.podNamespace.read(env), log, idleRelistMs: relistIdleSeconds * 1000 });
}
