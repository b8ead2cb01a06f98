// Request collapsing in front of the holders: identical requests (same
// holder, stream, file and blocking query) that arrive while one is in
// flight share its answer, so the gateway→ingest load per stream is bounded
// by distinct requests, not by viewers (or CDN edges). The shared upstream
// request has a deadline, and is aborted once every client waiting for it
// has gone away.
import type { LowLatencyResponse } from '../../common/low-latency.ts';

interface Flight {
  promise: Promise<LowLatencyResponse>;
  controller: AbortController;
  waiters: number;
}

export class UpstreamTimeoutError extends Error {
  constructor(ms: number) {
    super(`the holder did not answer within ${ms} ms`);
    this.name = 'UpstreamTimeoutError';
  }
}

export class RequestCollapser {
  private readonly flights = new Map<string, Flight>();
  /** Upstream requests started: what collapsing keeps low (tests, metrics). */
  upstreamRequests = 0;

  constructor(private readonly timeoutMs: number) {}

  /** Requests in flight upstream now. */
  get inFlight(): number {
    return this.flights.size;
  }

  /** Whether a request for `key` is in flight (a new one would share it). */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** Clients waiting for those, all together. */
  get waiting(): number {
    let n = 0;
    for (const flight of this.flights.values()) n += flight.waiters;
    return n;
  }

  /**
   * The answer of `call` for `key`: the one already in flight, or a new one.
   * Rejects with UpstreamTimeoutError past the deadline, with the caller's
   * abort reason once `signal` aborts, and with `call`'s own error.
   */
  run(key: string, call: (signal: AbortSignal) => Promise<LowLatencyResponse>, signal: AbortSignal): Promise<LowLatencyResponse> {
    if (signal.aborted) return Promise.reject(signal.reason);
    let flight = this.flights.get(key);
    if (!flight) flight = this.start(key, call);
    const joined = flight;
    joined.waiters++;
    return new Promise<LowLatencyResponse>((resolve, reject) => {
      let settled = false;
      const settle = (finish: () => void): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        joined.waiters--;
        finish();
      };
      const onAbort = (): void => {
        settle(() => reject(signal.reason));
        if (joined.waiters > 0) return;
        // Nobody wants it any more: stop asking the holder, and let a later request start afresh.
        if (this.flights.get(key) === joined) this.flights.delete(key);
        joined.controller.abort(new Error('every client went away'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      joined.promise.then(
        (response) => settle(() => resolve(response)),
        (error: unknown) => settle(() => reject(error)),
      );
    });
  }

  private start(key: string, call: (signal: AbortSignal) => Promise<LowLatencyResponse>): Flight {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new UpstreamTimeoutError(this.timeoutMs)), this.timeoutMs);
    this.upstreamRequests++;
    const flight: Flight = { controller, waiters: 0, promise: Promise.resolve() as unknown as Promise<LowLatencyResponse> };
    flight.promise = (async () => {
      try {
        return await call(controller.signal);
      } catch (error) {
        // The deadline's own error, not the fetch's generic abort.
        throw controller.signal.aborted ? controller.signal.reason : error;
      } finally {
        clearTimeout(timer);
        if (this.flights.get(key) === flight) this.flights.delete(key);
      }
    })();
    // Rejections are handled by every waiter; none left (all aborted) must not be an unhandled rejection.
    flight.promise.catch(() => undefined);
    this.flights.set(key, flight);
    return flight;
  }
}
