// The job queue: global concurrency, never two jobs of one repo at once, queued pushes to a
// branch superseded by a newer push, a delivery deduped while its job is queued or running.
// Every state change goes through the journal; on start, jobs that were running when the
// process died are settled from their status file or marked interrupted and queued once more.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { $ } from 'zx';
import { ConfigError } from './errors.ts';
import { atomicWriteFile, ensureDir } from './fsx.ts';
import type { Logger } from './log.ts';
import { FINISHED_STATES, newJobId, type Job, type JobKind, type Journal } from './journal.ts';

export interface NewJob {
  repo: string;
  kind: JobKind;
  sha?: string;
  ref?: string;
  branch?: string;
  tag?: string;
  cloneUrl?: string;
  deliveryId?: string;
  forge?: string;
}

export interface RunOutcome {
  exit: number | null;
  reason?: string;
}

export interface JobHooks {
  /** The attempt's process group, recorded so a crash can be cleaned up after. */
  onSpawn(pgid: number): void;
}

/** Runs one attempt of a job (createProcessRunner below, or a stand-in in tests) and settles with its outcome. */
export type JobRunner = (job: Job, hooks: JobHooks) => Promise<RunOutcome>;

export interface QueueOptions {
  journal: Journal;
  concurrency: number;
  run: JobRunner;
  log: Logger;
  now?: () => Date;
  /** A job interrupted this many times is left `interrupted` instead of queued again. */
  maxInterruptions?: number;
  /** Where attempt status files live (`DIR/ID/status-N`), read on recovery. */
  jobsDir: string;
}

export interface EnqueueResult {
  job: Job;
  duplicate: boolean;
}

export const ACTIVE_STATES = ['queued', 'running'] as const;

export function createJobQueue(options: QueueOptions) {
  const { journal, run, log, jobsDir } = options;
  const now = options.now ?? (() => new Date());
  const maxInterruptions = options.maxInterruptions ?? 5;
  let concurrency = options.concurrency;
  const running = new Map<string, Promise<void>>(); // job id → its run
  const busyRepos = new Set<string>();
  const notDurable = new Set<string>(); // accepted, fsync pending: not to be started yet
  let accepting = true;
  let paused = true;
  let seq = journal.lastSeq;
  const idle: Array<() => void> = [];
  // Queued and running jobs, so that a request does not walk the whole (finished) history.
  const active = new Map<string, Job>();
  function refreshActive() {
    active.clear();
    for (const job of journal.jobs.values()) if (job.state === 'queued' || job.state === 'running') active.set(job.id, job);
  }
  refreshActive();

  function activeByDelivery(deliveryId: string): Job | undefined {
    for (const job of active.values()) if (job.deliveryId === deliveryId) return job;
    return undefined;
  }

  async function enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!accepting) throw new Error('the queue is shutting down');
    if (input.deliveryId) {
      const existing = activeByDelivery(input.deliveryId);
      if (existing) return { job: existing, duplicate: true };
    }
    const at = now().toISOString();
    const job: Job = {
      id: newJobId(now()), seq: ++seq, repo: input.repo, kind: input.kind,
      sha: input.sha ?? null, ref: input.ref ?? null, branch: input.branch ?? null, tag: input.tag ?? null,
      cloneUrl: input.cloneUrl ?? null, deliveryId: input.deliveryId ?? null, forge: input.forge ?? null,
      state: 'queued', exit: null, queued: at, started: null, finished: null, reason: null,
      attempts: 0, interruptions: 0, pgid: null,
    };
    const superseded: Job[] = [];
    if (job.kind === 'build') {
      for (const other of active.values()) {
        if (other.state === 'queued' && other.kind === 'build' && other.repo === job.repo && other.branch === job.branch && !notDurable.has(other.id)) {
          other.state = 'superseded';
          other.finished = at;
          other.reason = `superseded by ${job.id}`;
          superseded.push(other);
        }
      }
    }
    notDurable.add(job.id);
    active.set(job.id, job);
    for (const other of superseded) active.delete(other.id);
    try {
      await journal.write([...superseded, job]);
    } catch (error) {
      journal.jobs.delete(job.id);
      active.delete(job.id);
      for (const other of superseded) {
        Object.assign(other, { state: 'queued', finished: null, reason: null });
        active.set(other.id, other);
      }
      throw error;
    } finally {
      notDurable.delete(job.id);
    }
    for (const other of superseded) log.info('job superseded', { job: other.id, by: job.id, repo: job.repo });
    schedule();
    return { job, duplicate: false };
  }

  function schedule(): void {
    if (paused) return;
    const queued = [...active.values()]
      .filter((j) => j.state === 'queued' && !notDurable.has(j.id))
      .sort((a, b) => a.seq - b.seq);
    for (const job of queued) {
      if (running.size >= concurrency) break;
      if (busyRepos.has(job.repo)) continue;
      start(job);
    }
    if (running.size === 0) for (const fn of idle.splice(0)) fn();
  }

  function start(job: Job): void {
    busyRepos.add(job.repo);
    job.state = 'running';
    job.started = now().toISOString();
    job.attempts += 1;
    job.pgid = null;
    const done = (async () => {
      try {
        // On disk before the process exists: a crash from here on is seen on restart.
        await journal.write([job]);
        log.info('job started', { job: job.id, repo: job.repo, kind: job.kind, attempt: job.attempts });
        let outcome: RunOutcome;
        try {
          outcome = await run(job, {
            onSpawn(pgid) {
              job.pgid = pgid;
              journal.write([job]).catch(() => {});
            },
          });
        } catch (error) {
          outcome = { exit: null, reason: `could not start: ${(error as Error).message}` };
        }
        if (job.state !== 'running') return; // settled elsewhere (shutdown)
        job.state = outcome.exit === 0 ? 'succeeded' : 'failed';
        job.exit = outcome.exit;
        job.reason = outcome.reason ?? null;
        job.finished = now().toISOString();
        job.pgid = null;
        active.delete(job.id);
        await journal.write([job]);
        log.info(`job ${job.state}`, { job: job.id, repo: job.repo, exit: job.exit, reason: job.reason ?? undefined });
      } catch (error) {
        log.error('job bookkeeping failed', { job: job.id, error: (error as Error).message });
      } finally {
        running.delete(job.id);
        busyRepos.delete(job.repo);
        schedule();
      }
    })();
    running.set(job.id, done);
  }

  /**
   * Settle jobs left `running` by a previous process: a status file says how it ended; without
   * one the attempt was cut short, so its process group is ended and the job queued once more.
   */
  async function recover(killGroup: (job: Job) => Promise<void>): Promise<void> {
    const changed: Job[] = [];
    for (const job of journal.jobs.values()) {
      if (job.state !== 'running') continue;
      const statusFile = path.join(jobsDir, job.id, `status-${job.attempts}`);
      const status = await readStatus(statusFile);
      if (status) {
        job.state = status.code === 0 ? 'succeeded' : 'failed';
        job.exit = status.code;
        job.finished = status.time;
        job.reason = 'finished while hook-server was down';
        job.pgid = null;
        changed.push({ ...job });
        log.info(`job ${job.state} while the server was down`, { job: job.id, repo: job.repo, exit: job.exit });
        continue;
      }
      await killGroup(job);
      job.interruptions += 1;
      job.state = 'interrupted';
      job.finished = now().toISOString();
      job.reason = 'hook-server stopped while it ran';
      job.pgid = null;
      changed.push({ ...job });
      if (job.interruptions <= maxInterruptions) {
        job.state = 'queued';
        job.finished = null;
        job.reason = `queued again after interruption ${job.interruptions}`;
        changed.push({ ...job });
        log.warn('job was interrupted; queued once more', { job: job.id, repo: job.repo });
      } else {
        log.warn('job was interrupted too often; left interrupted', { job: job.id, repo: job.repo });
      }
    }
    // Snapshots in order, then the live objects back in the map.
    if (changed.length) {
      const live = changed.map((c) => journal.jobs.get(c.id)!);
      await journal.write(changed);
      for (const job of live) journal.jobs.set(job.id, job);
    }
    refreshActive();
  }

  return {
    enqueue,
    recover,
    /** Begin running queued jobs. */
    resume() {
      paused = false;
      schedule();
    },
    setConcurrency(n: number) {
      concurrency = n;
      schedule();
    },
    get(id: string): Job | undefined {
      return journal.jobs.get(id);
    },
    /** Newest first. */
    list({ limit = 100, repo, state }: { limit?: number; repo?: string; state?: string } = {}): Job[] {
      return [...journal.jobs.values()]
        .filter((j) => (!repo || j.repo === repo) && (!state || j.state === state))
        .sort((a, b) => b.seq - a.seq)
        .slice(0, limit);
    },
    counts() {
      let queued = 0;
      for (const job of active.values()) if (job.state === 'queued') queued++;
      return { queued, running: running.size };
    },
    runningJobs(): Job[] {
      return [...running.keys()].map((id) => journal.jobs.get(id)!).filter(Boolean);
    },
    /**
     * Stop taking and starting jobs; wait for running ones up to `graceMs`. A job still running
     * then is marked interrupted, queued again for the next start, and its process group ended.
     */
    async stop({ graceMs, killGroup }: { graceMs: number; killGroup: (job: Job) => Promise<void> }): Promise<void> {
      accepting = false;
      paused = true;
      const all = Promise.all(running.values());
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs); });
      const outcome = await Promise.race([all.then(() => 'done' as const), late]);
      clearTimeout(timer);
      if (outcome === 'late') {
        const jobs = [...running.keys()].map((id) => journal.jobs.get(id)).filter((j): j is Job => Boolean(j));
        for (const job of jobs) {
          const target: Job = { ...job };
          job.interruptions += 1;
          const interrupted: Job = { ...job, state: 'interrupted', finished: now().toISOString(), reason: 'hook-server stopped while it ran', pgid: null };
          Object.assign(job, { state: 'queued', started: null, reason: `queued again after interruption ${job.interruptions}`, pgid: null });
          await journal.write([interrupted, { ...job }]).catch(() => {});
          journal.jobs.set(job.id, job);
          log.warn('job interrupted by shutdown; it runs again on the next start', { job: job.id, repo: job.repo });
          await killGroup(target);
        }
        await all;
      }
    },
    /** Resolves when nothing runs (tests). */
    whenIdle(): Promise<void> {
      if (running.size === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
    isFinished(job: Job): boolean {
      return FINISHED_STATES.includes(job.state);
    },
  };
}

export type JobQueue = ReturnType<typeof createJobQueue>;

async function readStatus(file: string): Promise<{ code: number; time: string } | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const code = Number(text.trim());
    if (!Number.isInteger(code)) return undefined;
    return { code, time: info.mtime.toISOString() };
  } catch {
    return undefined;
  }
}

/** Remove what a job left under the jobs folder (its output and status files). */
export async function removeJobFiles(jobsDir: string, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => rm(path.join(jobsDir, id), { recursive: true, force: true })));
}

// ---------------------------------------------------------------------------------------------
// Running one attempt as a child process: `build`/`release` detached in its own process group,
// a clean environment, the repo's Unix user, the repo's timeout for the whole group, output to
// DATA/jobs/ID/output.log, and the exit code written to a status file by a tiny sh wrapper, so
// that a run which ends while hook-server is down is still known on restart.

// Fixed text: the status file and the command come in as positional parameters, never spliced in.
const WRAPPER = 's=$1; shift; "$@"; c=$?; printf \'%s\\n\' "$c" > "$s.tmp" && mv -f "$s.tmp" "$s"; exit "$c"';

export interface RepoSettings {
  timeout: number;
  user?: string;
  url?: string;
}

export interface ProcessRunnerOptions {
  dataDir: string;
  jobsDir: string;
  configFile: string;
  commands: { build: string[]; release: string[] };
  repoSettings(repo: string): RepoSettings | undefined;
  /** Where PATH and LANG come from (nothing else is passed on). */
  env?: NodeJS.ProcessEnv;
  /** Between SIGTERM and SIGKILL at a timeout. */
  killGraceMs?: number;
  /** A job whose output passes this is ended (a runaway loop must not fill the disk). */
  maxOutputBytes?: number;
  /** Output kept once a job has ended: the head and the tail around a cut mark. */
  keptOutputBytes?: number;
  log: Logger;
  /** Prepare per-repo folders for a build user (root only); injected so tests can skip it. */
  prepareUserDirs?: (job: Job, account: Account, cloneUrl: string | undefined) => Promise<void>;
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
  return async (job, hooks) => {
    const settings = options.repoSettings(job.repo);
    if (!settings) return { exit: null, reason: 'the repository is no longer in the config' };
    const dir = path.join(jobsDir, job.id);
    await ensureDir(dir, 0o755);
    const statusFile = path.join(dir, `status-${job.attempts}`);
    await rm(statusFile, { force: true });
    let home = env.HOME ?? '/';
    let prefix: string[] = [];
    let ids: { uid?: number; gid?: number } = {};
    if (settings.user) {
      const account = await lookupUser(settings.user);
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
    const url = settings.url ? undefined : job.cloneUrl ?? undefined;
    const argv = [...prefix, ...options.commands[job.kind], ...jobArguments(job, options.configFile, { url })];
    const outputFile = path.join(dir, 'output.log');
    const out = await open(outputFile, 'a', 0o640);
    await out.write(`# ${new Date().toISOString()} job ${job.id} attempt ${job.attempts}: ${argv.join(' ')}\n`);
    const child = spawn('/bin/sh', ['-c', WRAPPER, 'shipkit-job', statusFile, ...argv], {
      cwd: options.dataDir,
      env: { PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: home, LANG: env.LANG ?? 'C.UTF-8' },
      detached: true,
      stdio: ['ignore', out.fd, out.fd],
      ...ids,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
    });
    await out.close();
    if (child.pid) hooks.onSpawn(child.pid);
    let stopReason: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const end = (reason: string) => {
      if (stopReason) return;
      stopReason = reason;
      log.warn(`job ${reason}; ending its process group`, { job: job.id, repo: job.repo });
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), killGraceMs);
    };
    const timeoutTimer = setTimeout(() => end(`timed out after ${settings.timeout} s`), settings.timeout * 1000);
    const outputWatch = setInterval(() => {
      stat(outputFile).then((info) => { if (info.size > maxOutputBytes) end(`printed more than ${maxOutputBytes} bytes`); }, () => {});
    }, 1000);
    const result = await exited;
    clearTimeout(timeoutTimer);
    clearInterval(outputWatch);
    clearTimeout(killTimer);
    // Whatever the job left running in its group goes with it.
    signalGroup(child.pid, 'SIGKILL');
    await trimOutput(outputFile, keptOutputBytes).catch((error) => log.warn('could not trim job output', { job: job.id, error: (error as Error).message }));
    if (result.error) return { exit: null, reason: `could not start the job: ${result.error.message}` };
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

function signalGroup(pgid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pgid) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
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
  signalGroup(job.pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && signalGroup(job.pgid, 0 as unknown as NodeJS.Signals)) await new Promise((r) => setTimeout(r, 50));
  signalGroup(job.pgid, 'SIGKILL');
  return true;
}

/** End the process group of an attempt this process started (shutdown past its grace). */
export async function endGroup(pgid: number | null, graceMs = 2_000): Promise<void> {
  if (!pgid) return;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && signalGroup(pgid, 0 as unknown as NodeJS.Signals)) await new Promise((r) => setTimeout(r, 50));
  signalGroup(pgid, 'SIGKILL');
}

export interface Account { name: string; uid: number; gid: number; home: string }

/** A Unix account from the system's user database (`getent passwd`, so NSS users work too). */
export async function lookupUser(name: string): Promise<Account> {
  const result = await $({ quiet: true, nothrow: true })`getent passwd ${name}`;
  const fields = result.stdout.trim().split(':');
  if (result.exitCode !== 0 || fields.length < 7) {
    throw new ConfigError(`The build user ${name} does not exist on this machine: create it (useradd --system ${name}) or remove user: from the repo's config.`);
  }
  return { name, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/' };
}

declare const SHIPKIT_BUNDLED: boolean | undefined;

/** The command that runs a shipkit script (`build`, `release`) under the runtime we run on. */
export async function scriptCommandFor(name: 'build' | 'release', env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const override = env[`SHIPKIT_${name.toUpperCase()}_COMMAND`];
  if (override) return override.trim().startsWith('[') ? (JSON.parse(override) as string[]) : [override];
  // Bundled (npm run bundle): dist/hook-server.mjs runs dist/build.mjs beside it.
  if (typeof SHIPKIT_BUNDLED !== 'undefined' && SHIPKIT_BUNDLED) return [process.execPath, path.join(import.meta.dirname, `${name}.mjs`)];
  const root = path.resolve(import.meta.dirname, '..');
  const source = path.join(root, 'scripts', `${name}.ts`);
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (existsSync(source)) {
    if (deno) return [deno.execPath(), 'run', '-A', '--quiet', source];
    const loader = path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    return [process.execPath, '--import', loader, source];
  }
  return [process.execPath, path.join(import.meta.dirname, `${name}.mjs`)];
}
