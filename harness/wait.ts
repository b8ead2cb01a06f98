// Polling helpers: wait for a condition that a real server reaches in its own time.
import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown by a probe when waiting longer is pointless (the server it waits for has exited): waitFor rethrows it at once. */
export class StopWaiting extends Error {}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

export async function httpReady(url: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${url} to answer`,
    async () => {
      const res = await fetch(url);
      return res.status < 500;
    },
    { timeoutMs, intervalMs: 200 },
  );
}
