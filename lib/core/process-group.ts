// Ending a process group: the one way shipkit stops a job, a build command or an app together
// with whatever it started. `kill(-pgid, 0)` alone is not enough to tell whether a group still
// runs: a zombie (a child whose parent died, reparented to a PID 1 that reaps late, as in many
// containers) still answers it, and waiting on one would use up the whole grace period.
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcFile } from './procfs.ts';

/** Send `signal` to every process of the group; false when there is none (or no pgid). */
export function signalGroup(pgid: number | null | undefined, signal: NodeJS.Signals | 0): boolean {
  if (!pgid || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether any process of the group is still running. Zombies and dead tasks do not count. Where
 * /proc cannot be read, a group that answers `kill -0` counts as running.
 */
export function isGroupAlive(pgid: number | null | undefined, procDir = '/proc'): boolean {
  if (!pgid || pgid <= 1) return false;
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    // EPERM: members exist but belong to another user (a build run through sudo); /proc tells
    // whether they still run.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // The group's leader running answers it alone; only a group whose leader is gone or a zombie
  // needs a look at every process (waitForGroupExit asks every 25 ms while an app drains).
  if (runsInGroup(String(pgid), pgid, procDir)) return true;
  let pids: string[];
  try {
    pids = readdirSync(procDir).filter((name) => /^\d+$/.test(name));
  } catch {
    return true;
  }
  return pids.some((pid) => runsInGroup(pid, pgid, procDir));
}

/** Whether process `pid` runs (is not a zombie or dead) in group `pgid`. */
function runsInGroup(pid: string, pgid: number, procDir: string): boolean {
  try {
    const stat = readProcFile(`${procDir}/${pid}/stat`);
    // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses, so parse after the last `)`.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(pgrp) === pgid && state !== 'Z' && state !== 'X';
  } catch {
    return false; // gone meanwhile
  }
}

/** Wait until no process of the group runs, at most `ms`; true when it is gone. */
export async function waitForGroupExit(pgid: number | null | undefined, ms: number, pollMs = 25): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isGroupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
  }
  return true;
}

export interface EndGroupOptions {
  /** How long the group may take to stop after the first signal, before SIGKILL. */
  graceMs: number;
  /** The first signal (default SIGTERM). */
  signal?: NodeJS.Signals;
  /** How long to wait for the group to vanish after SIGKILL (default 5 s). */
  killWaitMs?: number;
  pollMs?: number;
}

/**
 * How a group ended: `not-running` (nothing to end), `exited` (within the grace), `killed`
 * (SIGKILL was needed), `survived` (still running after SIGKILL: a process stuck in the kernel,
 * or one we may not signal).
 */
export type GroupEnd = 'not-running' | 'exited' | 'killed' | 'survived';

/** Signal the group, give it `graceMs` to stop, then SIGKILL what is left and wait for it. */
export async function endProcessGroup(
  pgid: number | null | undefined,
  { graceMs, signal = 'SIGTERM', killWaitMs = 5_000, pollMs = 25 }: EndGroupOptions,
): Promise<GroupEnd> {
  if (!isGroupAlive(pgid)) return 'not-running';
  signalGroup(pgid, signal);
  if (await waitForGroupExit(pgid, graceMs, pollMs)) return 'exited';
  signalGroup(pgid, 'SIGKILL');
  return (await waitForGroupExit(pgid, killWaitMs, pollMs)) ? 'killed' : 'survived';
}

/**
 * The process's start time (field 22 of /proc/PID/stat, clock ticks since boot), or null when
 * it is gone or /proc cannot be read. With the boot id, it tells a process from a later one that
 * got the same pid.
 */
export function processStartTime(pid: number, procDir = '/proc'): string | null {
  try {
    const stat = readProcFile(`${procDir}/${pid}/stat`);
    // After `pid (comm) `: state is field 3, so field 22 is the 20th.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** When process `pid` started, in ms since the epoch (its start time plus the boot time); undefined if unknown. */
export function processStartedAt(pid: number, procDir = '/proc'): number | undefined {
  const ticks = Number(processStartTime(pid, procDir) ?? NaN);
  try {
    const boot = /^btime (\d+)$/m.exec(readFileSync(`${procDir}/stat`, 'latin1'));
    if (!boot || !Number.isFinite(ticks)) return undefined;
    return Number(boot[1]) * 1000 + (ticks * 1000) / 100; // /proc counts USER_HZ, 100 on Linux
  } catch {
    return undefined;
  }
}

/** This boot's id (/proc/sys/kernel/random/boot_id): start times count from boot. */
export function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  } catch {
    return null;
  }
}
