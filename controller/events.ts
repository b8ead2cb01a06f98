// Kubernetes Events on LiveStreams, for `kubectl describe livestream`: what
// a user should see (key allocated or rotated, live, ended, media deleted,
// errors). Repeats of the same event within ten minutes bump its count, as
// client-go's recorder does, instead of piling up new objects. Messages never
// contain a stream key.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { API_VERSION_FULL, KIND } from '../common/livestream.ts';
import type { Logger } from '../common/log.ts';
import { MERGE_PATCH } from '../common/kube/client.ts';

export interface EventTarget {
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

const REPEAT_WINDOW_MS = 10 * 60_000;

export class EventRecorder {
  private readonly recent = new Map<string, { eventName: string; count: number; at: number }>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly component: string,
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  normal(target: EventTarget, reason: string, message: string): void {
    void this.record(target, 'Normal', reason, message);
  }

  warning(target: EventTarget, reason: string, message: string): void {
    void this.record(target, 'Warning', reason, message);
  }

  private async record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    const correlation = `${target.namespace}/${target.name}/${target.uid ?? ''}/${type}/${reason}/${message}`;
    const seen = this.recent.get(correlation);
    try {
      if (seen && now.getTime() - seen.at < REPEAT_WINDOW_MS) {
        seen.count++;
        seen.at = now.getTime();
        await this.core.patchNamespacedEvent(
          { namespace: target.namespace, name: seen.eventName, body: { count: seen.count, lastTimestamp: now } },
          MERGE_PATCH,
        );
        return;
      }
      const eventName = `${target.name}.${Date.now().toString(16)}${randomBytes(2).toString('hex')}`;
      const body: CoreV1Event = {
        metadata: { name: eventName, namespace: target.namespace },
        involvedObject: {
          apiVersion: API_VERSION_FULL,
          kind: KIND,
          namespace: target.namespace,
          name: target.name,
          ...(target.uid ? { uid: target.uid } : {}),
          ...(target.resourceVersion ? { resourceVersion: target.resourceVersion } : {}),
        },
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: this.component, host: this.host },
        reportingComponent: `tteok.dev/${this.component}`,
        reportingInstance: this.host,
      };
      await this.core.createNamespacedEvent({ namespace: target.namespace, body });
      this.recent.set(correlation, { eventName, count: 1, at: now.getTime() });
      if (this.recent.size > 5000) this.prune(now.getTime());
    } catch (err) {
      // Events are best effort; the status says the same.
      this.recent.delete(correlation);
      this.log.debug({ err: (err as Error).message, reason }, 'could not record an event');
    }
  }

  private prune(now: number): void {
    for (const [k, v] of this.recent) if (now - v.at > REPEAT_WINDOW_MS) this.recent.delete(k);
  }
}
