// A repo's folders under DATA for its build user (`user:`), before a job runs as that user from a
// root process: hook-server's own jobs and `shipkit worker`'s alike (process/runner.ts calls it).
import { execFile } from 'node:child_process';
import { chmod, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { $ } from '../../core/shell.ts';
import { ensureDir, pathExists } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import type { UnixAccount } from '../../core/unix-user.ts';
import { repoPaths, type RepoConfig, type ShipkitConfig } from '../../config/shipkit-yml.ts';
import type { Job } from '../job.ts';

/** A repo cloned with a token or deploy key: only `build` gives git them, so its first clone is left to the build. */
export function clonesWithCredentials(repo: Pick<RepoConfig, 'gitToken' | 'gitAuth'> | undefined): boolean {
  return Boolean(repo?.gitToken || repo?.gitAuth.sshKey);
}

// As root, a repo's folders under DATA belong to its build user, so the build (running as that
// user) can write them. DATA/repos itself stays root's: the first clone, which `build` would make
// beside the work tree, is made here instead, into the user's empty work tree, as the user.
export async function prepareUserDirs(
  config: ShipkitConfig,
  job: Job,
  account: UnixAccount,
  cloneUrl: string | undefined,
  log: Logger,
): Promise<void> {
  const paths = repoPaths(config, job.repo);
  for (const dir of [paths.work, paths.logs, paths.state]) {
    await ensureDir(path.dirname(dir), 0o755);
    await chmod(path.dirname(dir), 0o755).catch((error: NodeJS.ErrnoException) =>
      log.warn(`could not open ${path.dirname(dir)} to ${account.name} (chmod 755: ${error.code ?? error.message})`, {
        job: job.id,
      }),
    );
    await ensureDir(dir, 0o755);
    const info = await stat(dir);
    if (info.uid !== account.uid) {
      await $({ quiet: true })`chown -R ${`${account.uid}:${account.gid}`} ${dir}`;
    }
  }
  if (cloneUrl && !(await pathExists(path.join(paths.work, '.git'))) && (await readdir(paths.work)).length === 0) {
    await new Promise<void>((resolve) => {
      execFile(
        'git',
        ['clone', '--quiet', '--no-checkout', '--', cloneUrl, paths.work],
        {
          uid: account.uid,
          gid: account.gid,
          cwd: paths.work,
          timeout: 10 * 60_000,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            HOME: account.home,
            LANG: 'C.UTF-8',
            GIT_TERMINAL_PROMPT: '0',
          },
        },
        (error, _stdout, stderr) => {
          // The build reports a failed clone itself; leave the folder empty for it.
          if (error)
            log.warn('first clone as the build user failed', {
              job: job.id,
              repo: job.repo,
              error: String(stderr || error.message)
                .trim()
                .slice(0, 300),
            });
          resolve();
        },
      );
    });
  }
}
