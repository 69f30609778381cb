// git push deploys (gh-pages style): the folder becomes the whole tree of a branch, committed on
// top of that branch's history with a message naming the source commit; nothing is committed
// when the tree is unchanged. Works in a throwaway repository, so no checkout is touched.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../../core/shell.ts';
import { RemoteError, WorkError } from '../../core/errors.ts';
import { requirePrograms } from '../../core/programs.ts';
import { isInside } from './files.ts';
import { sshCommand } from '../../core/ssh.ts';
import type { GitTarget, UploadOptions, UploadResult } from './types.ts';

export function gitTargetName(target: GitTarget): string {
  return `git+${target.remote}#${target.branch}`;
}

export async function uploadGit(target: GitTarget, options: UploadOptions): Promise<UploadResult> {
  const { log } = options;
  requirePrograms(['bash', 'git'], (options.env ?? process.env).PATH);
  const name = gitTargetName(target);
  const temp = await fs.mkdtemp(path.join(os.tmpdir(), 'shipkit-git-'));
  const gitDir = path.join(temp, 'repo.git');
  const env: NodeJS.ProcessEnv = {
    ...(options.env ?? process.env),
    GIT_TERMINAL_PROMPT: '0',
    // ext:: and other transports that run commands are never wanted for a deploy target.
    GIT_ALLOW_PROTOCOL: 'file:git:http:https:ssh',
    GIT_INDEX_FILE: path.join(temp, 'index'),
    GIT_DIR: gitDir,
  };
  if (options.sshKey || options.port !== undefined || options.knownHosts || !env.GIT_SSH_COMMAND) {
    env.GIT_SSH_COMMAND = sshCommand({ sshKey: options.sshKey, port: options.port, knownHosts: options.knownHosts });
  }
  const git = (args: string[], cwd = temp) => $({ env, cwd, quiet: true, nothrow: true })`git ${args}`;
  try {
    await must(git(['init', '--quiet', '--bare', gitDir]), 'git init');
    const heads = await git(['ls-remote', '--heads', target.remote, `refs/heads/${target.branch}`]);
    if (heads.exitCode !== 0) throw remoteFailure(`could not read ${target.remote}`, heads.stderr);
    let parent: string | undefined;
    if (heads.stdout.trim()) {
      const fetched = await git([
        'fetch',
        '--quiet',
        '--depth=1',
        '--no-tags',
        target.remote,
        `+refs/heads/${target.branch}:refs/shipkit/parent`,
      ]);
      if (fetched.exitCode !== 0)
        throw remoteFailure(`could not fetch ${target.branch} from ${target.remote}`, fetched.stderr);
      parent = (await must(git(['rev-parse', 'refs/shipkit/parent^{commit}']), 'git rev-parse')).stdout.trim();
    }

    // The folder as a tree: everything, ignoring any .gitignore (it is build output).
    const workEnv = ['--work-tree', options.from];
    await must(git([...workEnv, 'add', '--all', '--force', '--', '.'], options.from), 'git add');
    await dropUnsafeEntries(git, workEnv, options);
    const tree = (await must(git(['write-tree']), 'git write-tree')).stdout.trim();

    if (parent) {
      const parentTree = (await must(git(['rev-parse', `${parent}^{tree}`]), 'git rev-parse')).stdout.trim();
      if (parentTree === tree) {
        log.info(`git: ${name}: unchanged; nothing to commit`);
        return { target: name, uploaded: 0, unchanged: 1, deleted: 0, dryRun: Boolean(options.dryRun) };
      }
    }
    const source = options.sourceSha ?? (await detectSourceSha(options.from, options.env ?? process.env));
    const message =
      options.message ??
      (source
        ? `Deploy ${source.slice(0, 12)}\n\nBuilt from source commit ${source} by shipkit.`
        : 'Deploy\n\nBuilt by shipkit (source commit unknown).');
    const identity = await identityEnv(git, env);
    const commitArgs = ['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', message];
    const commit = (
      await must(
        $({ env: { ...env, ...identity }, cwd: temp, quiet: true, nothrow: true })`git ${commitArgs}`,
        'git commit-tree',
      )
    ).stdout.trim();
    if (options.dryRun) {
      log.info(`git: ${name}: would push ${commit.slice(0, 12)} (dry run)`);
      return { target: name, uploaded: 1, unchanged: 0, deleted: 0, commit, dryRun: true };
    }
    const pushed = await git(['push', '--quiet', target.remote, `${commit}:refs/heads/${target.branch}`]);
    if (pushed.exitCode !== 0)
      throw remoteFailure(`${target.remote} refused the push to ${target.branch}`, pushed.stderr);
    log.info(
      `git: ${name}: pushed ${commit.slice(0, 12)}${parent ? ` on top of ${parent.slice(0, 12)}` : ' (new branch)'}`,
    );
    return { target: name, uploaded: 1, unchanged: 0, deleted: 0, commit, dryRun: false };
  } finally {
    await fs.rm(temp, { recursive: true, force: true });
  }
}

type Git = (args: string[], cwd?: string) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>;

// Links that leave the folder and nested repositories (gitlinks) are taken out of the tree.
async function dropUnsafeEntries(git: Git, workEnv: string[], options: UploadOptions): Promise<void> {
  const listed = await must(git(['ls-files', '--stage', '-z']), 'git ls-files');
  const root = await fs.realpath(options.from);
  const drop: string[] = [];
  for (const record of listed.stdout.split('\0').filter(Boolean)) {
    const m = /^(\d+) [0-9a-f]+ \d\t(.*)$/s.exec(record);
    if (!m) continue;
    const [, mode, file] = m;
    if (mode === '160000') {
      options.log.warn(`skipping ${file}: a nested git repository`);
      drop.push(file);
    } else if (mode === '120000') {
      const link = path.join(options.from, file);
      const target = await fs.readlink(link);
      const resolved = path.resolve(path.dirname(path.join(root, file)), target);
      if (path.isAbsolute(target) || !isInside(root, resolved)) {
        options.log.warn(`skipping ${file}: symbolic link to ${target}, outside the source folder (not followed)`);
        drop.push(file);
      }
    }
  }
  for (let i = 0; i < drop.length; i += 100) {
    await must(git([...workEnv, 'rm', '--cached', '--quiet', '--', ...drop.slice(i, i + 100)], options.from), 'git rm');
  }
}

async function detectSourceSha(dir: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const clean = { ...env };
  delete clean.GIT_DIR;
  delete clean.GIT_INDEX_FILE;
  const result = await $({ cwd: dir, env: clean, quiet: true, nothrow: true })`git rev-parse --verify HEAD`;
  const sha = result.stdout.trim();
  return result.exitCode === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
}

async function identityEnv(git: Git, env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const name = (await git(['config', 'user.name'])).stdout.trim();
  const email = (await git(['config', 'user.email'])).stdout.trim();
  const fallbackName = name || 'shipkit';
  const fallbackEmail = email || `shipkit@${os.hostname()}`;
  for (const role of ['AUTHOR', 'COMMITTER']) {
    if (!env[`GIT_${role}_NAME`]) out[`GIT_${role}_NAME`] = fallbackName;
    if (!env[`GIT_${role}_EMAIL`]) out[`GIT_${role}_EMAIL`] = fallbackEmail;
  }
  return out;
}

async function must<T extends { exitCode: number | null; stderr: string }>(run: Promise<T>, what: string): Promise<T> {
  const result = await run;
  if (result.exitCode !== 0) throw new WorkError(`${what} failed: ${lastLines(result.stderr)}`);
  return result;
}

// The patterns must not match what git quotes back: object ids and paths are in the same lines
// (a bare /403/ matched the pushed commit's id about once in a hundred pushes).
export function remoteFailure(what: string, stderr: string): RemoteError {
  let advice = '';
  if (
    /Permission denied|Authentication failed|could not read Username|returned error: 403\b|\b403 Forbidden/.test(stderr)
  )
    advice = ' Check the credentials (ssh_key, deploy key or token).';
  else if (
    /Could not resolve host|Connection refused|timed out|does not appear to be a git repository|not found/i.test(stderr)
  )
    advice = ' Check the remote URL and that the server is reachable.';
  else if (/non-fast-forward|fetch first|stale info/.test(stderr))
    advice = ' The branch moved while uploading; run the upload again.';
  else if (/hook declined|remote rejected|protected branch/.test(stderr))
    advice = ' The remote refused it (hook or branch protection).';
  return new RemoteError(`${what}: ${lastLines(stderr)}.${advice}`);
}

function lastLines(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-4)
      .join(' / ') || 'no output'
  );
}
