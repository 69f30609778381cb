// `shipkit backup --into ROOT --keep N` (docs/backup.md): each backup in a folder of its own named
// after its time (shipkit-20261124T031700Z), and only the newest N whole ones kept; a folder
// without MANIFEST.json older than the newest whole backup is a backup that died: it goes too.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST } from './manifest.ts';

const NAME = /^shipkit-\d{8}T\d{6}Z$/;

/** ROOT/shipkit-YYYYMMDDTHHMMSSZ for a backup taken at `now` (UTC: the names sort by time). */
export function datedFolder(root: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return path.join(root, `shipkit-${stamp}`);
}

/** Removes all but the newest `keep` whole backups in `root`, and the dead ones before the newest; returns what went. */
export async function pruneBackups(root: string, keep: number): Promise<string[]> {
  const names = (await readdir(root)).filter((name) => NAME.test(name)).sort();
  const whole: string[] = [];
  const dead: string[] = [];
  for (const name of names) {
    const done = await stat(path.join(root, name, MANIFEST)).then(
      () => true,
      () => false,
    );
    (done ? whole : dead).push(name);
  }
  const newest = whole.at(-1);
  const gone = [
    ...whole.slice(0, Math.max(0, whole.length - keep)),
    ...dead.filter((name) => newest !== undefined && name < newest),
  ].sort();
  for (const name of gone) await rm(path.join(root, name), { recursive: true, force: true });
  return gone.map((name) => path.join(root, name));
}
