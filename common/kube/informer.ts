// The one informer tteok uses for Kubernetes objects (the controller's
// LiveStreams, Secrets, Leases and StatefulSet; the ingest's key Secrets; the
// gateway's LiveStreams): list, then watch from the list's resourceVersion,
// keeping an in-memory cache and calling handlers on every change.
//
// It replaces client-node's ListWatch/makeInformer, which stop silently
// (kubernetes-client/javascript#364, #596, #958: a watch that hangs delivers
// no error and no event) and stop for good on any error but 410. Here:
//   - every failure (list, watch request, stream error, ERROR event, a
//     rejected promise anywhere) restarts the loop after a capped, jittered
//     exponential backoff; the informer never gives up until stop();
//   - 410 Gone ("too old resource version") re-lists at once;
//   - watches ask for bookmarks and a server-side timeout, and a watchdog
//     re-lists when neither an event nor a bookmark arrived for
//     `idleRelistMs` (the silent-stop case), aborting the old connection;
//   - a re-list is diffed against the cache, so handlers see the adds,
//     updates and deletes they missed, never a duplicate;
//   - `synced` is true once the first list is in the cache.
// Objects are plain JSON as the API server sends them (timestamps are strings).
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { backoffDelay } from '../backoff.ts';
import type { Logger } from '../log.ts';
import { KubeHttpError, openRequest, rawJson } from './client.ts';

/** What the informer needs of an object: its identity and version. */
export interface KubeObjectLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export type EventType = 'add' | 'update' | 'delete';
export type Handler<T> = (type: EventType, obj: T, old: T | undefined) => void;

export interface InformerOptions {
  kc: KubeConfig;
  /** Collection path, e.g. /api/v1/secrets or /apis/tteok.dev/v1alpha1/namespaces/x/livestreams. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  /** Re-list when no event or bookmark arrived for this long (default 5 minutes). */
  idleRelistMs?: number;
  /** Server-side watch timeout, jittered up to 2x (default 5 minutes, as client-go). */
  watchTimeoutSeconds?: number;
  /** Restart backoff: first delay and cap (default 250 ms → 30 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Page size for lists (default 500). */
  pageSize?: number;
}

export interface InformerStats {
  lists: number;
  watches: number;
  events: number;
  bookmarks: number;
  errors: number;
  goneRelists: number;
  idleRelists: number;
}

interface ListResponse<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string; reason?: string };
}

export const DEFAULT_IDLE_RELIST_MS = 5 * 60_000;

function keyOf(obj: KubeObjectLike): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export class Informer<T extends KubeObjectLike> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: Array<Handler<T>> = [];
  private resourceVersion = '';
  private running = false;
  private loop: Promise<void> | undefined;
  private current: { abort: () => void } | undefined;
  /** Aborted by stop(): ends a retry delay at once. */
  private stopping = new AbortController();
  private isSynced = false;
  private readonly readyWaiters: Array<() => void> = [];
  private failures = 0;
  private consistentListNext = false;
  readonly stats: InformerStats = { lists: 0, watches: 0, events: 0, bookmarks: 0, errors: 0, goneRelists: 0, idleRelists: 0 };
  private readonly idleRelistMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly log: Logger;

  constructor(private readonly options: InformerOptions) {
    this.idleRelistMs = options.idleRelistMs ?? DEFAULT_IDLE_RELIST_MS;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.backoffInitialMs = options.backoffInitialMs ?? 250;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.log = options.log.child({ informer: options.path + (options.labelSelector ? `?${options.labelSelector}` : '') });
  }

  /** True once the first full list is in the cache (stays true across re-lists). */
  get synced(): boolean {
    return this.isSynced;
  }

  /** Resolves once synced. */
  ready(): Promise<void> {
    if (this.isSynced) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  on(handler: Handler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.stopping = new AbortController();
    this.loop = this.run().catch((err: unknown) => this.log.error({ err }, 'informer loop crashed'));
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.current?.abort();
    this.stopping.abort();
    await this.loop;
  }

  /** Drops the current watch and re-lists now (used by tests and after long pauses). */
  relist(): void {
    this.resourceVersion = '';
    this.current?.abort();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (!this.resourceVersion) await this.doList();
        if (!this.running) break;
        const began = Date.now();
        const eventsBefore = this.stats.events + this.stats.bookmarks;
        const outcome = await this.doWatch();
        if (outcome === 'gone') {
          this.stats.goneRelists++;
          this.log.info('watch expired (410 Gone); re-listing');
          this.resourceVersion = '';
          this.consistentListNext = true;
        } else if (outcome === 'idle') {
          this.stats.idleRelists++;
          this.log.warn({ idleMs: this.idleRelistMs }, 'no watch event or bookmark for too long; re-listing');
          this.resourceVersion = '';
        }
        // 'closed' (server timeout, normal end): re-watch from the last resourceVersion,
        // after a backoff if the watch ended at once with nothing (a proxy closing it).
        if (
          outcome === 'closed' &&
          this.running &&
          this.resourceVersion &&
          Date.now() - began < 1000 &&
          this.stats.events + this.stats.bookmarks === eventsBefore
        ) {
          this.failures++;
          await sleep(this.retryDelay(), undefined, { signal: this.stopping.signal }).catch(() => undefined);
        } else if (outcome !== 'idle') {
          this.failures = 0;
        }
      } catch (err) {
        if (!this.running) break;
        if (err instanceof KubeHttpError && err.statusCode === 410) {
          this.stats.goneRelists++;
          this.resourceVersion = '';
          this.consistentListNext = true;
          continue;
        }
        this.stats.errors++;
        this.failures++;
        // 404: the resource type is not served (yet): a CRD being installed is picked up within 2 s.
        const jittered = err instanceof KubeHttpError && err.statusCode === 404 ? Math.min(2000, this.retryDelay()) : this.retryDelay();
        this.log[this.failures > 3 ? 'warn' : 'info']({ err: errString(err), retryInMs: Math.round(jittered) }, 'list/watch failed; retrying');
        await sleep(jittered, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  private retryDelay(): number {
    return backoffDelay(this.failures - 1, this.backoffInitialMs, this.backoffMaxMs);
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.options.labelSelector) q.set('labelSelector', this.options.labelSelector);
    if (this.options.fieldSelector) q.set('fieldSelector', this.options.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.options.path}?${q.toString()}`;
  }

  /**
   * Lists everything. Like client-go's reflector, the first list (and a re-list
   * after an idle watch) asks for resourceVersion=0, served from the API
   * server's watch cache, so the watch that follows starts from a version the
   * cache has and is not held back waiting for it; after 410 Gone the list is
   * a consistent read from etcd (resourceVersion unset), paginated.
   */
  private async doList(): Promise<void> {
    const fromCache = !this.consistentListNext;
    this.consistentListNext = false;
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const params: Record<string, string> = fromCache
        ? { resourceVersion: '0' }
        : { limit: String(this.options.pageSize ?? 500), ...(cont ? { continue: cont } : {}) };
      const page = await rawJson<ListResponse<T>>(this.options.kc, this.query(params), { timeoutMs: 60_000 });
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont);
    if (!this.running) return;
    this.stats.lists++;
    this.log.debug({ items: items.length, resourceVersion: rv }, 'listed');
    // Diff against the cache: handlers see exactly what changed while we were not watching.
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      this.apply('ADDED', item);
    }
    for (const [key, old] of [...this.cache]) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old, old);
      }
    }
    this.resourceVersion = rv;
    if (!this.isSynced) {
      this.isSynced = true;
      for (const r of this.readyWaiters.splice(0)) r();
    }
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const key = keyOf(obj);
    const old = this.cache.get(key);
    if (type === 'DELETED') {
      if (!old) return;
      this.cache.delete(key);
      this.emit('delete', obj, old);
      return;
    }
    if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    this.cache.set(key, obj);
    this.emit(old ? 'update' : 'add', obj, old);
  }

  private emit(type: EventType, obj: T, old: T | undefined): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (err) {
        this.log.error({ err }, 'informer handler threw');
      }
    }
  }

  /** One watch connection; resolves with why it ended, rejects on errors. */
  private async doWatch(): Promise<'closed' | 'gone' | 'idle'> {
    const timeoutSeconds = Math.round(this.watchTimeoutSeconds * (1 + Math.random()));
    const controller = new AbortController();
    let idle = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const resetIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        controller.abort();
      }, this.idleRelistMs);
    };
    this.current = { abort: () => controller.abort() };
    resetIdle();
    try {
      let res: IncomingMessage;
      try {
        res = await openRequest(
          this.options.kc,
          this.query({
            watch: 'true',
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: 'true',
            timeoutSeconds: String(timeoutSeconds),
          }),
          { signal: controller.signal },
        );
      } catch (err) {
        if (idle) return 'idle';
        if (controller.signal.aborted) return 'closed';
        throw err;
      }
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        let message = text.slice(0, 300);
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? message;
        } catch {
          // not JSON
        }
        if (status === 410) return 'gone';
        throw new KubeHttpError(status, `watch answered ${status}: ${message}`);
      }
      this.stats.watches++;
      this.log.debug({ resourceVersion: this.resourceVersion }, 'watching');
      let gone = false;
      let streamError: Error | undefined;
      let buffered = '';
      res.setEncoding('utf8');
      try {
        for await (const chunk of res as AsyncIterable<string>) {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (!line) continue;
            let event: WatchEvent<T>;
            try {
              event = JSON.parse(line) as WatchEvent<T>;
            } catch {
              continue;
            }
            resetIdle();
            if (event.type === 'ERROR') {
              if (event.object?.code === 410) gone = true;
              else streamError = new KubeHttpError(event.object?.code ?? 500, `watch error: ${event.object?.message ?? 'unknown'}`);
              res.destroy();
              break;
            }
            const rv = event.object?.metadata?.resourceVersion;
            if (event.type === 'BOOKMARK') {
              this.stats.bookmarks++;
              if (rv) this.resourceVersion = rv;
              continue;
            }
            this.stats.events++;
            this.log.debug({ type: event.type, name: event.object?.metadata?.name }, 'watch event');
            this.apply(event.type, event.object);
            if (rv) this.resourceVersion = rv;
          }
          if (gone || streamError) break;
        }
      } catch (err) {
        if (idle) return 'idle';
        if (!controller.signal.aborted && !gone && !streamError) throw err;
      }
      if (gone) return 'gone';
      if (streamError) throw streamError;
      if (idle) return 'idle';
      return 'closed';
    } finally {
      clearTimeout(idleTimer);
      controller.abort();
      this.current = undefined;
    }
  }
}

function errString(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
