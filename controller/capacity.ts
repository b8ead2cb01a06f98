// Fits the ingest StatefulSet to demand through its scale subresource:
// enough pods for every enabled LiveStream at TTEOK_STREAMS_PER_INGEST each,
// within min and max. A StatefulSet removes its highest ordinals first, so
// the controller never scales below the highest ordinal that holds a live
// stream (that pod would be killed mid-stream). Scaling up is immediate;
// scaling down waits until the lower demand has lasted
// TTEOK_SCALE_DOWN_DELAY_SECONDS, so a stream deleted and re-created does not
// bounce the fleet.
import type { KubeConfig, V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../common/log.ts';
import { rawJson } from '../common/kube/client.ts';
import { statefulSetsPath } from '../common/kube/contract.ts';
import { leaseExpiresAt, leaseHeld, type LeaseObject } from '../common/kube/lease.ts';
import type { ControllerConfig } from './config.ts';
import type { LiveStream } from './reconciler.ts';

export interface CapacityInputs {
  liveStreams: LiveStream[];
  claims: LeaseObject[];
  statefulSet: V1StatefulSet | undefined;
}

export interface CapacityPlan {
  current: number;
  /** What demand alone asks for, within min and max. */
  byDemand: number;
  /** The lowest replica count that keeps every pod holding a live stream. */
  liveFloor: number;
  desired: number;
  /** When the earliest live claim that keeps a pod expires (ms since epoch): look again then. */
  floorExpiresAt: number | undefined;
}

export function planCapacity(config: ControllerConfig['ingest'], inputs: CapacityInputs): CapacityPlan | undefined {
  const sts = inputs.statefulSet;
  if (!sts) return undefined;
  const current = sts.spec?.replicas ?? 1;
  const demand = inputs.liveStreams.filter((ls) => !ls.metadata.deletionTimestamp && ls.spec?.enabled !== false).length;
  const byDemand = Math.min(config.maxReplicas, Math.max(config.minReplicas, Math.ceil(demand / config.streamsPerPod)));
  const podPattern = new RegExp(`^${escapeRegExp(config.statefulSet)}-(\\d+)$`);
  let liveFloor = 0;
  let floorExpiresAt: number | undefined;
  for (const claim of inputs.claims) {
    if (!leaseHeld(claim)) continue;
    const m = podPattern.exec(claim.spec?.holderIdentity ?? '');
    if (!m) continue;
    liveFloor = Math.max(liveFloor, Number(m[1]) + 1);
    const expires = leaseExpiresAt(claim)!;
    floorExpiresAt = floorExpiresAt === undefined ? expires : Math.min(floorExpiresAt, expires);
  }
  return { current, byDemand, liveFloor, desired: Math.max(byDemand, Math.min(liveFloor, current)), floorExpiresAt };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class CapacityManager {
  private lowerSince: number | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly config: ControllerConfig['ingest'],
    private readonly log: Logger,
    private readonly onScaled: (replicas: number) => void,
  ) {}

  /** Applies the plan; returns when to look again (a pending scale-down), if ever. */
  async reconcile(inputs: CapacityInputs): Promise<{ requeueAfterMs?: number }> {
    const plan = planCapacity(this.config, inputs);
    if (!plan) return {};
    const { current, desired } = plan;
    // A claim that holds the fleet up may expire (its pod died): look again then.
    const recheck =
      plan.liveFloor > plan.byDemand && plan.floorExpiresAt !== undefined ? { requeueAfterMs: Math.max(100, plan.floorExpiresAt - Date.now() + 100) } : {};
    if (desired === current) {
      this.lowerSince = undefined;
      return recheck;
    }
    if (desired < current) {
      const now = Date.now();
      this.lowerSince ??= now;
      const waited = now - this.lowerSince;
      if (waited < this.config.scaleDownDelayMs) return { requeueAfterMs: this.config.scaleDownDelayMs - waited + 10 };
    }
    await this.scale(desired);
    this.lowerSince = undefined;
    this.log.info(
      { statefulSet: `${this.config.namespace}/${this.config.statefulSet}`, from: current, to: desired, byDemand: plan.byDemand, liveFloor: plan.liveFloor },
      'scaled the ingest',
    );
    this.onScaled(desired);
    return recheck;
  }

  private async scale(replicas: number): Promise<void> {
    await rawJson(this.kc, `${statefulSetsPath(this.config.namespace)}/${encodeURIComponent(this.config.statefulSet)}/scale`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { spec: { replicas } },
    });
  }
}
