// Reading /proc without a new buffer per file, and a process's children from its threads' lists
// (/proc/PID/task/TID/children) instead of a look at every process. /proc gives every file a size
// of 0, for which readFileSync allocates a fresh 64 KiB buffer per read; at an app's exit during an
// update such scans cost milliseconds of CPU beside the instance taking over (docs/internals.md).
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';

let scratch = Buffer.allocUnsafeSlow(16 * 1024);

/** A /proc file's text (latin1: bytes as they are); throws as readFileSync does (ENOENT when the process is gone). */
export function readProcFile(file: string): string {
  const fd = openSync(file, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const larger = Buffer.allocUnsafeSlow(scratch.length * 2);
        scratch.copy(larger, 0, 0, length);
        scratch = larger;
      }
      const read = readSync(fd, scratch, length, scratch.length - length, null);
      if (read === 0) return scratch.toString('latin1', 0, length);
      length += read;
    }
  } finally {
    closeSync(fd);
  }
}

/** Whether this kernel keeps each thread's children list (/proc/PID/task/TID/children, CONFIG_PROC_CHILDREN). */
export function keepsChildLists(procDir = '/proc'): boolean {
  return existsSync(`${procDir}/${process.pid}/task/${process.pid}/children`);
}

/** The thread ids of process `pid`; none when it is gone. */
export function threadsOf(pid: number, procDir = '/proc'): number[] {
  try {
    return readdirSync(`${procDir}/${pid}/task`)
      .filter((t) => /^\d+$/.test(t))
      .map(Number);
  } catch {
    return [];
  }
}

/** The live children of every thread of `pid` (zombies left out), by their lists; none when it is gone. */
export function childrenOf(pid: number, procDir = '/proc'): number[] {
  const kids: number[] = [];
  for (const tid of threadsOf(pid, procDir)) {
    try {
      for (const kid of readProcFile(`${procDir}/${pid}/task/${tid}/children`).split(' '))
        if (kid && isRunning(kid, procDir)) kids.push(Number(kid));
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return kids;
}

/** Whether process `pid` is there and not a zombie (or dead). */
function isRunning(pid: string, procDir: string): boolean {
  try {
    const stat = readProcFile(`${procDir}/${pid}/stat`);
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
