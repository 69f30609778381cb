// "Up to date": a pushed commit whose tree the repo's last whole, successful build built already,
// with the same config file, build environment and shipkit (built.json, lib/pipeline/built-record.ts),
// needs no build. hook-server's and workers' process runner asks before it starts anything
// (injected into lib/jobs/process/runner.ts); the answer is "build" whenever anything differs or
// cannot be told. docs/hook-server.md "Up to date: pushes that change nothing".
import { existsSync } from 'node:fs';
import { chown, readFile } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { acquireLock, type Lock } from '../core/lock.ts';
import { messageOf } from '../core/errors.ts';
import { version } from '../core/cli.ts';
import type { Logger } from '../core/log.ts';
import { resolveBuildEnv } from '../config/build-env.ts';
import { repoPaths, type RepoConfig, type ShipkitConfig } from '../config/shipkit-yml.ts';
import { upToDateReason, type Job } from '../jobs/job.ts';
import { JobLogWriter } from '../jobs/job-log.ts';
import { rotateLogs } from '../jobs/log-rotate.ts';
import type { UpToDateCheck, WouldBuild } from '../jobs/process/runner.ts';
import { builtFile, configDigest, envDigest, readBuilt, type BuiltRecord } from './built-record.ts';
import { captureCommand } from './exec.ts';
import { prepareGitAuth } from './git-auth.ts';
import { prepareGitToken } from './git-token.ts';
import { jobLockFile, logSettings } from './job.ts';
import { FETCH_ORIGIN, pullRemoteUrl } from './pull.ts';

type Answer = { upToDate: boolean; reason: string };

const build = (reason: string): Answer => ({ upToDate: false, reason });

const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** The runner's question for the repos of `config`; any error answers "build" (the build then says what is wrong). */
export function upToDateCheckFor(config: ShipkitConfig): UpToDateCheck {
  return (job, would) =>
    decideUpToDate(config, job, would).catch((error) => build(`could not tell: ${messageOf(error)}`));
}

/**
 * Up to date only when: a build of a full commit id, not forced, the repo's `skip_unchanged` not
 * false, its job lock free at once (held while deciding and while the log is written), built.json
 * made by this shipkit with the config file's bytes and the environment the build would get, and
 * the commit's tree the one built. The job's section in logs.txt says so.
 */
export async function decideUpToDate(config: ShipkitConfig, job: Job, would: WouldBuild): Promise<Answer> {
  if (job.kind !== 'build' || !job.sha || !FULL_SHA.test(job.sha)) return build('not a build of a known commit');
  if (job.force) return build('forced (a forced push, a replay or a redelivery)');
  const repo = config.repos.get(job.repo);
  if (!repo) return build('the repository is not in the config');
  if (!repo.skipUnchanged) return build('skip_unchanged: false');
  const paths = repoPaths(config, repo.name);
  // Cheap first: no record (a first build, or the last one failed) needs no lock.
  if (!existsSync(builtFile(paths))) return build('no record of a successful build (built.json)');
  let lock: Lock;
  try {
    lock = await acquireLock(jobLockFile(paths), { what: repo.name });
  } catch (error) {
    return build(`the repo's job lock is held (${messageOf(error)})`);
  }
  try {
    const built = await readBuilt(paths);
    if (!built) return build('no record of a successful build (built.json)');
    const changed = await changedSince(config, repo, built, would);
    if (changed) return build(changed);
    const tree = await treeOf(config, repo, job.sha, built, would);
    if (!tree) return build(`commit ${job.sha} is not in the clone, even after a fetch`);
    if (tree !== built.tree) return build(`tree ${tree} is not the one built (${built.tree})`);
    const reason = upToDateReason(
      `tree ${tree.slice(0, 12)} (commit ${job.sha.slice(0, 12)}) was built by job ${built.job}; nothing to build`,
    );
    await writeJobSection(config, repo, job, reason, would);
    return { upToDate: true, reason };
  } finally {
    await lock.release();
  }
}

/** What differs from the last build besides the tree, or undefined. */
async function changedSince(
  config: ShipkitConfig,
  repo: RepoConfig,
  built: BuiltRecord,
  would: WouldBuild,
): Promise<string | undefined> {
  if (built.shipkit !== version()) return `built by shipkit ${built.shipkit}, this is ${version()}`;
  if (built.config !== (await configDigest(config.file))) return `${config.file} changed`;
  const { vars } = await resolveBuildEnv(config.doc, repo.env, would.env);
  if (built.env.digest !== envDigest(built.env.salt, vars, would.env))
    return 'the build environment changed (env:, its secrets, PATH, HOME or LANG)';
  return undefined;
}

/**
 * The commit's tree: the recorded one for the commit built; else from the clone, fetched once
 * (the pull step's fetch, with its credentials, as the repo's user) when it lacks the commit.
 */
async function treeOf(
  config: ShipkitConfig,
  repo: RepoConfig,
  sha: string,
  built: BuiltRecord,
  would: WouldBuild,
): Promise<string | undefined> {
  if (sha === built.sha) return built.tree;
  const work = repoPaths(config, repo.name).work;
  if (!existsSync(path.join(work, '.git'))) return undefined;
  const base = { PATH: would.env.PATH, HOME: would.env.HOME, LANG: would.env.LANG, GIT_TERMINAL_PROMPT: '0' };
  // A process less each way where the commit is a loose object (as a small fetch leaves it).
  const known = await treeOfLooseCommit(work, sha);
  if (known) return known;
  // Without git's housekeeping after the fetch (`maintenance run --auto`, a process more, ~10 ms,
  // and a whole gc when it finds one due): a decision holds the repo's job lock and should take
  // milliseconds; the next build's own fetch in the pull step runs it.
  const fetch = ['-c', 'maintenance.auto=false', 'fetch', '--quiet', ...FETCH_ORIGIN];
  const fetchEnv = { ...base, ...(await pullEnvironment(config, repo, work, would)) };
  // Started as jobs are, off hook-server's thread (the runner's spawner).
  const timeoutMs = repo.timeout * 1000;
  if ((await would.run(['git', ...fetch], { cwd: work, env: fetchEnv, timeoutMs })) !== 0) return undefined;
  const loose = await treeOfLooseCommit(work, sha);
  if (loose) return loose;
  // A packed commit: git is asked, as the repo's user.
  const result = await captureCommand(['git', 'rev-parse', '--verify', '--quiet', `${sha}^{tree}`], {
    cwd: work,
    env: base,
    timeoutMs,
    uid: would.uid,
    gid: would.gid,
  });
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

/**
 * A commit's tree read from its loose object (`.git/objects/AB/CDEF…`: zlib of `commit SIZE\0tree
 * HEX\n…`), the one plain form git writes; a packed commit, or anything else, is undefined and git
 * is asked (pull.ts reads branch heads from their files the same way).
 */
export async function treeOfLooseCommit(work: string, sha: string): Promise<string | undefined> {
  if (!FULL_SHA.test(sha)) return undefined;
  const file = path.join(work, '.git', 'objects', sha.slice(0, 2), sha.slice(2));
  const text = await readFile(file)
    .then((bytes) => inflateSync(bytes).subarray(0, 200).toString('latin1'))
    .catch(() => '');
  return new RegExp(`^commit \\d+\\0tree ([0-9a-f]{${sha.length}})\\n`).exec(text)?.[1];
}

/** The credentials the pull step's git gets (a deploy key, a token), as lib/pipeline/job.ts prepares them. */
async function pullEnvironment(
  config: ShipkitConfig,
  repo: RepoConfig,
  work: string,
  would: WouldBuild,
): Promise<Record<string, string>> {
  const url = await pullRemoteUrl(repo, work);
  const runAs = repo.user && would.uid !== undefined ? { user: repo.user, uid: would.uid } : undefined;
  const auth = await prepareGitAuth(config.doc, repo.gitAuth, { url, runAs });
  const token = await prepareGitToken(config.doc, repo.gitToken, { url, env: would.env });
  return { ...auth, ...token?.env };
}

/** The job's section in logs.txt (rotated first, as every job does), left to the repo's user when it made the file. */
async function writeJobSection(
  config: ShipkitConfig,
  repo: RepoConfig,
  job: Job,
  reason: string,
  would: WouldBuild,
): Promise<void> {
  const logs = repoPaths(config, repo.name).logs;
  await rotateLogs(logs, logSettings(config).rotation);
  const writer = await JobLogWriter.start(logs, {
    id: job.id,
    repo: repo.name,
    kind: 'build',
    sha: job.sha ?? undefined,
    ref: job.ref ?? undefined,
  });
  writer.line(reason);
  writer.finish({ status: 'succeeded', exit: 0, sha: job.sha ?? undefined });
  // As root for a repo with user:, a logs.txt made here must stay the user's: its next build appends.
  if (would.uid !== undefined) await chown(writer.file, would.uid, would.gid ?? -1);
}
