// The files through which `launchfit host` is told what to run (docs/launchfit.md "Many deploy
// folders, one launchfit"): HOST/roster/NAME.json per deploy folder, HOST/ended/NAME when its
// launcher stopped, HOST/host.pid while the host runs. Light on purpose: the side that writes a
// roster entry (hook-server's previews) loads none of launchfit's supervisor.
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { bootId, processStartTime } from '../core/process-group.ts';
import { readProcFile } from '../core/procfs.ts';

/** One deploy folder the host runs: its folder, the file its launcher logs to (and the app's output). */
export interface RosterEntry {
  dir: string;
  log: string;
  /** Written by the side that lists it: a new value makes the host start a launcher that ended again. */
  since?: number;
}

/** What the host leaves in ended/NAME when a launcher stops. */
export interface Ended {
  /** true: its entry was taken off the roster; false: it failed (`reason`) while listed. */
  removed: boolean;
  reason: string;
}

const NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,199}$/;

export function validateEntryName(name: string): string {
  if (!NAME.test(name) || name.includes('..'))
    throw new ValidationError(`Invalid roster entry name ${JSON.stringify(name.slice(0, 80))}.`);
  return name;
}

export function hostPaths(dir: string) {
  const root = path.resolve(dir);
  return {
    dir: root,
    roster: path.join(root, 'roster'),
    ended: path.join(root, 'ended'),
    pidFile: path.join(root, 'host.pid'),
    lock: path.join(root, 'host.lock'),
    log: path.join(root, 'host.log'),
  };
}

const entryFile = (host: string, name: string) => path.join(hostPaths(host).roster, `${validateEntryName(name)}.json`);
const endedFile = (host: string, name: string) => path.join(hostPaths(host).ended, validateEntryName(name));

/** Parses a roster file's text; a ValidationError saying what is wrong. */
export function parseEntry(text: string): RosterEntry {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError('not JSON');
  }
  const entry = value as Partial<RosterEntry>;
  for (const key of ['dir', 'log'] as const)
    if (typeof entry?.[key] !== 'string' || !path.isAbsolute(entry[key]!))
      throw new ValidationError(`${key} must be an absolute path`);
  return { dir: entry.dir!, log: entry.log!, since: typeof entry.since === 'number' ? entry.since : undefined };
}

/** Lists `entry` as NAME (its ended mark cleared first, so a waiter sees only this run's end). */
export async function writeEntry(host: string, name: string, entry: RosterEntry): Promise<void> {
  const paths = hostPaths(host);
  await ensureDir(paths.dir, 0o700);
  await ensureDir(paths.roster, 0o700);
  await rm(endedFile(host, name), { force: true });
  await atomicWriteFile(entryFile(host, name), `${JSON.stringify(entry)}\n`, { mode: 0o600 });
}

export async function removeEntry(host: string, name: string): Promise<void> {
  await rm(entryFile(host, name), { force: true });
}

/** The names listed now. */
export async function listEntries(host: string): Promise<string[]> {
  const files = await readdir(hostPaths(host).roster).catch(() => [] as string[]);
  return files.filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
}

export async function readEntry(host: string, name: string): Promise<RosterEntry | undefined> {
  const text = await readFile(entryFile(host, name), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseEntry(text);
}

export async function readEnded(host: string, name: string): Promise<Ended | undefined> {
  const text = await readFile(endedFile(host, name), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Ended;
  } catch {
    return { removed: false, reason: text.trim() };
  }
}

export async function writeEnded(host: string, name: string, ended: Ended): Promise<void> {
  await ensureDir(hostPaths(host).ended, 0o700);
  await atomicWriteFile(endedFile(host, name), `${JSON.stringify(ended)}\n`, { mode: 0o600 });
}

export const clearEnded = (host: string, name: string) => rm(endedFile(host, name), { force: true });

/** The pid a pid file written by `writePidFile` names, when that process still runs. */
export async function livePid(file: string): Promise<number | undefined> {
  try {
    const kept = JSON.parse(await readFile(file, 'utf8')) as { pid: number; start: string; boot: string };
    if (!Number.isInteger(kept.pid) || kept.pid <= 1) return undefined;
    if (kept.boot !== bootId() || processStartTime(kept.pid) !== kept.start) return undefined;
    const state = readProcFile(`/proc/${kept.pid}/stat`);
    if (/^[ZX]/.test(state.slice(state.lastIndexOf(')') + 2))) return undefined;
    return kept.pid;
  } catch {
    return undefined;
  }
}

/** Writes `pid` (with its start time and the boot, against pid reuse) into `file`. */
export async function writePidFile(file: string, pid = process.pid): Promise<void> {
  await atomicWriteFile(file, JSON.stringify({ pid, start: processStartTime(pid), boot: bootId() }));
}

/** The running host's pid, or undefined. */
export const runningHost = (host: string) => livePid(hostPaths(host).pidFile);
