// An informer's cache, plus what this controller itself just wrote. After a
// write, the next reconcile of the same object may run before the informer
// delivers the write; reading the written object instead keeps a reconcile
// from acting on its own stale view (rotating a key twice, emitting an event
// twice). A written object is used until the informer has caught up with it.
import type { Informer, KubeObjectLike } from '../common/kube/informer.ts';

function rvNumber(obj: KubeObjectLike | undefined): number | undefined {
  const rv = obj?.metadata?.resourceVersion;
  if (rv === undefined || !/^\d+$/.test(rv)) return undefined;
  return Number(rv);
}

const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

export class FreshCache<T extends KubeObjectLike> {
  private readonly written = new Map<string, T | null>();

  constructor(readonly informer: Informer<T>) {
    informer.on((type, obj) => {
      const key = keyOf(obj.metadata?.namespace, obj.metadata?.name ?? '');
      const mine = this.written.get(key);
      if (mine === undefined) return;
      if (type === 'delete') {
        this.written.delete(key);
        return;
      }
      const seen = rvNumber(obj);
      const wrote = mine === null ? undefined : rvNumber(mine);
      // Numeric comparison of resourceVersions: etcd revisions, as every API server uses.
      if (mine === null || seen === undefined || wrote === undefined || seen >= wrote) this.written.delete(key);
    });
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const mine = this.written.get(keyOf(namespace, name));
    if (mine === null) return undefined;
    return mine ?? this.informer.get(namespace, name);
  }

  /** Records an object this process wrote (the API server's answer). */
  wrote(obj: T): void {
    this.written.set(keyOf(obj.metadata?.namespace, obj.metadata?.name ?? ''), obj);
  }

  /** Records a delete this process made. */
  deleted(namespace: string | undefined, name: string): void {
    if (this.informer.get(namespace, name)) this.written.set(keyOf(namespace, name), null);
    else this.written.delete(keyOf(namespace, name));
  }

  forget(namespace: string | undefined, name: string): void {
    this.written.delete(keyOf(namespace, name));
  }

  clear(): void {
    this.written.clear();
  }
}
