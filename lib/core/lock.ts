// An exclusive lock file. Taken atomically (a temp file with the holder's pid is hard-linked to
// the lock path: link fails if it exists), and a lock whose holder died is taken over — also
// when its pid now names another process, or this one (a container's PID 1 after kill -9).
import { randomBytes } from 'node:crypto';
import { link, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempSibling } from './fs.ts';
import { WorkError } from './errors.ts';
import { processStartedAt } from './process-group.ts';

export interface Lock {
  file: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** Keep retrying this long while a live process holds the lock. 0 = fail at once. */
  waitMs?: number;
  /** A lock older than this is stale even if its pid is alive (pid reuse). Default: never. */
  staleMs?: number;
  /** What to call the thing locked, in the error message. */
  what?: string;
}

interface Holder {
  pid: number;
  host: string;
  time: number;
  /** Names this acquisition: a lock with our pid but a token we do not hold is a past life's. */
  token?: string;
}

/** The locks this process holds, file → token. */
const held = new Map<string, string>();

export async function acquireLock(
  file: string,
  { waitMs = 0, staleMs = Infinity, what = file }: LockOptions = {},
): Promise<Lock> {
  const deadline = Date.now() + waitMs;
  const me: Holder = { pid: process.pid, host: os.hostname(), time: Date.now(), token: randomBytes(8).toString('hex') };
  for (;;) {
    const temp = tempSibling(file, 'lock');
    await writeFile(temp, JSON.stringify(me), { mode: 0o644 });
    try {
      await link(temp, file);
      held.set(file, me.token!);
      const release = async () => {
        if (held.get(file) === me.token) held.delete(file);
        await rm(file, { force: true });
      };
      return { file, release };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await rm(temp, { force: true });
    }
    const holder = await readHolder(file);
    // Released between our link and the read: try again, and never remove a lock we did not see.
    if (holder === 'gone') continue;
    if (!holder || isStale(holder, staleMs, file)) {
      await removeStale(file, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new WorkError(
        `${what} is locked by process ${holder.pid} on ${holder.host} since ` +
          `${new Date(holder.time).toISOString()}; try again when it has finished.`,
      );
    }
    await sleep(100);
  }
}

/**
 * Remove the stale lock `seen`, but only that one, and only one process at a time: without the
 * guard, two waiters could both judge it stale, and the slower one's rm would delete the lock
 * the faster one had just taken.
 */
async function removeStale(file: string, seen: Holder | undefined): Promise<void> {
  const guard = `${file}.takeover`;
  const temp = tempSibling(file, 'takeover');
  await writeFile(temp, String(process.pid), { mode: 0o644 });
  try {
    await link(temp, guard);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Another process is removing it. A guard left behind by a crash is cleared after a while.
    const age = await stat(guard).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > 10_000) await rm(guard, { force: true });
    else await sleep(20);
    return;
  } finally {
    await rm(temp, { force: true });
  }
  try {
    const again = await readHolder(file);
    if (again !== 'gone' && JSON.stringify(again) === JSON.stringify(seen)) await rm(file, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}

async function readHolder(file: string): Promise<Holder | 'gone' | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    return undefined;
  }
  try {
    const holder = JSON.parse(text) as Holder;
    if (typeof holder?.pid === 'number') return holder;
  } catch {
    /* unreadable: treated as stale */
  }
  return undefined;
}

function isStale(holder: Holder, staleMs: number, file: string): boolean {
  if (Date.now() - holder.time > staleMs) return true;
  if (holder.host !== os.hostname()) return false;
  // Our own pid: either this process holds it (then the token is ours) or a previous process
  // with the same pid died holding it (S07: PID 1 in a container, restarted after kill -9).
  if (holder.pid === process.pid) return holder.token === undefined || held.get(file) !== holder.token;
  if (!isProcessAlive(holder.pid, holder.host)) return true;
  // A process that started after the lock was written is not its holder (the pid was reused).
  const started = processStartedAt(holder.pid);
  return started !== undefined && started > holder.time + 1000;
}

/**
 * Whether process `pid` on `host` may still be running. Another host's process cannot be
 * checked, so it counts as alive; here, only "no such process" counts as dead.
 */
export function isProcessAlive(pid: number, host = os.hostname()): boolean {
  if (host !== os.hostname()) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
