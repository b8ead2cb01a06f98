// One queue and its workers, in sample-controller's shape: informers add
// items, `processNext` takes one, reconciles it, and either forgets its
// failures (success, maybe with a requeue after a delay) or puts it back
// rate-limited. Each kind of work (LiveStreams, capacity) has a loop of its
// own, so a slow one never holds the other's items.
import { errorMessage } from '../common/kube/client.ts';
import type { Logger } from '../common/log.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { RateLimiterOptions } from './workqueue.ts';
import { WorkQueue } from './workqueue.ts';

export interface ReconcileOutcome {
  requeueAfterMs?: number;
}

export interface ReconcileLoopOptions<T> {
  /** The metrics label of this loop's work. */
  kind: 'livestream' | 'capacity';
  keyOf(item: T): string;
  /** Reconciles one item; `failures` counts its failed attempts since its last success. */
  reconcile(item: T, failures: { count: number; lastError?: string }): Promise<ReconcileOutcome>;
  metrics: ControllerMetrics;
  log: Logger;
  rateLimits?: RateLimiterOptions;
}

export class ReconcileLoop<T> {
  readonly queue: WorkQueue<T>;
  private readonly lastErrors = new Map<string, string>();
  private readonly workers: Array<Promise<void>> = [];
  /** Bumped when leadership is lost: workers of an older generation stop. */
  private generation = 0;
  private running = false;

  constructor(private readonly options: ReconcileLoopOptions<T>) {
    this.queue = new WorkQueue<T>(options.keyOf, options.rateLimits);
  }

  /** Starts `count` workers; they run until `pause` or `shutDown`. */
  start(count: number): void {
    this.running = true;
    const generation = ++this.generation;
    for (let i = 0; i < count; i++) {
      this.workers.push(
        (async () => {
          while (this.running && generation === this.generation && (await this.processNext(generation))) {
            // processNext does the work; the loop only decides whether to go on.
          }
        })(),
      );
    }
  }

  /** Stops handing out items (leadership lost); items stay queued for the next start. */
  pause(): void {
    this.running = false;
    this.generation++;
  }

  /**
   * Takes one item and reconciles it. False when the queue is shut down or
   * this worker's generation has ended (the item then goes back to the queue).
   */
  async processNext(generation = this.generation): Promise<boolean> {
    const item = await this.queue.get();
    if (item === undefined) return false;
    if (!this.running || generation !== this.generation) {
      this.queue.done(item);
      this.queue.add(item);
      return false;
    }
    try {
      await this.sync(item);
    } finally {
      this.queue.done(item);
    }
    return true;
  }

  private async sync(item: T): Promise<void> {
    const { kind, keyOf, metrics, log } = this.options;
    const key = keyOf(item);
    log.debug({ item: key }, 'reconcile start');
    const end = metrics.reconcileDuration.startTimer({ kind });
    try {
      const lastError = this.lastErrors.get(key);
      const { requeueAfterMs } = await this.options.reconcile(item, { count: this.queue.retries(item), ...(lastError !== undefined ? { lastError } : {}) });
      end({ result: 'success' });
      this.queue.forget(item);
      this.lastErrors.delete(key);
      if (requeueAfterMs !== undefined) this.queue.addAfter(item, requeueAfterMs);
    } catch (err) {
      end({ result: 'error' });
      metrics.reconcileErrors.inc({ kind });
      const message = errorMessage(err);
      this.lastErrors.set(key, message);
      const delay = this.queue.addRateLimited(item);
      log[this.queue.retries(item) > 5 ? 'warn' : 'debug']({ item: key, err: message, retryInMs: delay }, 'reconcile failed; retrying with backoff');
    }
  }

  /** Ends the workers after their in-flight items. */
  async shutDown(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
  }
}
