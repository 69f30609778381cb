// slave-activate's work: replace ROOT/REPO with a fresh clone of BASE/REPO.git without ever
// leaving ROOT/REPO half-done. The clone goes to a temp folder beside it and is swapped in by
// rename; a per-repo lock keeps two activations off one folder.
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { RemoteError, WorkError } from '../core/errors.ts';
import { pathExists } from '../core/fs.ts';
import { redactUrls } from '../core/redact.ts';
import { acquireLock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { validateName } from '../core/names.ts';

export const DEFAULT_BASE = 'https://github.com/aiegoo';

export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.SLAVE_ROOT || path.join(os.homedir(), 'repos');
}

/** BASE/REPO.git, where BASE is a URL (`https://…`, `git://…`, `ssh://…`, `user@host:path`) or a local path. */
export function cloneUrl(base: string, repo: string): string {
  validateName(repo, 'repository name');
  const trimmed = base.replace(/\/+$/, '');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) || /^[^/]+@[^/]+:/.test(trimmed)) return `${trimmed}/${repo}.git`;
  return path.join(path.resolve(trimmed), `${repo}.git`);
}

export interface ActivateOptions {
  root: string;
  base: string;
  repo: string;
  log: Logger;
  timeoutMs?: number;
  /** How long to wait for another activation of the same repo to finish. */
  lockWaitMs?: number;
}

export interface ActivateResult {
  repo: string;
  path: string;
  head: string;
  ms: number;
}

export async function activateRepo({
  root,
  base,
  repo,
  log,
  timeoutMs = 600_000,
  lockWaitMs = 600_000,
}: ActivateOptions): Promise<ActivateResult> {
  validateName(repo, 'repository name');
  const started = performance.now();
  const url = cloneUrl(base, repo);
  const rootDir = path.resolve(root);
  try {
    await mkdir(rootDir, { recursive: true });
  } catch (error) {
    throw new WorkError(
      `Cannot create the root folder ${rootDir} (${(error as NodeJS.ErrnoException).code}); check its permissions.`,
      { cause: error },
    );
  }
  const target = path.join(rootDir, repo);
  const lock = await acquireLock(path.join(rootDir, `.${repo}.lock`), { waitMs: lockWaitMs, what: `${target}` });
  try {
    await recoverInterruptedSwap(rootDir, repo);
    const temp = path.join(rootDir, `.${repo}.clone-${process.pid}-${Date.now()}`);
    log.info(`cloning ${redactUrls(url)}`, { repo });
    const clone = await $({
      timeout: timeoutMs,
      env: gitEnv(),
      nothrow: true,
      quiet: true,
    })`git clone --quiet --no-hardlinks -- ${url} ${temp}`;
    if (clone.exitCode !== 0) {
      await rm(temp, { recursive: true, force: true });
      const reason =
        lastLine(clone.stderr) ||
        (clone.signal ? `killed by ${clone.signal} after ${timeoutMs / 1000}s` : `git exited with ${clone.exitCode}`);
      throw new RemoteError(
        `Clone of ${redactUrls(url)} failed: ${redactUrls(reason)}. ${(await pathExists(target)) ? `The previous ${target} is kept.` : ''}`.trim(),
      );
    }
    const head = (await $({ cwd: temp, quiet: true, env: gitEnv() })`git rev-parse HEAD`.nothrow()).stdout.trim();
    await swapIn(temp, target);
    const ms = Math.round(performance.now() - started);
    log.info(`activated ${repo}`, { repo, head, ms });
    return { repo, path: target, head, ms };
  } finally {
    await lock.release();
  }
}

// Two renames: old → .REPO.old-*, new → REPO. A crash between them leaves no REPO and one
// .old folder, which recoverInterruptedSwap puts back on the next run.
async function swapIn(temp: string, target: string): Promise<void> {
  const dir = path.dirname(target);
  const old = path.join(dir, `.${path.basename(target)}.old-${process.pid}-${Date.now()}`);
  const hadOld = await pathExists(target);
  try {
    if (hadOld) await rename(target, old);
    await rename(temp, target);
  } catch (error) {
    if (hadOld && !(await pathExists(target)) && (await pathExists(old))) await rename(old, target);
    await rm(temp, { recursive: true, force: true });
    throw new WorkError(
      `Could not move the new clone into ${target} (${(error as NodeJS.ErrnoException).code}); the previous one is kept.`,
      { cause: error },
    );
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * The leftovers of this repo's own interrupted runs: `.REPO.old-PID-MS` and `.REPO.clone-PID-MS`,
 * matched whole. A prefix match would take repo `a` for the owner of `.a.clone-x.lock` and of
 * `.a.clone-x.clone-…`, the lock and temp clone of a running activation of repo `a.clone-x`.
 */
export function leftoversOf(repo: string, entries: readonly string[]): { olds: string[]; temps: string[] } {
  const ours = (kind: 'old' | 'clone') =>
    entries.filter(
      (e) => e.startsWith(`.${repo}.${kind}-`) && /^\d+-\d+$/.test(e.slice(repo.length + kind.length + 3)),
    );
  const byTime = (a: string, b: string) => Number(a.split('-').pop()) - Number(b.split('-').pop());
  return { olds: ours('old').sort(byTime), temps: ours('clone') };
}

async function recoverInterruptedSwap(rootDir: string, repo: string): Promise<void> {
  const target = path.join(rootDir, repo);
  const { olds, temps } = leftoversOf(repo, await readdir(rootDir));
  if (!(await pathExists(target)) && olds.length) await rename(path.join(rootDir, olds.pop()!), target);
  for (const leftover of [...olds, ...temps]) await rm(path.join(rootDir, leftover), { recursive: true, force: true });
}

function gitEnv(): NodeJS.ProcessEnv {
  // Never wait for a password prompt: an unknown GitHub repo asks for credentials.
  return {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    SSH_ASKPASS: 'true',
    GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
  };
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter(Boolean)
      .pop()
      ?.replace(/^fatal:\s*/, '') ?? ''
  );
}
