// Child processes for tests: real servers and real ffmpeg, with their output
// kept for assertions, and a registry so nothing outlives the test file.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every line the process wrote to stdout and stderr, in order. */
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line matching, rejects after timeoutMs or when the process exits. */
  /** The first line matching, among those from index `from` on (default: all), waiting for it to come. */
  waitForLine(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  /** Sends the signal and waits for exit; escalates to SIGKILL after graceMs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const running = new Set<ManagedProcess>();

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Echo output to the test's stderr as it comes (TTEOK_TEST_VERBOSE=1 does this for all). */
  echo?: boolean;
}

export function spawnManaged(name: string, command: string, args: string[], options: SpawnOptions = {}): ManagedProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const echo = options.echo ?? process.env.TTEOK_TEST_VERBOSE === '1';
  const onData = (stream: NodeJS.ReadableStream) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split(/\r?\n|\r/);
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (echo) process.stderr.write(`[${name}] ${line}\n`);
        for (const w of waiters) {
          if (w.pattern.test(line)) {
            waiters.delete(w);
            w.resolve(line);
          }
        }
      }
    });
  };
  onData(child.stdout!);
  onData(child.stderr!);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', () => resolve({ code: -1, signal: null }));
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    running.delete(proc);
  });

  const proc: ManagedProcess = {
    name,
    child,
    lines,
    exited,
    waitForLine(pattern, timeoutMs = 30_000, from = 0) {
      const found = lines.slice(from).find((l) => pattern.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (l: string) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (waiters.delete(waiter)) {
            clearTimeout(timer);
            reject(new Error(`${name} exited (code ${code}, signal ${signal}) before a line matching ${pattern}; last lines:\n${lines.slice(-20).join('\n')}`));
          }
        });
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (hasExited) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(proc);
  return proc;
}

/** Kills whatever a test left running. Registered once per test process. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL', 1000)));
}

process.once('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});
