// Running one attempt of a hook-server job as a child process: `build`/`release` detached in its
// own process group, a clean environment, the repo's Unix user (uid/gid as root, `sudo -n -H -u`
// otherwise), the repo's timeout for the whole group, output to DATA/jobs/ID/output.log (bounded
// while it runs, trimmed once it ends), and the exit code written to a status file by a tiny sh
// wrapper, so that a run which ends while hook-server is down is still known on restart.
// The scheduling around it (concurrency, per-repo order, the journal) lives in lib/jobs/job-queue.ts.
import { chown, open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import { secretEnvNames, type BuildEnvEntry } from '../../config/build-env.ts';
import { lookupUser, type UnixAccount } from '../../core/unix-user.ts';
import { endProcessGroup, signalGroup, waitForGroupExit } from '../../core/process-group.ts';
import type { JobRunner } from '../job-queue.ts';
import { readStatus } from './status.ts';
import { createSpawner, type Spawner } from './spawner.ts';
import type { Job } from '../job.ts';
import type { Logger } from '../../core/log.ts';
import { messageOf } from '../../core/errors.ts';

// Fixed text: the status file and the command come in as positional parameters, never spliced in.
// Shell builtins only (no mv: a PATH of node, git and bash is enough). The code and its newline
// go out in one small write; the reader (local/recovery.ts) takes only a whole line, so a file
// caught empty or cut short counts as no status, as a missing one does.
const WRAPPER = 's=$1; shift; "$@"; c=$?; printf \'%s\\n\' "$c" > "$s"; exit "$c"';

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
}

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
  // The payload's clone URL is used only when the config names none (DESIGN: url default).
  if (url) args.push('--url', url);
  return args;
}

export function createProcessRunner(options: ProcessRunnerOptions): JobRunner {
  const { jobsDir, log } = options;
  const env = options.env ?? process.env;
  const killGraceMs = options.killGraceMs ?? 5_000;
  const maxOutputBytes = options.maxOutputBytes ?? 512 * 1024 * 1024;
  const keptOutputBytes = options.keptOutputBytes ?? 8 * 1024 * 1024;
  const spawner = options.spawner ?? createSpawner();
  return async (job, hooks) => {
    const settings = options.repoSettings(job.repo);
    if (!settings) return { exit: null, reason: 'the repository is no longer in the config' };
    const dir = path.join(jobsDir, job.id);
    await ensureDir(dir, 0o755);
    const statusFile = path.join(dir, `status-${job.attempts}`);
    // unlink, not rm({ force }): rm walks the path (lstat, rimraf) on every job start.
    await unlink(statusFile).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    let home = env.HOME ?? '/';
    let prefix: string[] = [];
    let ids: { uid?: number; gid?: number } = {};
    if (settings.user) {
      const account = await lookupUser(settings.user, { where: `the config of ${job.repo}` });
      home = account.home;
      const me = process.getuid?.();
      if (me === 0) {
        ids = { uid: account.uid, gid: account.gid };
        await chown(dir, account.uid, account.gid);
        await options.prepareUserDirs?.(job, account, settings.url ?? job.cloneUrl ?? undefined);
      } else if (me !== account.uid) {
        prefix = ['sudo', '-n', '-H', '-u', settings.user, '--'];
      }
    }
    const url = settings.url ? undefined : (job.cloneUrl ?? undefined);
    const argv = [...prefix, ...options.commands[job.kind], ...jobArguments(job, options.configFile, { url })];
    const outputFile = path.join(dir, 'output.log');
    // Started off this thread (lib/jobs/process/spawner.ts); the output file is opened by the starter.
    const child = await spawner.start({
      file: '/bin/sh',
      args: ['-c', WRAPPER, 'shipkit-job', statusFile, ...argv],
      cwd: options.dataDir,
      env: {
        ...passedSecrets(settings, env),
        PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: home,
        LANG: env.LANG ?? 'C.UTF-8',
      },
      ...ids,
      output: outputFile,
      header: `# ${new Date().toISOString()} job ${job.id} attempt ${job.attempts}: ${argv.join(' ')}\n`,
    });
    if (child.pid) hooks.onSpawn(child.pid);
    let stopReason: string | undefined;
    let stopping: Promise<unknown> | undefined;
    const end = (reason: string) => {
      if (stopReason) return;
      stopReason = reason;
      log.warn(`job ${reason}; ending its process group`, { job: job.id, repo: job.repo });
      stopping = endProcessGroup(child.pid, { graceMs: killGraceMs });
    };
    const timeoutTimer = setTimeout(() => end(`timed out after ${settings.timeout} s`), settings.timeout * 1000);
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
    const result = await child.exited;
    clearTimeout(timeoutTimer);
    clearInterval(outputWatch);
    // The sh wrapper dies at once on SIGTERM (ours, or hook-server's shutdown ending the group)
    // while the build under it still writes its "interrupted" line and trailer: the group gets its
    // grace before SIGKILL.
    if (stopping) await stopping;
    else if (result.signal) await waitForGroupExit(child.pid, killGraceMs);
    // Whatever the job left running in its group goes with it.
    signalGroup(child.pid, 'SIGKILL');
    await trimOutput(outputFile, keptOutputBytes).catch((error) =>
      log.warn('could not trim job output', { job: job.id, error: messageOf(error) }),
    );
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
  };
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
  if (!job.pgid) return false;
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${job.pgid}/cmdline`, 'utf8');
  } catch {
    return false;
  }
  if (!cmdline.includes(path.join(jobsDir, job.id))) return false;
  await endProcessGroup(job.pgid, { graceMs });
  return true;
}
