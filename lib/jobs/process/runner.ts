// One attempt of a job as a child process: `build`/`release` in its own process group, a clean
// environment, the repo's Unix user, the repo's timeout for the whole group, output to
// DATA/jobs/ID/output.log, and its exit code in a status file.
// The whole story: docs/internals.md.
import { chown, open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import { secretEnvNames, type BuildEnvEntry } from '../../config/build-env.ts';
import { lookupUser, type UnixAccount } from '../../core/unix-user.ts';
import { endProcessGroup, signalGroup, waitForGroupExit } from '../../core/process-group.ts';
import { scriptCommandFor } from '../../core/script-command.ts';
import type { ShipkitConfig } from '../../config/shipkit-yml.ts';
import type { JobRunner, RunOutcome } from '../job-queue.ts';
import { isStoredJobId } from '../job-id.ts';
import { readStatus } from './status.ts';
import { jobWrappers } from './wrappers.ts';
import { createSpawner, runQuietly, type JobExit, type Spawner } from './spawner.ts';
import { clonesWithCredentials, prepareUserDirs } from './user-dirs.ts';
import type { Job } from '../job.ts';
import type { Logger } from '../../core/log.ts';
import { messageOf } from '../../core/errors.ts';

// Fixed text: the status file and the command come in as positional parameters, never spliced in.
// Shell builtins only (no mv: a PATH of node, git and bash is enough). The code and its newline
// go out in one small write; the reader (local/recovery.ts) takes only a whole line, so a file
// caught empty or cut short counts as no status, as a missing one does. SIGTERM to the group
// reaches the command; the wrapper itself waits for it (a trap runs only once the foreground
// command ended) and records how it really ended: a build that had just finished when a
// restarted hook-server ended its group is recorded as done, not run a second time.
const WRAPPER = 's=$1; shift; trap : TERM; "$@"; c=$?; printf \'%s\\n\' "$c" > "$s"; exit "$c"';

export interface RepoSettings {
  timeout: number;
  user?: string;
  url?: string;
  /** The repo's `env:` (lib/config/build-env.ts): its `env:NAME` secrets are passed on to its build. */
  env?: BuildEnvEntry[];
  /** The repo's `token:` (lib/pipeline/git-token.ts): an `env:NAME` token is passed on to its build. */
  gitToken?: { token: string };
}

export interface ProcessRunnerOptions {
  dataDir: string;
  jobsDir: string;
  configFile: string;
  commands: { build: string[]; release: string[] };
  repoSettings(repo: string): RepoSettings | undefined;
  /** Where PATH and LANG come from (and the repo's env:NAME secrets; nothing else is passed on). */
  env?: NodeJS.ProcessEnv;
  /** Between SIGTERM and SIGKILL at a timeout. */
  killGraceMs?: number;
  /** A job whose output passes this is ended (a runaway loop must not fill the disk). */
  maxOutputBytes?: number;
  /** Output kept once a job has ended: the head and the tail around a cut mark. */
  keptOutputBytes?: number;
  log: Logger;
  /** Prepare per-repo folders for a build user (root only); injected so tests can skip it. */
  prepareUserDirs?: (job: Job, account: UnixAccount, cloneUrl: string | undefined) => Promise<void>;
  /** What starts the processes (lib/jobs/process/spawner.ts): a helper process under Node by default. */
  spawner?: Spawner;
  /** Asked before a job's process starts: "up to date" ends it there (lib/pipeline/up-to-date.ts, injected: jobs sit below the pipeline). */
  upToDate?: UpToDateCheck;
}

/** The build a job's process would run: its environment, and the uid/gid it would run as (none: this process's). */
export interface WouldBuild {
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** Runs a short command as the job would (its user), started as jobs are (spawner.ts), output dropped: its exit code. */
  run: (
    argv: string[],
    options: { cwd: string; env: Record<string, string>; timeoutMs: number },
  ) => Promise<number | null>;
}

/** Whether the job would build what the repo's last build built; `reason` says why (or why not). */
export type UpToDateCheck = (job: Job, build: WouldBuild) => Promise<{ upToDate: boolean; reason: string }>;

/** The variables the repo's `env:NAME` secrets and token read, and only this repo's: the build resolves them. */
function passedSecrets(settings: RepoSettings, env: NodeJS.ProcessEnv): Record<string, string> {
  const passed: Record<string, string> = {};
  for (const name of secretEnvNames(settings)) if (env[name] !== undefined) passed[name] = env[name]!;
  return passed;
}

/** The command line of a job, without the runtime prefix. */
export function jobArguments(job: Job, configFile: string, { url }: { url?: string } = {}): string[] {
  if (job.kind === 'release') return [job.repo, '--tag', job.tag ?? '', '--config', configFile, '--job-id', job.id];
  const args = [job.repo, '--config', configFile];
  if (job.sha) args.push('--sha', job.sha);
  if (job.ref) args.push('--ref', job.ref);
  args.push('--job-id', job.id);
  // The payload's clone URL is used only when the config names none (docs/hook-server.md).
  if (url) args.push('--url', url);
  return args;
}

/** Each job of `config` as `build`/`release` processes under its data folder: hook-server's and `shipkit worker`'s runner alike. */
export async function processRunnerFor(
  config: ShipkitConfig,
  {
    log,
    env,
    commands,
    upToDate,
  }: {
    log: Logger;
    env?: NodeJS.ProcessEnv;
    commands?: { build: string[]; release: string[] };
    upToDate?: UpToDateCheck;
  },
): Promise<JobRunner> {
  return createProcessRunner({
    upToDate,
    dataDir: config.data,
    jobsDir: path.join(config.data, 'jobs'),
    configFile: config.file,
    log,
    env,
    commands: commands ?? {
      build: await scriptCommandFor('build', env),
      release: await scriptCommandFor('release', env),
    },
    repoSettings: (repo) => config.repos.get(repo),
    // As root, a repo with `user:` gets its folders (and its first clone, unless the clone needs
    // the repo's credentials, which only `build` gives git).
    prepareUserDirs: (job, account, cloneUrl) =>
      prepareUserDirs(
        config,
        job,
        account,
        clonesWithCredentials(config.repos.get(job.repo)) ? undefined : cloneUrl,
        log,
      ),
  });
}

export function createProcessRunner(options: ProcessRunnerOptions): JobRunner {
  const spawner = options.spawner ?? createSpawner();
  return async (job, hooks) => {
    // An id read from the queue database becomes a folder name below: one that is not a job id
    // (`../../x`) is refused before any path is made of it.
    if (!isStoredJobId(job.id)) {
      options.log.error('refused a job whose id is not a job id; nothing of it is written', {
        job: JSON.stringify(String(job.id).slice(0, 80)),
        repo: job.repo,
      });
      return { exit: null, reason: 'refused: its id is not a job id' };
    }
    const settings = options.repoSettings(job.repo);
    if (!settings) return { exit: null, reason: 'the repository is no longer in the config' };
    const runAs = await accountFor(job, settings, options);
    const env = options.env ?? process.env;
    const jobEnv = {
      ...passedSecrets(settings, env),
      PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: runAs.home,
      LANG: env.LANG ?? 'C.UTF-8',
    };
    // Through sudo the build's environment is sudo's to decide: only a job run directly is judged.
    if (options.upToDate && runAs.prefix.length === 0) {
      const answer = await options
        .upToDate(job, {
          env: jobEnv,
          ...runAs.ids,
          run: ([file, ...args], command) => runQuietly(spawner, { file, args, ...command, ...runAs.ids }),
        })
        .catch((error) => ({ upToDate: false, reason: `could not tell: ${messageOf(error)}` }));
      if (answer.upToDate) return { exit: 0, reason: answer.reason };
      options.log.debug(`job builds: ${answer.reason}`, { job: job.id, repo: job.repo });
    }
    const dir = path.join(options.jobsDir, job.id);
    const statusFile = await prepareJobDir(dir, job);
    await prepareAccount(job, settings, runAs, dir, options);
    const url = settings.url ? undefined : (job.cloneUrl ?? undefined);
    const argv = [...runAs.prefix, ...options.commands[job.kind], ...jobArguments(job, options.configFile, { url })];
    const outputFile = path.join(dir, 'output.log');
    // Started off this thread (lib/jobs/process/spawner.ts); the output file is opened by the starter.
    const child = await spawner.start({
      file: '/bin/sh',
      args: ['-c', WRAPPER, 'shipkit-job', statusFile, ...argv],
      cwd: options.dataDir,
      env: jobEnv,
      ...runAs.ids,
      output: outputFile,
      header: `# ${new Date().toISOString()} job ${job.id} attempt ${job.attempts}: ${argv.join(' ')}\n`,
    });
    if (child.pid) hooks.onSpawn(child.pid);
    const watch = watchJob(child.pid, job, settings.timeout, outputFile, options);
    const result = await child.exited;
    const stopReason = await watch.settle(result);
    await trimOutput(outputFile, options.keptOutputBytes ?? 8 * 1024 * 1024).catch((error) =>
      options.log.warn('could not trim job output', { job: job.id, error: messageOf(error) }),
    );
    return outcomeOf(result, stopReason, statusFile);
  };
}

/** DATA/jobs/ID, without the status file of an earlier run of this attempt; gives that file's path. */
async function prepareJobDir(dir: string, job: Job): Promise<string> {
  await ensureDir(dir, 0o755);
  const statusFile = path.join(dir, `status-${job.attempts}`);
  // unlink, not rm({ force }): rm walks the path (lstat, rimraf) on every job start.
  await unlink(statusFile).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  return statusFile;
}

interface RunAs {
  home: string;
  prefix: string[];
  ids: { uid?: number; gid?: number };
  account?: UnixAccount;
}

/** Who the job runs as: the repo's `user:` (uid/gid as root, `sudo` otherwise) or this process's user. */
async function accountFor(job: Job, settings: RepoSettings, options: ProcessRunnerOptions): Promise<RunAs> {
  const home = (options.env ?? process.env).HOME ?? '/';
  if (!settings.user) return { home, prefix: [], ids: {} };
  const account = await lookupUser(settings.user, { where: `the config of ${job.repo}` });
  const me = process.getuid?.();
  if (me === 0) return { home: account.home, prefix: [], ids: { uid: account.uid, gid: account.gid }, account };
  const prefix = me === account.uid ? [] : ['sudo', '-n', '-H', '-u', settings.user, '--'];
  return { home: account.home, prefix, ids: {} };
}

/** As root, the job's folder and the repo's folders (and first clone) are handed to its user. */
async function prepareAccount(
  job: Job,
  settings: RepoSettings,
  runAs: RunAs,
  dir: string,
  options: ProcessRunnerOptions,
): Promise<void> {
  if (!runAs.account || runAs.ids.uid === undefined) return;
  await chown(dir, runAs.account.uid, runAs.account.gid);
  await options.prepareUserDirs?.(job, runAs.account, settings.url ?? job.cloneUrl ?? undefined);
}

/**
 * The repo's timeout and the output cap on a running job: either ends its process group.
 * `settle` (once it exited) stops watching, waits for the group and gives the reason it was ended.
 */
function watchJob(
  pgid: number | undefined,
  job: Job,
  timeout: number,
  outputFile: string,
  options: ProcessRunnerOptions,
) {
  const { log } = options;
  const killGraceMs = options.killGraceMs ?? 5_000;
  const maxOutputBytes = options.maxOutputBytes ?? 512 * 1024 * 1024;
  let stopReason: string | undefined;
  let stopping: Promise<unknown> | undefined;
  const end = (reason: string) => {
    if (stopReason) return;
    stopReason = reason;
    log.warn(`job ${reason}; ending its process group`, { job: job.id, repo: job.repo });
    stopping = endProcessGroup(pgid, { graceMs: killGraceMs });
  };
  const timeoutTimer = setTimeout(() => end(`timed out after ${timeout} s`), timeout * 1000);
  let sizeUnknown = false; // said once, not every second
  const outputWatch = setInterval(() => {
    stat(outputFile).then(
      (info) => {
        if (info.size > maxOutputBytes) end(`printed more than ${maxOutputBytes} bytes`);
      },
      (error: NodeJS.ErrnoException) => {
        if (!sizeUnknown)
          log.warn(
            `cannot check the size of ${outputFile} (${error.code ?? error.message}); the output cap is not enforced`,
            { job: job.id },
          );
        sizeUnknown = true;
      },
    );
  }, 1000);
  return {
    async settle(result: JobExit): Promise<string | undefined> {
      clearTimeout(timeoutTimer);
      clearInterval(outputWatch);
      // The group gets its grace before SIGKILL: the build under the wrapper may still write its
      // "interrupted" line and trailer (and a wrapper killed by a signal leaves it running).
      if (stopping) await stopping;
      else if (result.signal) await waitForGroupExit(pgid, killGraceMs);
      // Whatever the job left running in its group goes with it.
      signalGroup(pgid, 'SIGKILL');
      return stopReason;
    },
  };
}

/** The attempt's outcome from how its process ended (and, when its starter was lost, its status file). */
async function outcomeOf(result: JobExit, stopReason: string | undefined, statusFile: string): Promise<RunOutcome> {
  if (result.error) return { exit: null, reason: `could not start the job: ${result.error.message}` };
  if (result.lost) {
    // The helper that started it died: only the wrapper's status file knows how it ended.
    const status = await readStatus(statusFile);
    if (status) return { exit: status.code, reason: status.code === 0 ? undefined : `exited with ${status.code}` };
    return { exit: null, reason: stopReason ?? 'its end was not recorded (the process that started it stopped)' };
  }
  if (stopReason) return { exit: result.code, reason: stopReason };
  if (result.signal) return { exit: null, reason: `killed by ${result.signal}` };
  return { exit: result.code, reason: result.code === 0 ? undefined : `exited with ${result.code}` };
}

/** Keep a finished job's output within `keep` bytes: its first 64 KB and its last bytes, with a mark between. */
export async function trimOutput(file: string, keep: number): Promise<void> {
  const size = (await stat(file)).size;
  if (size <= keep) return;
  const headBytes = Math.min(64 * 1024, Math.floor(keep / 4));
  const tailBytes = keep - headBytes;
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(headBytes);
    const tail = Buffer.alloc(tailBytes);
    await handle.read(head, 0, headBytes, 0);
    await handle.read(tail, 0, tailBytes, size - tailBytes);
    const mark = Buffer.from(`\n[... ${size - headBytes - tailBytes} bytes of output cut by hook-server ...]\n`);
    await atomicWriteFile(file, Buffer.concat([head, mark, tail]), { mode: 0o640 });
  } finally {
    await handle.close();
  }
}

/**
 * End the process group of an attempt left behind by a previous hook-server process. Only a
 * group whose leader is still our wrapper for this very job is touched (pids are reused).
 */
export async function killOrphanGroup(job: Job, jobsDir: string, { graceMs = 2_000 } = {}): Promise<boolean> {
  if (!isStoredJobId(job.id)) return false;
  const cmdline = job.pgid ? await readFile(`/proc/${job.pgid}/cmdline`, 'utf8').catch(() => '') : '';
  let groups = cmdline.includes(path.join(jobsDir, job.id)) ? [job.pgid!] : [];
  // Killed between starting the attempt and recording its group: found by its wrapper's command line.
  if (groups.length === 0)
    groups = [...(await jobWrappers(jobsDir))].filter(([, id]) => id === job.id).map(([pgid]) => pgid);
  await Promise.all(groups.map((pgid) => endProcessGroup(pgid, { graceMs })));
  return groups.length > 0;
}
