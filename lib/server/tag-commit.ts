// The commit a release's tag names, read from the repo's clone: a release event names its tag
// only, and a commit status needs the sha. Before the release job's first fetch of the tag the
// clone may not know it yet (undefined); after the job it does.
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { pathExists } from '../core/fs.ts';

/** `refs/tags/TAG^{commit}` in the clone at `workDir` (TAG already validated), or undefined. */
export async function tagCommit(workDir: string, tag: string, { timeoutMs = 5_000 } = {}): Promise<string | undefined> {
  if (!(await pathExists(path.join(workDir, '.git')))) return undefined;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', GIT_TERMINAL_PROMPT: '0' };
  const result = await $({
    cwd: workDir,
    env,
    quiet: true,
    nothrow: true,
    timeout: timeoutMs,
  })`git rev-parse --verify --quiet ${`refs/tags/${tag}^{commit}`}`;
  const sha = result.stdout.trim();
  return result.exitCode === 0 && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha) ? sha : undefined;
}
