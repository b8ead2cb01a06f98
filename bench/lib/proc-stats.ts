// CPU time and memory of processes, read from /proc: what a stream costs.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident set size in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds and mean RSS of a set of processes over a window. */
export async function measure(pids: () => number[], windowMs: number): Promise<{ cpuPercent: number; rssMiB: number }> {
  const list = pids();
  const start = list.map(cpuSeconds);
  const t0 = performance.now();
  const rssSamples: number[] = [];
  while (performance.now() - t0 < windowMs) {
    rssSamples.push(list.reduce((a, p) => a + rssMiB(p), 0));
    await sleep(1000);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const used = list.reduce((a, p, i) => a + cpuSeconds(p) - start[i]!, 0);
  return { cpuPercent: (used / elapsed) * 100, rssMiB: rssSamples.reduce((a, b) => a + b, 0) / rssSamples.length };
}
