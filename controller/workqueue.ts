// A work queue with client-go's semantics, over typed items (a StreamRef, the
// capacity item), each identified by its key:
//   - keys, not events: adding a key that is already waiting does nothing, so
//     a burst of events for one object becomes one reconcile;
//   - one reconcile in flight per key: a key added while it is being
//     processed waits until done() and is then processed again;
//   - failures come back through addRateLimited with the larger of a per-key
//     exponential backoff (5 ms doubling to 1000 s) and an overall token
//     bucket (10 per second, burst 100), client-go's DefaultControllerRateLimiter;
//   - forget() resets a key's backoff after a success.
import { backoffDelay } from '../common/backoff.ts';

export interface RateLimiterOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  qps: number;
  burst: number;
}

export const DEFAULT_RATE_LIMITS: RateLimiterOptions = { baseDelayMs: 5, maxDelayMs: 1_000_000, qps: 10, burst: 100 };

/** client-go's ItemExponentialFailureRateLimiter and BucketRateLimiter, combined with max(). */
export class RateLimiter {
  private readonly failures = new Map<string, number>();
  private tokens: number;
  private last = Date.now();

  constructor(private readonly options: RateLimiterOptions = DEFAULT_RATE_LIMITS) {
    this.tokens = options.burst;
  }

  /** The delay before `key` may be retried; counts a failure. */
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.max(backoffDelay(n, this.options.baseDelayMs, this.options.maxDelayMs, { jitter: false }), this.reserve());
  }

  /** Reserves a token from the bucket; returns how long until it is available. */
  private reserve(now = Date.now()): number {
    this.tokens = Math.min(this.options.burst, this.tokens + ((now - this.last) / 1000) * this.options.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.options.qps) * 1000;
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

export class WorkQueue<T = string> {
  private readonly queue: string[] = [];
  private readonly items = new Map<string, T>();
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(item: T | undefined) => void> = [];
  private shuttingDown = false;
  readonly limiter: RateLimiter;

  /** `keyOf` names an item: items with the same key are one item. */
  constructor(
    private readonly keyOf: (item: T) => string = String,
    limits: RateLimiterOptions = DEFAULT_RATE_LIMITS,
  ) {
    this.limiter = new RateLimiter(limits);
  }

  /** Items waiting to be processed (not counting delayed ones or those in flight). */
  get depth(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  add(item: T): void {
    const key = this.keyOf(item);
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.items.set(key, item);
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(item);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds the item after `ms`; an earlier pending addAfter for the same key wins. */
  addAfter(item: T, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(item);
      return;
    }
    const key = this.keyOf(item);
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(item);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  addRateLimited(item: T): number {
    const delay = this.limiter.when(this.keyOf(item));
    this.addAfter(item, delay);
    return delay;
  }

  /** How often the item has failed since it last succeeded. */
  retries(item: T): number {
    return this.limiter.retries(this.keyOf(item));
  }

  forget(item: T): void {
    this.limiter.forget(this.keyOf(item));
  }

  /** The next item to process, marking it in flight; undefined once shut down. */
  get(): Promise<T | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(this.items.get(key)!);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the item processed; if it was added meanwhile, it is queued again. */
  done(item: T): void {
    const key = this.keyOf(item);
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(this.items.get(key)!);
    } else {
      this.items.delete(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
