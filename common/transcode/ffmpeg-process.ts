// One ffmpeg child process on pipes only: the input written to its stdin,
// each output read from a pipe of its own (fd 3, 4, …), a time limit after
// which it is killed, and its stderr kept (bounded) to say why it failed.
// ffmpeg decodes media from publishers, so it is given nothing else: no
// file, no network (`-protocol_whitelist pipe` in the arguments the callers
// build), no environment but PATH, a working directory of `/`.
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/** ffmpeg failed (exit status, signal) or was killed for its time limit: `reason` says which, `message` says why in a sentence. */
export class FfmpegError extends Error {
  override name = 'FfmpegError';
  constructor(
    message: string,
    readonly reason: 'failed' | 'timeout' | 'aborted' | 'spawn',
  ) {
    super(message);
  }
}

export interface FfmpegRun {
  /** The ffmpeg binary (a path, or a name on PATH). */
  binary: string;
  args: string[];
  input: Uint8Array;
  /** How many output pipes (fd 3 on); ffmpeg names them pipe:3, pipe:4, …. */
  outputs: number;
  timeoutMs: number;
  /** Cap per output: a run whose output grows past it is killed. */
  maxOutputBytes: number;
  signal?: AbortSignal | undefined;
}

const STDERR_KEEP = 16 * 1024;

/** The last lines of ffmpeg's stderr that say something (its errors come last), as one sentence's tail. */
export function summariseStderr(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^(frame=|size=|video:|\[out#|Press \[q\]|Last message repeated)/.test(l));
  const tail = lines.slice(-3).join('; ');
  return tail.length > 400 ? `…${tail.slice(-400)}` : tail || 'no error output';
}

/** Runs ffmpeg; resolves with each output's bytes, rejects with an FfmpegError. */
export function runFfmpeg(run: FfmpegRun): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    if (run.signal?.aborted) {
      reject(new FfmpegError('the job was cancelled before ffmpeg started', 'aborted'));
      return;
    }
    const child = spawn(run.binary, run.args, {
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['pipe', 'ignore', 'pipe', ...Array.from({ length: run.outputs }, () => 'pipe' as const)],
    });
    let stderr = '';
    let failure: FfmpegError | undefined;
    const chunks: Buffer[][] = Array.from({ length: run.outputs }, () => []);
    const sizes = new Array<number>(run.outputs).fill(0);
    const kill = (error: FfmpegError) => {
      failure ??= error;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(new FfmpegError(`ffmpeg took longer than its limit of ${run.timeoutMs} ms and was stopped`, 'timeout')), run.timeoutMs);
    const onAbort = () => kill(new FfmpegError('the job was cancelled', 'aborted'));
    run.signal?.addEventListener('abort', onAbort, { once: true });

    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      stderr = (stderr + text).slice(-STDERR_KEEP);
    });
    for (let i = 0; i < run.outputs; i++) {
      const pipe = child.stdio[3 + i] as Readable;
      pipe.on('data', (chunk: Buffer) => {
        sizes[i]! += chunk.length;
        if (sizes[i]! > run.maxOutputBytes) kill(new FfmpegError(`ffmpeg's output ${i + 1} grew past ${run.maxOutputBytes} bytes and was stopped`, 'failed'));
        else chunks[i]!.push(chunk);
      });
      pipe.on('error', () => undefined);
    }
    const stdin = child.stdin as Writable;
    // ffmpeg may stop reading (bad input, killed) before it has it all: EPIPE is its exit's business.
    stdin.on('error', () => undefined);
    stdin.end(run.input);

    child.on('error', (error) => {
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onAbort);
      reject(new FfmpegError(`ffmpeg could not be started (${run.binary}): ${error.message}`, 'spawn'));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else if (code !== 0)
        reject(new FfmpegError(`ffmpeg ${signal ? `was killed by ${signal}` : `exited with status ${code}`}: ${summariseStderr(stderr)}`, 'failed'));
      else resolve(chunks.map((c) => new Uint8Array(Buffer.concat(c))));
    });
  });
}
