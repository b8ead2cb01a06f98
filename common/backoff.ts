// The one retry delay of the project: capped exponential backoff. Retry
// number `attempt` (0 for the first) waits baseMs doubled `attempt` times, at
// most maxMs. With jitter (the default) the delay is drawn from the upper half
// of that, so the many clients of a store or API server that was down do not
// all come back at the same instant; without it, it is exact (client-go's
// per-item rate limiter, which the controller's work queue mirrors).
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffOptions {
  /** Draw from [delay/2, delay] (rounded to whole ms) rather than the delay itself. */
  jitter?: boolean;
}

export function backoffDelay(attempt: number, baseMs = 100, maxMs = 5000, { jitter = true }: BackoffOptions = {}): number {
  // 2^60 ms outgrows any bound; capping the exponent keeps the product finite.
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 60));
  return jitter ? Math.round(exp / 2 + Math.random() * (exp / 2)) : exp;
}

export interface RetryOptions {
  /** Attempts in all (Infinity: until it succeeds, or `stop` says to give up). */
  attempts: number;
  baseMs?: number;
  maxMs?: number;
  /** Called after each failed attempt (0 for the first), before the wait. */
  onFailure?(error: unknown, attempt: number): void;
  /** Asked after a failure: true gives up at once with that failure. */
  stop?(): boolean;
}

/** Runs `op` until it resolves, waiting backoffDelay between attempts; throws the last failure once out of attempts. */
export async function retry<T>(op: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (error) {
      options.onFailure?.(error, attempt);
      if (attempt + 1 >= options.attempts || options.stop?.()) throw error;
      await sleep(backoffDelay(attempt, options.baseMs, options.maxMs));
    }
  }
}
