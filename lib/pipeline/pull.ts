// The pull step: clone once, then fetch and check out exactly the wanted commit, detached.
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../core/errors.ts';
import { ensureDir, tempSibling } from '../core/fs.ts';
import { findUser } from '../core/unix-user.ts';
import { redactUrls } from '../core/redact.ts';
import { captureCommand, runLogged } from './exec.ts';
import { explainGitAuthFailure } from './git-auth.ts';
import { cleanExcludes, logAfterClean } from './cache.ts';
import { explainGitTokenFailure } from './git-token.ts';
import { gitQuery, run, StepFailure, type BuildContext, type StepResult } from './context.ts';
import type { RepoConfig } from '../config/shipkit-yml.ts';

/** What the pull step's fetch takes from origin (after `git fetch`): every branch, tags, pruned. The up-to-date decision fetches the same. */
export const FETCH_ORIGIN = ['--force', '--prune', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*'];
/**
 * Clone on the first run (into a temp folder, renamed into place), then fetch and check out
 * exactly the wanted commit, detached; remove untracked files from the last build; update
 * submodules. A force-pushed branch is fetched with `+` refspecs, so its new head is used.
 */
export async function pullStep(ctx: BuildContext): Promise<StepResult> {
  try {
    return await pullCommit(ctx);
  } catch (error) {
    // The address the credentials were checked and scoped against before the job (lib/pipeline/job.ts).
    const url = await pullRemoteUrl(ctx.repo, ctx.paths.work, ctx.url);
    throw await explainGitTokenFailure(
      explainGitAuthFailure(explainOtherUsersSource(error, ctx.runAs), { url, auth: ctx.repo.gitAuth }),
      { url, token: ctx.repo.gitToken },
    );
  }
}

/**
 * A build or release of a repo without `user:`, run by another user than the one its folders
 * belong to (root, after hook-server as user shipkit cloned): git would refuse the clone
 * ("dubious ownership") and advise trusting it in its global config, and what the job wrote would
 * be left where the owner's next job cannot change it. Refused before anything is written, saying
 * whom to run it as.
 */
export async function checkFoldersOwner(
  dirs: string[],
  { repo, kind }: { repo: string; kind: string },
  uid = process.getuid?.(),
): Promise<void> {
  if (uid === undefined) return;
  for (const dir of dirs) {
    const owner = (await stat(dir).catch(() => undefined))?.uid;
    if (owner === undefined || owner === uid) continue;
    const name = (await findUser(String(owner)))?.name;
    const me = (await findUser(String(uid)))?.name ?? `uid ${uid}`;
    const who = name ?? `uid ${owner}`;
    const how = !name
      ? `as uid ${owner}`
      : uid === 0
        ? `runuser -u ${name} -- shipkit ${kind} ${repo}`
        : `sudo -u ${name} shipkit ${kind} ${repo}`;
    throw new UsageError(
      `${dir} belongs to ${who}, and this ${kind} runs as ${me}: git refuses to work in another user's ` +
        `clone ("dubious ownership"; trusting it in safe.directory, as git suggests, would leave files there that ` +
        `${who}'s jobs cannot change). Run it as ${who}, with the same options: ${how}`,
    );
  }
}

/** A clone or fetch git refused because the repository it reads from (a bare repo on this machine) is another user's, explained. */
function explainOtherUsersSource(error: unknown, runAs: BuildContext['runAs']): unknown {
  if (!(error instanceof StepFailure)) return error;
  const source = /detected dubious ownership in repository at '([^']+)'/.exec(error.lastLines.join('\n'))?.[1];
  if (!source) return error;
  const user = runAs?.user ?? os.userInfo().username;
  const as = process.getuid?.() === 0 && user !== 'root' ? `runuser -u ${user} -- ` : '';
  const explained = new StepFailure(
    `git refuses to read ${source}: it belongs to another user than ${user}, whom this job runs as ` +
      `("dubious ownership"). If you trust that repository, let ${user} read it: ${as}git config --global --add ` +
      `safe.directory ${source}; or set url: for the repo to an address a git server serves it at (ssh://…).`,
    { lastLines: error.lastLines, timedOut: error.timedOut, commandExit: error.commandExit },
  );
  explained.cause = error;
  return explained;
}

/**
 * The address the pull step fetches from (what credentials are checked and scoped against before
 * the job): a first clone's --url, else url:, else GitHub's for an owner/name; an existing
 * clone's url: (it is re-pointed there), else its origin.
 */
export async function pullRemoteUrl(
  repo: Pick<RepoConfig, 'name' | 'url'>,
  work: string,
  url?: string,
): Promise<string | undefined> {
  if (!existsSync(path.join(work, '.git'))) return url ?? repo.url ?? defaultUrl(repo.name);
  if (repo.url) return repo.url;
  // Read as a file: git refuses a repository owned by another user (a build user's) to root.
  const origin = await captureCommand(
    ['git', 'config', '--file', path.join(work, '.git', 'config'), '--get', 'remote.origin.url'],
    { cwd: '/' },
  );
  return origin.exitCode === 0 ? origin.stdout.trim() || undefined : undefined;
}

async function pullCommit(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  const fresh = !existsSync(path.join(work, '.git'));
  const url = ctx.url ?? ctx.repo.url ?? (fresh ? defaultUrl(ctx.repo.name) : undefined);
  if (fresh) {
    if (!url) throw new StepFailure(`No clone URL for ${ctx.repo.name}: set \`url:\` for it in shipkit.yml.`);
    const entries = await readdir(work).catch(() => undefined);
    if (entries) {
      // A work folder without .git (prepared for a build user, or a clone cut short): clone
      // into it, emptied; its parent may not be ours to write in.
      for (const entry of entries) await rm(path.join(work, entry), { recursive: true, force: true });
      await run(ctx, ['git', 'clone', '--no-checkout', '--', url, work], {
        cwd: work,
        what: `git clone --no-checkout ${url}`,
      });
    } else {
      await ensureDir(path.dirname(work));
      const temp = tempSibling(work, 'clone');
      await mkdir(temp, { mode: 0o755 });
      if (ctx.runAs) await chown(temp, ctx.runAs.uid, ctx.runAs.gid);
      try {
        await run(ctx, ['git', 'clone', '--no-checkout', '--', url, temp], {
          cwd: path.dirname(work),
          what: `git clone --no-checkout ${url}`,
        });
        await rename(temp, work);
      } catch (error) {
        await rm(temp, { recursive: true, force: true });
        throw error;
      }
    }
  } else {
    // A git killed mid-way (timeout, reboot) leaves its lock; the job lock says no git of ours runs.
    for (const lock of ['index.lock', 'shallow.lock', 'HEAD.lock'])
      await rm(path.join(work, '.git', lock), { force: true });
    // The remote is pinned at the first clone: --url (hook-server passes the payload's clone_url)
    // only makes the first clone and never re-points it; a changed `url:` in shipkit.yml does.
    const origin = (await plainOrigin(work)) ?? (await gitQuery(ctx, ['remote', 'get-url', 'origin']));
    if (ctx.url && origin !== undefined && ctx.url !== origin) {
      throw new StepFailure(
        `${ctx.repo.name}'s clone fetches from ${redactUrls(origin)}; --url ${redactUrls(ctx.url)} would ` +
          `re-point it, which is refused. Set url: for it in shipkit.yml to move it.`,
      );
    }
    if (ctx.repo.url && ctx.repo.url !== origin) {
      await run(ctx, ['git', 'remote', 'set-url', 'origin', ctx.repo.url], {
        what: `git remote set-url origin ${ctx.repo.url}`,
      });
    }
  }
  await run(ctx, ['git', 'fetch', ...FETCH_ORIGIN]);
  const sha = await resolveTarget(ctx);
  await run(ctx, ['git', 'checkout', '--force', '--detach', sha]);
  // Kept: node_modules, downloads and the repo's cache: paths, unless the build starts clean.
  await run(ctx, ['git', 'clean', '-ffdx', ...cleanExcludes(ctx.cache)]);
  await logAfterClean(ctx);
  if (existsSync(path.join(work, '.gitmodules'))) {
    await run(ctx, ['git', 'submodule', 'sync', '--recursive']);
    await run(ctx, ['git', 'submodule', 'update', '--init', '--recursive', '--force']);
    await run(ctx, ['git', 'submodule', 'foreach', '--recursive', 'git', 'clean', '-ffdx']);
  }
  ctx.checkedOut = sha;
  return { note: `at ${sha}` };
}

function defaultUrl(name: string): string | undefined {
  return name.includes('/') ? `https://github.com/${name}.git` : undefined;
}

/** The commit to build: --sha, else the head of --ref, else the head of the configured branch. */
async function resolveTarget(ctx: BuildContext): Promise<string> {
  if (ctx.sha) {
    let full = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${ctx.sha}^{commit}`]);
    if (!full && /^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(ctx.sha)) {
      // Not reachable from any branch (a force push dropped it?): servers may still serve it by id.
      await runLogged(['git', 'fetch', '--quiet', 'origin', ctx.sha], {
        cwd: ctx.paths.work,
        env: ctx.env,
        log: ctx.log,
        deadline: ctx.deadline,
        timeoutSec: ctx.timeoutSec,
        limits: ctx.limits,
        uid: ctx.runAs?.uid,
        gid: ctx.runAs?.gid,
        signal: ctx.signal,
      });
      full = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${ctx.sha}^{commit}`]);
    }
    if (!full)
      throw new StepFailure(
        `Commit ${ctx.sha} does not exist in ${ctx.repo.name}'s remote; check the SHA (was it force-pushed away?).`,
      );
    return full;
  }
  const ref = ctx.ref ?? ctx.repo.branch;
  const candidates = ref.startsWith('refs/heads/')
    ? [`refs/remotes/origin/${ref.slice(11)}`]
    : ref.startsWith('refs/tags/')
      ? [ref]
      : [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`];
  for (const candidate of candidates) {
    const full =
      (await branchHeadFromFiles(ctx.paths.work, candidate)) ??
      (await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`]));
    if (full) return full;
  }
  throw new StepFailure(`${ref} does not exist in ${ctx.repo.name}'s remote; check the branch or tag name.`);
}

// Two answers read from the clone's files instead of asking git (a process each, on every
// build): only where git wrote them in the one plain form; anything else is left to git.

/**
 * remote.origin.url as git clone wrote it: one `[remote "origin"]` section with one url, unquoted,
 * in a .git/config that includes no other file and rewrites no URL (insteadOf).
 */
async function plainOrigin(work: string): Promise<string | undefined> {
  const text = await readFile(path.join(work, '.git', 'config'), 'utf8').catch(() => '');
  if (/^\s*\[include|insteadof/im.test(text) || text.split('[remote "origin"]').length !== 2) return undefined;
  const section = /^\[remote "origin"\]\n((?:[ \t]+[^\n]*\n)*)/m.exec(text)?.[1] ?? '';
  const urls = [...section.matchAll(/^\s*url\s*=\s*(.*)$/gim)].map((m) => m[1]);
  return urls.length === 1 && /^[^\s"\\;#]+$/.test(urls[0]) ? urls[0] : undefined;
}

/**
 * A remote-tracking branch's commit from its ref file, or from packed-refs when it has none (a
 * branch names a commit: git refuses to push anything else to one). A symbolic ref, a tag (which
 * may need peeling) or another ref storage: undefined, and git is asked.
 */
async function branchHeadFromFiles(work: string, ref: string): Promise<string | undefined> {
  if (!ref.startsWith('refs/remotes/') || ref.split('/').some((part) => part === '..' || part === '')) return undefined;
  const oid = '([0-9a-f]{40}|[0-9a-f]{64})';
  const loose = await readFile(path.join(work, '.git', ref), 'utf8').catch((error: NodeJS.ErrnoException) =>
    error.code === 'ENOENT' ? null : '',
  );
  if (loose !== null) return new RegExp(`^${oid}\\n$`).exec(loose)?.[1];
  const packed = await readFile(path.join(work, '.git', 'packed-refs'), 'utf8').catch(() => '');
  return new RegExp(`^${oid} ${ref.replace(/[^\w/-]/g, '\\$&')}$`, 'm').exec(packed)?.[1];
}
