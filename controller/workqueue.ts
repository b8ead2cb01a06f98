// A work queue with client-go's semantics:
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

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  readonly limiter: RateLimiter;

  constructor(limits: RateLimiterOptions = DEFAULT_RATE_LIMITS) {
    this.limiter = new RateLimiter(limits);
  }

  /** Keys waiting to be processed (not counting delayed ones or those in flight). */
  get depth(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds the key after `ms`; an earlier pending addAfter for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  addRateLimited(key: string): number {
    const delay = this.limiter.when(key);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  /** The next key to process, marking it in flight; undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
