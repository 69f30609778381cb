// The job wrappers running on this machine, found by their command line (process/runner.ts starts
// them as `sh -c WRAPPER shipkit-job STATUS-FILE COMMAND…`): how a build left behind by a process
// killed with -9 is found when its process group was never recorded.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Wrappers of jobs under `jobsDir`: pid (its group) → job id. */
export async function jobWrappers(jobsDir: string, procDir = '/proc'): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  for (const entry of await readdir(procDir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(path.join(procDir, entry, 'cmdline'), 'latin1').catch(() => '')).split('\0');
    if (argv[1] !== '-c' || argv[3] !== 'shipkit-job' || !argv[4]?.startsWith(`${jobsDir}/`)) continue;
    const [id, status] = path.relative(jobsDir, argv[4]).split(path.sep);
    if (id && /^status-\d+$/.test(status ?? '')) found.set(Number(entry), id);
  }
  return found;
}
