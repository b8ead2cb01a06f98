// The Kubernetes settings every role that watches LiveStreams reads the same
// way (ingest, gateway, controller): which namespace, and how long a quiet
// watch may stay open before it is re-listed.
import { envNumber, envOptional, type Env } from '../env-config.ts';

export interface KubeWatchSettings {
  /** Only LiveStreams in this namespace; undefined: every namespace. */
  namespace?: string;
  /** A watch that delivered nothing for this long is re-listed (a silently dead connection). */
  idleRelistMs: number;
}

export function kubeWatchSettings(env: Env): KubeWatchSettings {
  const namespace = envOptional(env, 'TTEOK_WATCH_NAMESPACE');
  return {
    idleRelistMs: envNumber(env, 'TTEOK_KUBE_RELIST_IDLE_SECONDS', 300, 1, 86_400) * 1000,
    ...(namespace ? { namespace } : {}),
  };
}
