// One publisher per stream across the whole ingest fleet. The pod that
// accepts a publish claims the stream with a coordination.k8s.io Lease named
// claim.<namespace>.<name> in its own namespace, holder = the pod, renewed
// while the stream is live. Another pod asked to accept the same stream finds
// the claim held and refuses; a pod that dies stops renewing, its claim
// expires after leaseDurationSeconds and the stream can go live elsewhere.
// The controller watches these Leases for the Live condition, liveSince and
// ingestPod. Writes carry the resourceVersion they read, so two pods racing
// for the same stream cannot both win.
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { envInt, envString, type Env } from '../../common/env-config.ts';
import type { Logger } from '../../common/log.ts';
import { streamId, type StreamRef } from '../../common/livestream.ts';
import { KubeHttpError } from '../../common/kube/client.ts';
import { CLAIM_SELECTOR, LABEL_CLAIM, LABEL_LIVESTREAM, LABEL_LIVESTREAM_NAMESPACE, claimLeaseName } from '../../common/kube/contract.ts';
import { podNamespace } from '../../common/kube/client.ts';
import { LeaseClient, leaseHeld, microTime, type LeaseObject } from '../../common/kube/lease.ts';
import type { StreamClaims } from '../stream-hub.ts';

export { CLAIM_SELECTOR };

export interface ClaimsConfig {
  /** This pod's name: the holder identity. */
  podName: string;
  /** Where the claim Leases live: the ingest's namespace. */
  namespace: string;
  /** How long a claim outlives its holder's last renewal. */
  leaseDurationSeconds: number;
}

export function claimsConfigFromEnv(env: Env): ClaimsConfig {
  return {
    podName: envString(env, 'TTEOK_POD_NAME', hostname()),
    namespace: podNamespace(env),
    leaseDurationSeconds: envInt(env, 'TTEOK_CLAIM_LEASE_SECONDS', 15, 2, 3600),
  };
}

export interface LeaseStreamClaimsOptions extends ClaimsConfig {
  kc: KubeConfig;
  log: Logger;
}

interface Held {
  lease: LeaseObject;
  timer: NodeJS.Timeout;
  renewing: Promise<void> | undefined;
}

export class LeaseStreamClaims implements StreamClaims {
  private readonly leases: LeaseClient;
  private readonly held = new Map<string, Held>();
  private readonly renewEveryMs: number;

  private readonly lostListeners: Array<(ref: StreamRef) => void> = [];

  constructor(private readonly options: LeaseStreamClaimsOptions) {
    this.leases = new LeaseClient(options.kc, Math.max(2000, (options.leaseDurationSeconds * 1000) / 3));
    this.renewEveryMs = Math.max(500, (options.leaseDurationSeconds * 1000) / 3);
  }

  async acquire(ref: StreamRef): Promise<boolean> {
    const { namespace, podName, leaseDurationSeconds } = this.options;
    const name = claimLeaseName(ref);
    const id = streamId(ref);
    const now = microTime();
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.leases.get(namespace, name);
      let written: LeaseObject;
      try {
        if (!current) {
          written = await this.leases.create(namespace, {
            metadata: {
              name,
              labels: { [LABEL_CLAIM]: 'true', [LABEL_LIVESTREAM_NAMESPACE]: ref.namespace, [LABEL_LIVESTREAM]: ref.name },
            },
            spec: { holderIdentity: podName, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          });
        } else {
          const holder = current.spec?.holderIdentity;
          if (holder && holder !== podName && leaseHeld(current)) {
            this.options.log.info({ stream: id, holder }, 'stream is claimed by another ingest pod');
            return false;
          }
          // Free, expired, or ours from before a restart of this pod: take it, as a new run.
          written = await this.leases.replace(namespace, {
            ...current,
            spec: {
              holderIdentity: podName,
              leaseDurationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: (current.spec?.leaseTransitions ?? 0) + (holder && holder !== podName ? 1 : 0),
            },
          });
        }
      } catch (err) {
        if (err instanceof KubeHttpError && err.statusCode === 409) continue; // someone wrote in between: look again
        throw err;
      }
      this.hold(ref, written);
      return true;
    }
    return false;
  }

  onLost(listener: (ref: StreamRef) => void): void {
    this.lostListeners.push(listener);
  }

  async release(ref: StreamRef): Promise<void> {
    const id = streamId(ref);
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    clearInterval(held.timer);
    await held.renewing?.catch(() => undefined);
    const name = claimLeaseName(ref);
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.leases.get(this.options.namespace, name);
      if (!current || current.spec?.holderIdentity !== this.options.podName) return;
      if (await this.leases.delete(this.options.namespace, name, current.metadata.resourceVersion)) return;
    }
  }

  /** Stops renewing every claim without releasing them (they expire); for a crash-like stop in tests. */
  abandonAll(): void {
    for (const held of this.held.values()) clearInterval(held.timer);
    this.held.clear();
  }

  private hold(ref: StreamRef, lease: LeaseObject): void {
    const id = streamId(ref);
    const previous = this.held.get(id);
    if (previous) clearInterval(previous.timer);
    const held: Held = {
      lease,
      renewing: undefined,
      timer: setInterval(() => {
        if (held.renewing) return;
        held.renewing = this.renew(ref, held).finally(() => {
          held.renewing = undefined;
        });
      }, this.renewEveryMs),
    };
    held.timer.unref();
    this.held.set(id, held);
  }

  private async renew(ref: StreamRef, held: Held): Promise<void> {
    const { namespace, podName } = this.options;
    try {
      held.lease = await this.leases.replace(namespace, { ...held.lease, spec: { ...held.lease.spec, renewTime: microTime() } });
    } catch (err) {
      if (!(err instanceof KubeHttpError) || (err.statusCode !== 409 && err.statusCode !== 404)) {
        this.options.log.warn({ stream: streamId(ref), err: (err as Error).message }, 'could not renew the stream claim; retrying');
        return;
      }
      // Changed under us: still ours (e.g. our own earlier write) → continue from it; otherwise lost.
      const current = await this.leases.get(namespace, claimLeaseName(ref)).catch(() => undefined);
      if (current && current.spec?.holderIdentity === podName) {
        held.lease = current;
        return;
      }
      if (this.held.get(streamId(ref)) === held) {
        clearInterval(held.timer);
        this.held.delete(streamId(ref));
        this.options.log.error({ stream: streamId(ref), holder: current?.spec?.holderIdentity }, 'lost the stream claim (it expired and another pod took it, or it was deleted)');
        for (const listener of this.lostListeners) listener(ref);
      }
    }
  }
}
