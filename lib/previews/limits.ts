// A preview's `limits:` (memory, a share of one CPU), set on the processes of its app. Where
// systemd runs, the app's command is started in a transient scope (`systemd-run --scope`, which
// execs it in place, so launchfit still supervises it); elsewhere a cgroup of its own is made in
// the cgroup filesystem (v2, or v1's memory and cpu hierarchies) and the app's shell joins it
// before it execs the command. The kernel kills an app past its memory; `oomKills` counts that.
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkError, messageOf } from '../core/errors.ts';

export interface PreviewLimits {
  memoryBytes?: number;
  /** A share of one CPU, 1 to 100. */
  cpuPercent?: number;
}

/** How the app's command is put under its limits, and where to read what happened. */
export interface LimitsPlan {
  how: 'systemd' | 'cgroup v2' | 'cgroup v1';
  /** The app's command, wrapped: run by launchfit with /bin/sh -c. */
  command: string;
  /** The cgroup folders made (none with systemd). */
  dirs: string[];
}

const PARENT = 'shipkit-previews';
const PERIOD_US = 100_000;
const UNIT = /^[A-Za-z0-9_.+-]+$/;

export interface LimitsOptions {
  /** Where cgroups are mounted (tests: another folder). */
  root?: string;
  /** Whether systemd runs (default: /run/systemd/system exists). */
  systemd?: boolean;
  /** The Unix user the app runs as: it must be able to join its cgroup. */
  owner?: { uid: number; gid: number };
}

/**
 * Makes `unit`'s limits (unit: a name of letters, digits and `._+-`, one per preview) and
 * returns `start` wrapped to run under them; undefined when there are none.
 */
export async function prepareLimits(
  unit: string,
  limits: PreviewLimits,
  start: string,
  { root = '/sys/fs/cgroup', systemd = existsSync('/run/systemd/system'), owner }: LimitsOptions = {},
): Promise<LimitsPlan | undefined> {
  if (!limits.memoryBytes && !limits.cpuPercent) return undefined;
  if (!UNIT.test(unit)) throw new WorkError(`Invalid limits unit ${JSON.stringify(unit.slice(0, 60))}.`);
  if (systemd) return systemdPlan(unit, limits, start);
  if (existsSync(path.join(root, 'cgroup.controllers'))) return cgroupV2(root, unit, limits, start, owner);
  if (existsSync(path.join(root, 'memory')) || existsSync(path.join(root, 'cpu')))
    return cgroupV1(root, unit, limits, start, owner);
  throw new WorkError(
    `limits: need systemd or the cgroup filesystem at ${root}, and this machine has neither; remove limits: or mount it.`,
  );
}

function systemdPlan(unit: string, limits: PreviewLimits, start: string): LimitsPlan {
  const props = [
    ...(limits.memoryBytes ? [`-p MemoryMax=${limits.memoryBytes}`] : []),
    ...(limits.cpuPercent ? [`-p CPUQuota=${limits.cpuPercent}%`] : []),
  ];
  const command =
    `exec systemd-run --scope --quiet --collect --unit ${PARENT}-${unit} ${props.join(' ')} ` +
    `-- /bin/sh -c ${shellQuote(start)}`;
  return { how: 'systemd', command, dirs: [] };
}

async function cgroupV2(
  root: string,
  unit: string,
  limits: PreviewLimits,
  start: string,
  owner?: LimitsOptions['owner'],
): Promise<LimitsPlan> {
  const parent = path.join(root, PARENT);
  await mkdir(parent, { recursive: true });
  const wanted = [limits.memoryBytes ? '+memory' : '', limits.cpuPercent ? '+cpu' : ''].filter(Boolean).join(' ');
  for (const dir of [root, parent]) await write(path.join(dir, 'cgroup.subtree_control'), wanted);
  const dir = path.join(parent, unit);
  await mkdir(dir, { recursive: true });
  if (limits.memoryBytes) {
    await write(path.join(dir, 'memory.max'), String(limits.memoryBytes));
    await write(path.join(dir, 'memory.swap.max'), '0').catch(() => undefined); // no swap controller: fine
  }
  if (limits.cpuPercent) await write(path.join(dir, 'cpu.max'), `${quotaOf(limits.cpuPercent)} ${PERIOD_US}`);
  if (owner) await chown(path.join(dir, 'cgroup.procs'), owner.uid, owner.gid);
  return { how: 'cgroup v2', command: joining([dir], start), dirs: [dir] };
}

async function cgroupV1(
  root: string,
  unit: string,
  limits: PreviewLimits,
  start: string,
  owner?: LimitsOptions['owner'],
): Promise<LimitsPlan> {
  const dirs: string[] = [];
  if (limits.memoryBytes) {
    const dir = path.join(root, 'memory', PARENT, unit);
    await mkdir(dir, { recursive: true });
    await write(path.join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // With swap, the limit would only move the app's pages out; the limit on both is the same.
    await write(path.join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)).catch(() => undefined);
    dirs.push(dir);
  }
  if (limits.cpuPercent) {
    const dir = path.join(root, 'cpu', PARENT, unit);
    await mkdir(dir, { recursive: true });
    await write(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
    await write(path.join(dir, 'cpu.cfs_quota_us'), String(quotaOf(limits.cpuPercent)));
    dirs.push(dir);
  }
  if (owner) for (const dir of dirs) await chown(path.join(dir, 'cgroup.procs'), owner.uid, owner.gid);
  return { how: 'cgroup v1', command: joining(dirs, start), dirs };
}

/** The shell joins each cgroup, then becomes the app: everything it starts stays in them. */
function joining(dirs: string[], start: string): string {
  const joins = dirs.map((d) => `echo $$ > ${shellQuote(path.join(d, 'cgroup.procs'))}`).join(' && ');
  return `${joins} && exec /bin/sh -c ${shellQuote(start)}`;
}

/** The cgroup folders a preview's limits may have made, whichever filesystem made them. */
export function limitsDirsOf(unit: string, root = '/sys/fs/cgroup'): string[] {
  if (!UNIT.test(unit)) return [];
  return [root, path.join(root, 'memory'), path.join(root, 'cpu')].map((d) => path.join(d, PARENT, unit));
}

/** How many times the kernel killed a process of the preview for its memory (0 when unknown). */
export async function oomKills(plan: Pick<LimitsPlan, 'dirs'>): Promise<number> {
  for (const dir of plan.dirs) {
    for (const file of ['memory.events', 'memory.oom_control']) {
      const text = await readFile(path.join(dir, file), 'utf8').catch(() => undefined);
      const m = text && /^oom_kill (\d+)$/m.exec(text);
      if (m) return Number(m[1]);
    }
  }
  return 0;
}

/** Removes the preview's cgroups once its processes are gone; what cannot be removed is said. */
export async function removeLimits(unit: string, root = '/sys/fs/cgroup'): Promise<string[]> {
  const left: string[] = [];
  for (const dir of limitsDirsOf(unit, root)) {
    try {
      await rmdir(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') left.push(`${dir}: ${messageOf(error)}`);
    }
  }
  return left;
}

const quotaOf = (percent: number) => Math.max(1_000, Math.round((PERIOD_US * percent) / 100));

function write(file: string, text: string): Promise<void> {
  return writeFile(file, text).catch((error) => {
    throw new WorkError(`Cannot set ${file} to ${text}: ${messageOf(error)}`);
  });
}

/** One word for /bin/sh: single quotes, with any single quote closed, escaped and reopened. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
