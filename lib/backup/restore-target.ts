// Where a restore writes (docs/backup.md): shipkit.yml in DIR and DATA where the manifest says,
// only inside DIR or at the one absolute path the backup recorded, confirmed with --data-at; no
// symbolic link on the way; never under a running hook-server (its lock in DATA); the staged
// folders moved into place by a plan kept on disk, which the next restore finishes after a kill.
import { lstat, readdir, readFile, realpath, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ValidationError, WorkError } from '../core/errors.ts';
import { atomicWriteFile } from '../core/fs.ts';
import { acquireLock, isProcessAlive, type Lock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import type { Manifest } from './manifest.ts';
import { hookServerLockFile } from '../config/shipkit-yml.ts';

export interface Targets {
  configDir: string;
  configFile: string;
  dataDir: string;
  /** DATA is DIR or inside it: one folder is staged and moved. */
  sameFolder: boolean;
}

/** hook-server's lock in DATA (lib/server/hook-server.ts takes it at start, for as long as it runs). */

const ALTERED = 'The backup is damaged or was altered: use another one. Nothing was written.';

/**
 * DIR and DATA for `manifest` restored into `to`: a relative DATA must stay inside DIR; an
 * absolute one is used only when `dataAt` repeats it. No part of either may be a symbolic link.
 */
export async function targetsFor(manifest: Manifest, to: string, dataAt?: string): Promise<Targets> {
  const configDir = path.resolve(to);
  const configFile = path.join(configDir, 'shipkit.yml');
  if (!path.isAbsolute(manifest.data)) {
    const dataDir = path.resolve(configDir, manifest.data);
    if (!isInside(configDir, dataDir))
      throw new ValidationError(
        `The backup's manifest puts DATA at ${manifest.data}, outside ${configDir}. ${ALTERED}`,
      );
    if (dataAt !== undefined)
      throw new ConfigError(
        `--data-at is for a backup whose DATA was at an absolute path; this one keeps DATA in ${dataDir}. ` +
          `Leave --data-at out. Nothing was written.`,
      );
    await refuseLinks(configDir, dataDir);
    return { configDir, configFile, dataDir, sameFolder: true };
  }
  const dataDir = path.resolve(manifest.data);
  if (dataAt === undefined)
    throw new ConfigError(
      `The backup's DATA was at ${dataDir}, outside ${configDir}. To restore it there (what is there is ` +
        `refused without --force), confirm with --data-at ${dataDir}; else restore the config alone elsewhere. Nothing was written.`,
    );
  if (path.resolve(dataAt) !== dataDir)
    throw new ConfigError(
      `--data-at ${dataAt} is not where the backup's DATA was (${dataDir}); a restore puts it only there. Nothing was written.`,
    );
  if (isInside(dataDir, configDir) || path.dirname(dataDir) === dataDir)
    throw new ValidationError(`The backup's DATA ${dataDir} would hold ${configDir}. ${ALTERED}`);
  const parent = await realpath(path.dirname(dataDir)).catch(() => undefined);
  if (parent !== path.dirname(dataDir))
    throw new ConfigError(
      `${path.dirname(dataDir)} ${parent ? `is reached through a symbolic link (to ${parent})` : 'does not exist'}; DATA goes only to the real folder ${dataDir}. Nothing was written.`,
    );
  await refuseLinks(path.dirname(dataDir), dataDir);
  return { configDir, configFile, dataDir, sameFolder: isInside(configDir, dataDir) };
}

/** `inner` is `outer` or below it. */
export function isInside(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/** No folder from below `top` down to `bottom` that exists is a symbolic link. */
async function refuseLinks(top: string, bottom: string): Promise<void> {
  const steps = path.relative(top, bottom).split(path.sep).filter(Boolean);
  let at = top;
  for (const step of steps) {
    at = path.join(at, step);
    const stats = await lstat(at).catch(() => undefined);
    if (!stats) return;
    if (stats.isSymbolicLink())
      throw new ConfigError(
        `${at} is a symbolic link; a restore writes DATA only into real folders. Remove the link or ` +
          `restore elsewhere. Nothing was written.`,
      );
  }
}

/**
 * hook-server's lock in DATA, taken for the restore (undefined where no hook-server has run):
 * while a live hook-server holds it, the restore is refused naming its pid; while the restore
 * holds it, no hook-server starts on the folder being replaced.
 */
export async function holdDataFolder(dataDir: string): Promise<Lock | undefined> {
  const journal = await lstat(path.join(dataDir, 'journal')).catch(() => undefined);
  if (!journal) return undefined;
  if (!journal.isDirectory())
    throw new ConfigError(
      `${path.join(dataDir, 'journal')} is not a folder; move it away and restore again. Nothing was written.`,
    );
  const file = hookServerLockFile(dataDir);
  try {
    return await acquireLock(file, { what: `The data folder ${dataDir}` });
  } catch (error) {
    if (!(error instanceof WorkError)) throw error;
    const holder = await readFile(file, 'utf8').then(
      (text) => JSON.parse(text) as { pid?: number; host?: string },
      () => ({}) as { pid?: number; host?: string },
    );
    throw new ConfigError(
      `hook-server (pid ${holder.pid ?? '?'}${holder.host ? ` on ${holder.host}` : ''}) is running on ` +
        `${dataDir}: stop it (systemctl stop shipkit, or kill ${holder.pid ?? 'PID'}), then restore again. A ` +
        `restore never moves a folder from under a running process; nothing was written.`,
      { cause: error },
    );
  }
}

interface Plan {
  pid: number;
  moves: Array<[from: string, to: string]>;
}

const planFileOf = (configDir: string) => `${configDir}.restore-plan.json`;

/** Each move whose source is still there and whose target is not: a plan run twice does it once. */
async function runMoves(moves: Plan['moves']): Promise<void> {
  for (const [from, to] of moves) {
    const [source, target] = await Promise.all([lstat(from).catch(() => undefined), lstat(to).catch(() => undefined)]);
    if (source && !target) await rename(from, to);
  }
}

/**
 * Moves what is there aside and the staged folders into place, by a plan written first: killed
 * halfway, the next restore into DIR finishes it (finishKilledSwap). Gives the folders kept aside.
 */
export async function moveIntoPlace(
  targets: Targets,
  staged: { config: string; data: string },
  stamp: string,
  lock: Lock | undefined,
): Promise<string[]> {
  const moves: Plan['moves'] = [];
  const keptAside: string[] = [];
  for (const live of targets.sameFolder ? [targets.configDir] : [targets.configDir, targets.dataDir]) {
    if (!(await lstat(live).catch(() => undefined))) continue;
    keptAside.push(`${live}.before-restore-${stamp}`);
    moves.push([live, keptAside.at(-1)!]);
  }
  moves.push([staged.config, targets.configDir]);
  if (!targets.sameFolder) moves.push([staged.data, targets.dataDir]);
  const planFile = planFileOf(targets.configDir);
  await atomicWriteFile(planFile, JSON.stringify({ pid: process.pid, moves } satisfies Plan), { mode: 0o600 });
  await runMoves(moves);
  await rm(planFile, { force: true });
  if (lock) {
    // The lock moved aside with the folder it was in: removed there, never at the new DATA.
    const aside = moves.find(([from]) => isInside(from, lock.file));
    if (aside) await rm(path.join(aside[1], path.relative(aside[0], lock.file)), { force: true });
    else await lock.release();
  }
  return keptAside;
}

/** A restore into DIR that was killed while it moved folders: finished now (its staging was whole). */
export async function finishKilledSwap(configDir: string, log: Pick<Logger, 'warn'>): Promise<void> {
  const planFile = planFileOf(configDir);
  const text = await readFile(planFile, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  let plan: Plan;
  try {
    plan = JSON.parse(text) as Plan;
    if (!Number.isSafeInteger(plan.pid) || !Array.isArray(plan.moves)) throw new Error('not a plan');
  } catch {
    throw new ConfigError(`${planFile} is not a restore's plan; look at it, remove it, and restore again.`);
  }
  if (plan.pid !== process.pid && isProcessAlive(plan.pid))
    throw new ConfigError(`Another restore (pid ${plan.pid}) is moving folders into ${configDir}; wait for it to end.`);
  await runMoves(plan.moves);
  await rm(planFile, { force: true });
  log.warn('a restore that was killed while moving folders into place is finished first', {
    moves: plan.moves.map(([from, to]) => `${from} -> ${to}`).join(', '),
  });
}

/** The staging folder of a restore: beside `dir`, named with the time and this process's pid. */
export function stagingName(dir: string, stamp: string): string {
  return `${dir}.restoring-${stamp}-${process.pid}`;
}

/** Staging folders beside `dir` of restores whose process is gone (killed): removed. */
export async function removeDeadStaging(dir: string): Promise<string[]> {
  const prefix = `${path.basename(dir)}.restoring-`;
  const removed: string[] = [];
  for (const name of await readdir(path.dirname(dir)).catch(() => [] as string[])) {
    const pid = name.startsWith(prefix) ? Number(/-(\d+)$/.exec(name)?.[1]) : NaN;
    if (!Number.isSafeInteger(pid) || pid === process.pid || isProcessAlive(pid)) continue;
    await rm(path.join(path.dirname(dir), name), { recursive: true, force: true });
    removed.push(path.join(path.dirname(dir), name));
  }
  return removed;
}
