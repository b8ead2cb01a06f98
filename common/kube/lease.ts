// coordination.k8s.io/v1 Leases as plain JSON: the controller's leader
// election and the ingest's per-stream claims both hold one. Writes carry the
// resourceVersion they read, so two contenders cannot both win: the loser
// gets 409 Conflict.
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeHttpError, rawJson } from './client.ts';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: LeaseSpec;
}

/** A Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** When the lease's current holder stops holding it (ms since epoch), or undefined if nobody holds it. */
export function leaseExpiresAt(lease: LeaseObject | undefined): number | undefined {
  const spec = lease?.spec;
  if (!spec?.holderIdentity) return undefined;
  const renewed = Date.parse(String(spec.renewTime ?? spec.acquireTime ?? ''));
  if (Number.isNaN(renewed)) return undefined;
  return renewed + (spec.leaseDurationSeconds ?? 0) * 1000;
}

/** True while somebody holds the lease and it has not expired (by this machine's clock). */
export function leaseHeld(lease: LeaseObject | undefined, now = Date.now()): boolean {
  const expires = leaseExpiresAt(lease);
  return expires !== undefined && expires > now;
}

const leasesPath = (namespace: string, name?: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases${name ? `/${encodeURIComponent(name)}` : ''}`;

export class LeaseClient {
  /** `signal`, once aborted, ends every request in flight and every later one at once (a stopping client). */
  constructor(
    private readonly kc: KubeConfig,
    private readonly timeoutMs = 10_000,
    private readonly signal?: AbortSignal,
  ) {}

  async get(namespace: string, name: string): Promise<LeaseObject | undefined> {
    try {
      return await rawJson<LeaseObject>(this.kc, leasesPath(namespace, name), { timeoutMs: this.timeoutMs, signal: this.signal });
    } catch (err) {
      if (err instanceof KubeHttpError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Creates the lease; rejects with 409 if it exists. */
  create(namespace: string, lease: LeaseObject): Promise<LeaseObject> {
    return rawJson<LeaseObject>(this.kc, leasesPath(namespace), {
      method: 'POST',
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease, metadata: { ...lease.metadata, namespace } },
      timeoutMs: this.timeoutMs,
      signal: this.signal,
    });
  }

  /** Replaces the lease; rejects with 409 if it changed since `lease.metadata.resourceVersion` was read. */
  replace(namespace: string, lease: LeaseObject): Promise<LeaseObject> {
    return rawJson<LeaseObject>(this.kc, leasesPath(namespace, lease.metadata.name), {
      method: 'PUT',
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease },
      timeoutMs: this.timeoutMs,
      signal: this.signal,
    });
  }

  /** Deletes the lease if it is still the version read (404 and 409 are reported as false). */
  async delete(namespace: string, name: string, resourceVersion?: string): Promise<boolean> {
    try {
      await rawJson(this.kc, leasesPath(namespace, name), {
        method: 'DELETE',
        body: { apiVersion: 'v1', kind: 'DeleteOptions', ...(resourceVersion ? { preconditions: { resourceVersion } } : {}) },
        timeoutMs: this.timeoutMs,
        signal: this.signal,
      });
      return true;
    } catch (err) {
      if (err instanceof KubeHttpError && (err.statusCode === 404 || err.statusCode === 409)) return false;
      throw err;
    }
  }
}
