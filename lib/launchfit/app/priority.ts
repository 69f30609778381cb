// CPU priority of the serving instance while an update runs (docs/launchfit.md): raised above
// launchfit's own (each thread's nice value, and its session's autogroup) while a check runs, set
// back after; needs CAP_SYS_NICE or RLIMIT_NICE, else nothing changes.
// The whole story: docs/internals.md.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { processStartTime } from '../../core/process-group.ts';
import { threadsOf } from '../../core/procfs.ts';
import { descendantsOf } from './instance.ts';

/**
 * How much higher than launchfit's own the serving instance runs during an update, at most (as
 * far as its limit allows): 10 nice levels weigh ~9:1 against the update's work (5 weighed 3:1,
 * and left the serving app's p99 over its goal in more passes of bench:zero-downtime).
 */
export const UPDATE_BOOST = 10;
const CAP_SYS_NICE = 23n;
const HIGHEST = -20;

/** launchfit's own nice value (its main thread's). */
export function ownNice(): number {
  return os.getPriority(0);
}

/**
 * Whether this process may set a nice value as low as `nice`: it holds CAP_SYS_NICE, or its
 * RLIMIT_NICE soft limit (/proc/self/limits "Max nice priority") allows it.
 */
export function canRaisePriorityTo(nice: number, procSelf = '/proc/self'): boolean {
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`${procSelf}/status`, 'latin1'))?.[1];
    if (capEff && (BigInt(`0x${capEff}`) >> CAP_SYS_NICE) & 1n) return true;
    const limit = /^Max nice priority\s+(\S+)/m.exec(readFileSync(`${procSelf}/limits`, 'latin1'))?.[1];
    if (limit === 'unlimited') return true;
    // The kernel allows nice values down to 20 - the limit.
    return limit !== undefined && 20 - Number(limit) <= nice;
  } catch {
    return false;
  }
}

/**
 * The boost the serving instance gets during updates here: UPDATE_BOOST, or as much of it as this
 * process may raise (e.g. 5 under systemd's LimitNICE=-5), or 0 when it cannot be raised at all.
 */
export function updateBoost(own = ownNice(), canRaise = (nice: number) => canRaisePriorityTo(nice)): number {
  for (let boost = Math.min(UPDATE_BOOST, own - HIGHEST); boost > 0; boost--) if (canRaise(own - boost)) return boost;
  return 0;
}

/** The threads raised for a check, by thread id, with their start times (a reused id is not set back). */
export type RaisedThreads = Map<number, string>;

/**
 * Set the instance `pid` (its session leader, the instance wrapper) `boost` above launchfit's
 * own priority (0: back to it): every thread of every process of it, and its session's
 * autogroup where there is one. Given `raised`, the threads raised are recorded there, and set
 * back to 0 even once they are no longer below `pid` (an app that escaped its instance).
 * Returns how many of those could not be set (threads gone meanwhile among them).
 */
export function setInstancePriority(
  pid: number,
  boost: number,
  { own = ownNice(), procDir = '/proc', raised }: { own?: number; procDir?: string; raised?: RaisedThreads } = {},
): number {
  let failed = 0;
  for (const p of [pid, ...descendantsOf(pid, procDir)]) {
    for (const tid of threadsOf(p, procDir)) {
      try {
        os.setPriority(tid, own - boost);
        const start = boost && raised ? processStartTime(tid, procDir) : null;
        if (start) raised!.set(tid, start);
      } catch {
        failed++;
      }
    }
  }
  if (!setAutogroupNice(`${procDir}/${pid}/autogroup`, -boost)) failed++;
  if (!boost && raised) lowerRaised(raised, { own, procDir });
  return failed;
}

/** Set the threads in `raised` that still run back to launchfit's priority (and their autogroup), and forget them all. */
export function lowerRaised(raised: RaisedThreads, { own = ownNice(), procDir = '/proc' } = {}): void {
  let autogroup = false;
  for (const [tid, start] of raised) {
    if (processStartTime(tid, procDir) !== start) continue;
    try {
      os.setPriority(tid, own);
    } catch {
      /* gone meanwhile */
    }
    autogroup ||= setAutogroupNice(`${procDir}/${tid}/autogroup`, 0);
  }
  raised.clear();
}

/**
 * Without CAP_SYS_ADMIN the kernel takes one autogroup change per 0.1 s (machine-wide) and
 * answers EAGAIN to the next: that one is tried again a little later. No autogroup (not
 * configured): nothing to set. False when it could not be set.
 */
function setAutogroupNice(file: string, nice: number, retries = 3): boolean {
  try {
    writeFileSync(file, String(nice));
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' && retries > 0) setTimeout(() => setAutogroupNice(file, nice, retries - 1), 150).unref();
    return code === 'ENOENT' || code === 'EAGAIN';
  }
}
