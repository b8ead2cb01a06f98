// CPU seconds of this process and of every child it has waited for: the
// kernel adds a child's resource usage (what getrusage(RUSAGE_CHILDREN)
// reports) to its parent's cutime and cstime when the parent reaps it, which
// Node does for every child_process. So an ffmpeg job's CPU is counted the
// moment it exits, with nothing sampled while it runs.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User + system CPU seconds of the children this process has reaped (0 where /proc is not Linux's). */
export function reapedChildrenCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // The fields after the command name (in parentheses, which may hold spaces): state is [0], cutime [13], cstime [14].
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** This process's own CPU seconds (user + system). */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}
