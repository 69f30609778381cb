// The `current` symlink and the releases/ folder: atomic swap (rename of a temp link), the
// leftovers a crash can leave, and retention.
import { randomBytes } from 'node:crypto';
import { readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { ensureDir, syncDir, tempSibling } from '../../core/fs.ts';
import { carryBooks, dropBook } from './file-digests.ts';
import { keptManifestFile, type DeployPaths, type LaunchState } from './state.ts';

/** The release folder name `current` points at, or undefined when there is none. */
export async function readCurrent(paths: DeployPaths): Promise<string | undefined> {
  try {
    const target = await readlink(paths.current);
    const parts = target.split('/');
    if (parts.length === 2 && parts[0] === 'releases' && parts[1]) return parts[1];
    return undefined;
  } catch {
    return undefined;
  }
}

/** Point `current` at releases/NAME: a new relative symlink renamed over the old one. */
export async function swapCurrentSymlink(paths: DeployPaths, name: string): Promise<void> {
  const temp = tempSibling(paths.current);
  await symlink(`releases/${name}`, temp);
  try {
    await rename(temp, paths.current);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(paths.dir);
}

/** Remove a release: renamed out of releases/ first, so a half-deleted one is never seen. */
export async function removeRelease(paths: DeployPaths, name: string): Promise<void> {
  await ensureDir(paths.tmp, 0o700);
  await rm(keptManifestFile(paths, name), { force: true });
  await dropBook(paths, name);
  const trash = path.join(paths.tmp, `trash-${name}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(path.join(paths.releases, name), trash);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const others = await readdir(paths.releases).catch(() => []);
  await carryBooks(paths, name, others, () => rm(trash, { recursive: true, force: true }));
}

/**
 * After a crash: drop temp links, temp folders and release folders whose install never
 * finished (not in state.installed), never the current or the previous one.
 * Partial downloads are kept so they can resume. Returns what was removed.
 */
export async function clearLeftovers(paths: DeployPaths, state: LaunchState): Promise<string[]> {
  const removed: string[] = [];
  await ensureDir(paths.meta, 0o700);
  for (const name of await readdir(paths.dir)) {
    if (name.startsWith('.current.tmp-')) {
      // tempSibling(paths.current) names
      await rm(path.join(paths.dir, name), { force: true });
      removed.push(name);
    }
  }
  await rm(paths.tmp, { recursive: true, force: true });
  await ensureDir(paths.tmp, 0o700);
  const current = await readCurrent(paths);
  let names: string[] = [];
  try {
    names = await readdir(paths.releases);
  } catch {
    /* no releases yet */
  }
  for (const name of names) {
    if (name === current || name === state.previous || state.installed[name]) continue;
    await removeRelease(paths, name);
    removed.push(`releases/${name}`);
  }
  return removed;
}

/**
 * Keep `keep` releases in total (newest installs first) and always the current and the
 * previous one. Returns the removed folder names.
 */
export async function pruneReleases(paths: DeployPaths, state: LaunchState, keep: number): Promise<string[]> {
  const current = await readCurrent(paths);
  const protect = new Set([current, state.previous].filter(Boolean) as string[]);
  let names: string[] = [];
  try {
    names = (await readdir(paths.releases)).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  const byAge = names
    .map((name) => ({ name, at: state.installed[name]?.installedAt ?? '' }))
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  const kept = new Set(protect);
  for (const r of byAge) {
    if (kept.size >= Math.max(keep, protect.size)) break;
    kept.add(r.name);
  }
  const removed: string[] = [];
  for (const { name } of byAge) {
    if (kept.has(name)) continue;
    await removeRelease(paths, name);
    delete state.installed[name];
    removed.push(name);
  }
  return removed;
}
