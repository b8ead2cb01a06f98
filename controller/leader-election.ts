// Leader election on a coordination.k8s.io Lease, with client-go's
// algorithm: every retry period a candidate tries to acquire or renew the
// lease; a lease held by someone else counts as expired only when this
// process has not seen it change for leaseDuration (its own clock, so clock
// skew between pods does not matter); the leader that cannot renew within
// renewDeadline stops leading. Writes carry the resourceVersion they read, so
// two candidates cannot both win. On a clean stop the leader releases the
// lease so another replica takes over at once.
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../common/log.ts';
import { KubeHttpError } from '../common/kube/client.ts';
import { LeaseClient, microTime, type LeaseObject } from '../common/kube/lease.ts';

export interface LeaderElectionOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onNewLeader?: (identity: string) => void;
}

export class LeaderElector {
  private readonly client: LeaseClient;
  private observed: { record: string; at: number } | undefined;
  private lastRenew = 0;
  private leading = false;
  private running = false;
  private loopDone: Promise<void> | undefined;
  /** Aborted by stop(): ends the wait between two rounds at once. */
  private stopping = new AbortController();
  private lastLeader = '';

  constructor(private readonly options: LeaderElectionOptions) {
    this.client = new LeaseClient(options.kc, Math.max(1000, Math.min(10_000, options.renewDeadlineMs / 2)));
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = new AbortController();
    this.loopDone = this.loop();
  }

  /** Stops; a leader releases the lease first. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    await this.loopDone;
    if (this.leading) {
      await this.release().catch((err: unknown) => this.options.log.warn({ err: (err as Error).message }, 'could not release the leader lease'));
      this.setLeading(false);
    }
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const ok = await this.tryAcquireOrRenew();
        if (ok) {
          this.lastRenew = Date.now();
          if (!this.leading) this.setLeading(true);
        }
      } catch (err) {
        this.options.log.warn({ err: (err as Error).message }, 'leader election: lease request failed');
      }
      if (this.leading && Date.now() - this.lastRenew > this.options.renewDeadlineMs) {
        this.options.log.error('leader election: could not renew the lease within the renew deadline; stopping leading');
        this.setLeading(false);
      }
      if (!this.running) break;
      const pause = this.options.retryPeriodMs * (this.leading ? 1 : 1 + Math.random() * 0.2);
      await sleep(pause, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) {
      this.options.log.info({ identity: this.options.identity, lease: `${this.options.namespace}/${this.options.name}` }, 'became the leader');
      this.options.onStartedLeading();
    } else {
      this.options.log.info({ identity: this.options.identity }, 'stopped leading');
      this.options.onStoppedLeading();
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationMs } = this.options;
    const now = Date.now();
    const durationSeconds = Math.max(1, Math.round(leaseDurationMs / 1000));
    const current = await this.client.get(namespace, name);
    if (!current) {
      try {
        await this.client.create(namespace, {
          metadata: { name, labels: { 'app.kubernetes.io/name': 'tteok', 'app.kubernetes.io/component': 'controller' } },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(), renewTime: microTime(), leaseTransitions: 0 },
        });
        this.observe(identity, 'created');
        return true;
      } catch (err) {
        if (err instanceof KubeHttpError && err.statusCode === 409) return false;
        throw err;
      }
    }
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = JSON.stringify([holder, spec.renewTime, spec.acquireTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    if (holder !== this.lastLeader) {
      this.lastLeader = holder;
      if (holder) this.options.onNewLeader?.(holder);
    }
    const heldByOther = holder !== '' && holder !== identity;
    const otherDuration = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && this.observed.at + otherDuration > now) return false;
    const next: LeaseObject = {
      ...current,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: holder === identity ? (spec.acquireTime ?? microTime()) : microTime(),
        renewTime: microTime(),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
      },
    };
    try {
      const written = await this.client.replace(namespace, next);
      const s = written.spec ?? {};
      this.observed = { record: JSON.stringify([s.holderIdentity ?? '', s.renewTime, s.acquireTime, s.leaseTransitions]), at: Date.now() };
      if (holder !== identity) {
        this.lastLeader = identity;
        this.options.onNewLeader?.(identity);
      }
      return true;
    } catch (err) {
      if (err instanceof KubeHttpError && err.statusCode === 409) return false;
      throw err;
    }
  }

  private observe(holder: string, why: string): void {
    this.observed = { record: why, at: Date.now() };
    this.lastLeader = holder;
    this.options.onNewLeader?.(holder);
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    const current = await this.client.get(namespace, name);
    if (!current || current.spec?.holderIdentity !== identity) return;
    await this.client.replace(namespace, {
      ...current,
      spec: { ...current.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() },
    });
    this.options.log.info('released the leader lease');
  }
}
