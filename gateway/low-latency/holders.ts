// Who holds a live stream's LL-HLS playlists and parts, and how to ask it:
// the in-process ingest in the one-machine mode, the claim Lease's pod in
// Kubernetes (lease-holders.ts). The LL origin (plugins/low-latency.ts)
// depends only on this interface.
import type { StreamRef } from '../../common/livestream.ts';
import type { LowLatencySource } from '../../common/low-latency.ts';

export interface Holder {
  /** Tells holders apart, so that collapsing never merges requests meant for two different ones. */
  id: string;
  source: LowLatencySource;
}

export interface HolderResolver {
  /** The stream's holder now, or undefined when no ingest holds it live (the origin answers 404). */
  holderOf(ref: StreamRef): Holder | undefined;
  close(): Promise<void>;
}

/** The one-machine mode: the ingest in this process holds every live stream (and answers 404 for the others). */
export function inProcessHolders(source: LowLatencySource): HolderResolver {
  const holder: Holder = { id: 'in-process', source };
  return { holderOf: () => holder, close: async () => undefined };
}
