// When is a reload of nginx done? Not when `nginx -s reload` returns: old workers still take
// connections for ~100 ms and answer by the old config. A route change counts as made once every
// worker of the reloaded master that ran before it has exited or renamed itself "is shutting
// down", seen through /proc by process titles. The whole story: docs/internals.md.
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcFile } from '../core/procfs.ts';

/** nginx workers still accepting: pid → the pid of their master. */
export type NginxWorkers = Map<number, number>;

const WORKER_TITLE = 'nginx: worker process';
const SHUTTING_DOWN = 'is shutting down';

/** The nginx workers that have not begun to shut down, as /proc shows them now. */
export function nginxWorkers(procDir = '/proc'): NginxWorkers {
  const workers: NginxWorkers = new Map();
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return workers;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const title = readProcFile(`${procDir}/${entry}/cmdline`).replace(/\0+$/, '').replace(/\0/g, ' ');
      if (!title.startsWith(WORKER_TITLE) || title.includes(SHUTTING_DOWN)) continue;
      // stat: "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses, so after the last ")".
      const stat = readProcFile(`${procDir}/${entry}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (Number.isInteger(ppid)) workers.set(Number(entry), ppid);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return workers;
}

export interface ReloadWait {
  /** How often /proc is looked at. */
  everyMs?: number;
  /** The longest wait: for a master that never starts new workers (not the one reloaded). */
  timeoutMs?: number;
  procDir?: string;
}

/**
 * After a reload: until a master that had workers in `before` has new ones and none of its old
 * workers still accepts. True once so; false when no such master showed within the time (none
 * visible, or the reload did not restart workers), which is then as good as it gets.
 */
export async function untilOldWorkersStop(
  before: NginxWorkers,
  { everyMs = 10, timeoutMs = 1500, procDir }: ReloadWait = {},
): Promise<boolean> {
  if (before.size === 0) return false;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = nginxWorkers(procDir);
    const reloaded = new Set([...now].filter(([pid]) => !before.has(pid)).map(([, master]) => master));
    const old = [...before].filter(([pid, master]) => reloaded.has(master) && now.has(pid));
    if (reloaded.size > 0 && old.length === 0) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}
