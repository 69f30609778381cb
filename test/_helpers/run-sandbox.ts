// Where each test file run by test/run.ts keeps its temp files, and how everything it started is
// ended: every file gets a TMPDIR of its own under one folder for the run, so each process it
// starts, also one that left its process group (a daemonized gpg-agent, PostgreSQL from pg_ctl,
// a hook-server's build), names that folder in its environment, command line or working folder,
// where test/fixtures/processes.ts finds it. Ending a file's group alone would leave those behind.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isGroupAlive, signalGroup } from '../../lib/core/process-group.ts';
import { killProcessesUsing, processesUsing } from '../fixtures/processes.ts';

/** A folder for a run's TMPDIRs, world-writable and sticky as /tmp is (builds run as another user, PostgreSQL as its own). */
export function makeRunFolder(parent = os.tmpdir()): string {
  const dir = mkdtempSync(path.join(parent, 'shipkit-run-'));
  chmodSync(dir, 0o1777);
  return dir;
}

/**
 * The TMPDIR of the run's `index`th process. Fixed-width names, so that no folder's path is the
 * start of another's (processesUsing matches a path anywhere in a command line or environment).
 * tsx keeps its compile cache in TMPDIR/tsx-UID: that one links to the shared one in `shared`,
 * or each test process would compile everything it imports anew (a quarter second or more).
 */
export function makeTmpDir(runFolder: string, index: number, shared = os.tmpdir()): string {
  const dir = path.join(runFolder, String(index).padStart(4, '0'));
  mkdirSync(dir);
  chmodSync(dir, 0o1777);
  const tsxCache = `tsx-${process.geteuid?.() ?? os.userInfo().username}`;
  mkdirSync(path.join(shared, tsxCache), { recursive: true, mode: 0o700 });
  symlinkSync(path.join(shared, tsxCache), path.join(dir, tsxCache));
  return dir;
}

/** Remove a folder and what is in it; a file another user owns or a mount point left inside is not worth failing the run for. */
export function removeFolder(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort: it is in the temp folder */
  }
}

export interface Ended {
  /** The command names of the processes found, as `postgres ×5, gpg-agent`; empty when none was. */
  names: string;
  /** Processes still there after SIGKILL (another user's, or stuck in the kernel). */
  survived: number[];
}

/**
 * End every process that uses `dir` and every process of `groups`: SIGTERM first, so that
 * PostgreSQL and gpg-agent shut down cleanly (PostgreSQL frees its shared memory), then SIGKILL
 * whatever is left after `graceMs`, until nothing is.
 */
export async function endProcesses(dir: string, groups: number[] = [], graceMs = 3_000): Promise<Ended> {
  const found = processesUsing(dir);
  const leaders = new Set(groups);
  const names = describeCommands(found.filter((pid) => !leaders.has(pid)));
  const anyLeft = () => groups.some((g) => isGroupAlive(g)) || processesUsing(dir).length > 0;
  if (!found.length && !groups.some((g) => isGroupAlive(g))) return { names, survived: [] };
  for (const group of groups) signalGroup(group, 'SIGTERM');
  for (const pid of found) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (anyLeft() && Date.now() < deadline) await sleep(50);
  for (const group of groups) signalGroup(group, 'SIGKILL');
  const survived = await killProcessesUsing(dir);
  return { names, survived };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    /* gone already */
  }
}

/** `postgres ×5, gpg-agent, sleep`: each command name with how many processes ran it, the most first. */
function describeCommands(pids: number[]): string {
  const counts = new Map<string, number>();
  for (const pid of pids) {
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
    } catch {
      continue; // gone meanwhile
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, count]) => (count > 1 ? `${name} ×${count}` : name))
    .join(', ');
}
