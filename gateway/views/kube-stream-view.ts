// The gateway's view of streams in Kubernetes: an informer on LiveStreams
// (every namespace, or one), read from what the controller reports in their
// status. Requests are served from this in-memory view, never from an API call.
import type { KubeConfig } from '@kubernetes/client-node';
import { readEnv, type Env } from '../../common/env-config.ts';
import { KUBE_VIEW_ENV } from '../../common/shared-env.ts';
import { loadKubeConfig } from '../../common/kube/client.ts';
import type { Logger } from '../../common/log.ts';
import { streamId, type LiveStreamObject, type StreamRef } from '../../common/livestream.ts';
import { liveStreamsPath, type LiveStreamStatus } from '../../common/kube/contract.ts';
import { Informer } from '../../common/kube/informer.ts';
import type { StreamPhase, StreamState, StreamView } from '../../common/stream-view.ts';

export interface KubeStreamViewOptions {
  kc: KubeConfig;
  /** Only this namespace; every namespace when undefined. */
  namespace?: string;
  log: Logger;
  /** Informer re-list after this long without an event or bookmark. */
  idleRelistMs?: number;
}

const PHASES: ReadonlySet<string> = new Set<StreamPhase>(['Pending', 'Ready', 'Live', 'Disabled', 'Error']);

export function stateFromLiveStream(ls: LiveStreamObject): StreamState {
  const status = (ls.status ?? {}) as LiveStreamStatus;
  const phase: StreamPhase = status.phase && PHASES.has(status.phase) ? status.phase : 'Pending';
  const liveCondition = status.conditions?.find((c) => c.type === 'Live');
  const live = liveCondition ? liveCondition.status === 'True' : phase === 'Live';
  return {
    namespace: ls.metadata.namespace ?? '',
    name: ls.metadata.name,
    title: typeof ls.spec?.title === 'string' ? ls.spec.title : '',
    phase,
    live,
    // Anything but public (or unset) is private: a value the CRD should have refused fails closed.
    access: (ls.spec?.playback?.access ?? 'public') === 'public' ? 'public' : 'private',
    ...(live && status.liveSince ? { liveSince: status.liveSince } : {}),
  };
}

export class KubeStreamView implements StreamView {
  private readonly informer: Informer<LiveStreamObject & { metadata: { name: string } }>;
  private readonly states = new Map<string, StreamState>();
  private readonly listeners: Array<() => void> = [];

  constructor(options: KubeStreamViewOptions) {
    this.informer = new Informer({
      kc: options.kc,
      path: liveStreamsPath(options.namespace),
      log: options.log,
      ...(options.idleRelistMs !== undefined ? { idleRelistMs: options.idleRelistMs } : {}),
    });
    this.informer.on((type, obj) => {
      const id = streamId({ namespace: obj.metadata.namespace ?? '', name: obj.metadata.name });
      if (type === 'delete') {
        this.states.delete(id);
      } else {
        const next = stateFromLiveStream(obj);
        const prev = this.states.get(id);
        this.states.set(id, next);
        if (prev && sameState(prev, next)) return; // a status write that changed nothing a viewer sees
      }
      if (this.informer.synced) this.notify();
    });
    this.informer.start();
    void this.informer.ready().then(() => this.notify());
  }

  list(): StreamState[] {
    return [...this.states.values()];
  }

  get(ref: StreamRef): StreamState | undefined {
    return this.states.get(streamId(ref));
  }

  get synced(): boolean {
    return this.informer.synced;
  }

  ready(): Promise<void> {
    return this.informer.ready();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await this.informer.stop();
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

function sameState(a: StreamState, b: StreamState): boolean {
  return a.title === b.title && a.phase === b.phase && a.live === b.live && a.liveSince === b.liveSince && a.access === b.access;
}

/** The gateway's view for TTEOK_VIEW=kubernetes, loaded and synced. */
export async function createKubeStreamView(env: Env, log: Logger): Promise<KubeStreamView> {
  const { relistIdleSeconds, watchNamespace: namespace } = readEnv(KUBE_VIEW_ENV, env);
  const view = new KubeStreamView({
    kc: loadKubeConfig(),
    log,
    idleRelistMs: relistIdleSeconds * 1000,
    ...(namespace ? { namespace } : {}),
  });
  await view.ready();
  return view;
}
