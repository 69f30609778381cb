// Runs the app: `app.exec` through /bin/sh in its own process group under the instance wrapper,
// cwd its release folder, output to a rotated .launchfit/app.log; with `forever`, restarted with
// capped backoff, given up after repeated rapid failures.
// The whole story: docs/internals.md.
import { backoffMs } from '../../core/retry.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { rm, writeFile, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { bootId, isGroupAlive, processStartTime, signalGroup, waitForGroupExit } from '../../core/process-group.ts';
import { readProcFile } from '../../core/procfs.ts';
import { appEnvironment, isAppOf, spawnIdentity, type AppAccount } from '../deploy-folder/app-env.ts';
import {
  AdoptedInstance,
  APP_PID_LINE,
  endInstance,
  endStrays,
  instanceCommand,
  killInstance,
  type LeftInstance,
} from './instance.ts';
import { lowerRaised, setInstancePriority, type RaisedThreads } from './priority.ts';
import { Probation, type StartCheck } from './probation.ts';

export interface SupervisorOptions {
  exec: string;
  cwd: string;
  env: Record<string, string>;
  /** Marks our processes so a leftover group can be recognised after a crash. */
  dir: string;
  kill: string;
  killTimeoutMs: number;
  forever: boolean;
  backoffMaxMs: number;
  stableAfterMs: number;
  maxRestarts: number;
  appLog: string;
  logMaxBytes: number;
  logKeep: number;
  pidFile: string;
  log: Logger;
  /** Where the app's output is echoed (launchfit's stderr by default). */
  echo?: NodeJS.WritableStream;
  /** Listening sockets handed over as fds 3…, with their LISTEN_FDNAMES names. */
  sockets?: Array<{ fd: number; name: string }>;
  /** An app.log already open (two instances overlapping during an update share one). */
  output?: RotatingLog;
  /** app.user: the app (and the kill command) run as this account. */
  account?: AppAccount;
  /** launchfit's own secret variables, not passed to the app (app-env.ts secretVariables). */
  withheld?: string[];
  /**
   * Told of every exit after a start (a crash), with how long that run lasted, and whether
   * `forever` restarts it.
   */
  onCrash?(uptimeMs: number, restarting: boolean): void;
}

/**
 * The instances this launchfit adopted from a killed one (their wrappers' pids): not below
 * launchfit, yet supervised, so never taken for an escaped app.
 */
const adoptedGroups = new Set<number>();

/** The app's own pid in LISTEN_PID, as systemd sets it after fork: the shell's pid is the app's once it execs. */
const LISTEN_PID_PREFIX = 'LISTEN_PID=$$; export LISTEN_PID; ';
const TAIL_LINES = 20;

export type AppState = 'stopped' | 'running' | 'backoff' | 'failed' | 'exited';

export interface AppInfo {
  state: AppState;
  pid?: number;
  startedAt?: string;
  restarts: number;
  lastExit?: { code: number | null; signal: string | null; at: string };
  /** The last lines of its output (for the log and `status` after a failed switch). */
  tail: string[];
}

export interface Supervisor {
  /**
   * Start the app; resolves `false` if it exits within `probationMs` (then it is not restarted),
   * or, given `check`, if check (handed the exit of this process) resolves false.
   */
  start(probationMs?: number, check?: (exited: Promise<void>) => Promise<boolean>): Promise<boolean>;
  /** Supervise an instance a killed launchfit left running, as if this one had started it. */
  adopt(instance: LeftInstance): void;
  /** Whether the process started last has exited, or does within `ms`. */
  exitedWithin(ms: number): Promise<boolean>;
  stop(): Promise<void>;
  /** Stop the running process as a crash would end it: `forever` restarts it. */
  restart(): Promise<void>;
  info(): AppInfo;
  setOptions(change: Partial<SupervisorOptions>): void;
  /** The running instance `boost` above launchfit's own CPU priority, or (0) back to it (priority.ts). */
  setPriority(boost: number): void;
}

/** An append-only log file that rotates to .1, .2, … when it grows past `maxBytes`. */
export interface RotatingLog {
  write(chunk: Buffer): void;
  close(): void;
}

export function createRotatingLog(file: string, maxBytes: number, keep: number): RotatingLog {
  let fd = openSync(file, 'a', 0o600);
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    /* new */
  }
  const rotate = () => {
    closeSync(fd);
    for (let i = keep; i >= 1; i--) {
      const from = i === 1 ? file : `${file}.${i - 1}`;
      try {
        if (i === keep) rmSync(`${file}.${keep}`, { force: true });
        renameSync(from, `${file}.${i}`);
      } catch {
        /* missing generation */
      }
    }
    if (keep === 0) rmSync(file, { force: true });
    fd = openSync(file, 'a', 0o600);
    size = 0;
  };
  return {
    write(chunk: Buffer) {
      if (size + chunk.length > maxBytes && size > 0) rotate();
      writeSync(fd, chunk);
      size += chunk.length;
    },
    close() {
      try {
        closeSync(fd);
      } catch {
        /* closed */
      }
    },
  };
}

const SHELL_WORDS = new Set([
  'exit',
  'cd',
  'export',
  'set',
  'unset',
  'if',
  'for',
  'while',
  'until',
  'case',
  '.',
  'source',
  'eval',
  'exec',
  'trap',
  'ulimit',
  'umask',
  'wait',
  'read',
  'shift',
  'return',
  'test',
  '[',
  ':',
  'alias',
  'command',
  'readonly',
  'local',
  '{',
  '!',
]);

/**
 * `exec` a simple command so the app itself leads its group and gets signals directly. Compound
 * commands, shell builtins and `VAR=value cmd` are left to the shell as written.
 */
export function shellCommand(exec: string): string {
  const first = exec.trim().split(/\s+/)[0] ?? '';
  if (/[;&|\n()`]/.test(exec) || SHELL_WORDS.has(first) || first.includes('=')) return exec;
  return `exec ${exec}`;
}

/**
 * Stop a process group left by a launchfit that was killed: only if its leader still carries
 * the deploy folder's mark in its environment (so a reused pid is never touched).
 */
export async function stopLeftoverApp(
  pidFile: string,
  dir: string,
  killTimeoutMs: number,
  log: Logger,
): Promise<boolean> {
  let pgid: number;
  try {
    pgid = (JSON.parse(await readFile(pidFile, 'utf8')) as { pgid: number }).pgid;
  } catch {
    return false;
  }
  const ours = (() => {
    try {
      return isAppOf(readProcFile(`/proc/${pgid}/environ`).split('\0'), dir);
    } catch {
      return false;
    }
  })();
  if (ours && isGroupAlive(pgid)) {
    log.warn('stopping the app left running by a previous launchfit', { pid: pgid });
    const end = await endInstance(pgid, killTimeoutMs);
    if (end === 'survived')
      log.error('the app left by a previous launchfit did not stop even after SIGKILL', { pid: pgid });
  }
  await rm(pidFile, { force: true });
  return ours;
}

/** The app's process and its restarts; `createSupervisor` is the way in. */
export class AppSupervisor implements Supervisor {
  private opts: SupervisorOptions;
  private child: ChildProcess | undefined;
  /** The app's own pid (its process group), as the instance wrapper reports it. */
  private appPid: number | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private rapidFailures = 0;
  private readonly app: AppInfo = { state: 'stopped', restarts: 0, tail: [] };
  private readonly appLog: RotatingLog;
  /** The output's last line while it has no line break yet. */
  private partial = '';
  /** Whether the running instance is under the wrapper (instance.ts). */
  private wrapped = false;
  /** The threads raised for a check, set back even if they escape the instance (priority.ts). */
  private readonly raised: RaisedThreads = new Map();

  constructor(initial: SupervisorOptions) {
    this.opts = initial;
    this.appLog = initial.output ?? createRotatingLog(initial.appLog, initial.logMaxBytes, initial.logKeep);
  }

  async start(probationMs = 0, check?: StartCheck): Promise<boolean> {
    this.stopping = false;
    this.rapidFailures = 0;
    if (this.child) return true;
    // Waiting to restart after a crash: start now, and only once.
    this.cancelRestart();
    this.app.tail = [];
    this.partial = '';
    return this.launch(probationMs, check);
  }

  adopt(instance: LeftInstance): void {
    const proc = new AdoptedInstance(instance) as unknown as ChildProcess;
    adoptedGroups.add(instance.pgid);
    this.wrapped = true;
    this.stopping = false;
    this.child = proc;
    this.appPid = instance.pid;
    Object.assign(this.app, { state: 'running', pid: instance.pid, startedAt: instance.startedAt, tail: [] });
    this.writePidFile(instance.pgid, instance.startedAt, instance.pid);
    this.opts.log.info('adopted the app a previous launchfit left running; its output goes to the app log only', {
      pid: instance.pid,
    });
    void this.follow(proc, 0);
  }

  exitedWithin(ms: number): Promise<boolean> {
    return Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
  }

  async restart(): Promise<void> {
    if (!this.child || this.stopping) return;
    await this.stopChild();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.cancelRestart();
    await this.stopChild();
    this.app.state = 'stopped';
    await rm(this.opts.pidFile, { force: true });
  }

  info(): AppInfo {
    return { ...this.app, tail: [...this.app.tail] };
  }

  setOptions(change: Partial<SupervisorOptions>): void {
    this.opts = { ...this.opts, ...change };
  }

  setPriority(boost: number): void {
    if (this.child?.pid === undefined) return;
    const failed = setInstancePriority(this.child.pid, boost, { raised: this.raised });
    if (failed)
      this.opts.log.warn(`could not set the CPU priority of ${failed} threads of the app`, {
        pid: this.app.pid,
        boost,
      });
  }

  private cancelRestart(): void {
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
  }

  private keepTail(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop()!.slice(-1000);
    this.app.tail.push(...lines.map((l) => l.slice(0, 1000)));
    if (this.app.tail.length > TAIL_LINES) this.app.tail.splice(0, this.app.tail.length - TAIL_LINES);
  }

  private spawnApp(): ChildProcess {
    const { opts } = this;
    const sockets = opts.sockets ?? [];
    const listen = sockets.length
      ? { LISTEN_FDS: String(sockets.length), LISTEN_FDNAMES: sockets.map((s) => s.name).join(':') }
      : {};
    const shell = ['/bin/sh', '-c', `${sockets.length ? LISTEN_PID_PREFIX : ''}${shellCommand(opts.exec)}`];
    // The wrapper stays launchfit's user; app.user applies to the app it forks (instance.ts).
    const as = opts.account && opts.account.uid !== process.getuid?.() ? opts.account : undefined;
    const [file, ...args] = instanceCommand(shell, { graceMs: opts.killTimeoutMs, log: opts.appLog, as });
    const wrapped = file !== shell[0];
    this.wrapped = wrapped;
    const proc = spawn(file, args, {
      cwd: opts.cwd,
      env: appEnvironment({
        inherited: process.env,
        env: opts.env,
        extra: listen,
        dir: opts.dir,
        account: opts.account,
        withheld: opts.withheld,
      }),
      ...(wrapped ? {} : spawnIdentity(opts.account)),
      detached: true, // own process group, so the whole tree can be signalled
      stdio: ['ignore', 'pipe', 'pipe', ...sockets.map((s) => s.fd)],
    });
    const echo = opts.echo ?? process.stderr;
    const out = (chunk: Buffer) => {
      this.appLog.write(chunk);
      echo.write(chunk);
      this.keepTail(chunk);
    };
    proc.stdout!.on('data', out);
    proc.stderr!.on('data', (chunk: Buffer) => out(this.takeAppPid(proc, chunk)));
    this.app.state = 'running';
    this.app.pid = proc.pid;
    this.appPid = wrapped ? undefined : proc.pid;
    this.app.startedAt = new Date().toISOString();
    if (proc.pid) this.writePidFile(proc.pid, this.app.startedAt);
    opts.log.info(`app started: release ${releaseName(opts.cwd)}`, { pid: proc.pid });
    if (!wrapped)
      opts.log.warn(
        'perl was not found: the app runs without the instance wrapper, so processes that leave its process group are not stopped with it',
      );
    return proc;
  }

  /** The wrapper's line naming the app's pid, taken out of its output: `status` shows the app's pid. */
  private takeAppPid(proc: ChildProcess, chunk: Buffer): Buffer {
    if (this.appPid !== undefined || this.child !== proc) return chunk;
    const text = chunk.toString('latin1');
    const found = APP_PID_LINE.exec(text);
    if (!found) return chunk;
    this.appPid = Number(found[1]);
    this.app.pid = this.appPid;
    this.writePidFile(proc.pid!, this.app.startedAt!, this.appPid);
    return Buffer.from(text.slice(0, found.index) + text.slice(found.index + found[0].length + 1), 'latin1');
  }

  /** pgid: the instance's process (the wrapper, or the app itself without one), which a later launchfit stops. */
  private writePidFile(pgid: number, startedAt: string, pid = pgid): void {
    // Without it, a launchfit killed later cannot find this app to stop it: say so. With the
    // instance's start time and the boot id, a later launchfit can tell it from a reused pid.
    const record = { pid, pgid, startedAt, start: processStartTime(pgid), boot: bootId() };
    void writeFile(this.opts.pidFile, JSON.stringify(record), { mode: 0o600 }).catch((error: NodeJS.ErrnoException) =>
      this.opts.log.warn(
        `could not record the app's pid in ${this.opts.pidFile} (${error.code ?? error.message}); a ` +
          `leftover app will not be stopped after a crash`,
      ),
    );
  }

  private launch(probationMs: number, check?: StartCheck): Promise<boolean> {
    const proc = this.spawnApp();
    this.child = proc;
    return this.follow(proc, probationMs, check);
  }

  /** Its exit, restarts and probation. */
  private follow(proc: ChildProcess, probationMs: number, check?: StartCheck): Promise<boolean> {
    const started = Date.now();
    let probation!: Probation;
    const exited = new Promise<void>((resolve) => {
      proc.on('error', (error) => this.opts.log.error(`app could not be started: ${error.message}`));
      proc.on('exit', async (code, signal) => {
        await this.endEscaped(proc);
        const uptime = Date.now() - started;
        this.app.lastExit = { code, signal, at: new Date().toISOString() };
        this.app.pid = undefined;
        if (this.child === proc) {
          this.child = undefined;
          this.appPid = undefined;
        }
        resolve();
        this.afterExit(uptime, code, signal, probation);
      });
    });
    this.exited = exited;
    probation = new Probation(probationMs, check, exited);
    return probation.passed;
  }

  /**
   * After an instance's wrapper is gone: whatever still carries the folder's mark outside what
   * launchfit supervises escaped it (the app killed its wrapper) and is ended, and threads raised
   * for a check are set back, so no app keeps serving unsupervised or holds the next one's port.
   */
  private async endEscaped(proc: ChildProcess): Promise<void> {
    if (proc.pid === undefined || !this.wrapped) return;
    adoptedGroups.delete(proc.pid);
    lowerRaised(this.raised);
    try {
      const ended = await endStrays(this.opts.dir, [process.pid, ...adoptedGroups], this.opts.killTimeoutMs);
      if (ended.length)
        this.opts.log.warn(
          `ended ${ended.length} processes of the app that had escaped its instance (its wrapper was killed)`,
          { pids: ended.join(',') },
        );
    } catch (error) {
      this.opts.log.error(`could not look for processes that escaped the app's instance: ${messageOf(error)}`);
    }
  }

  private afterExit(uptime: number, code: number | null, signal: NodeJS.Signals | null, probation: Probation): void {
    if (this.stopping) {
      this.app.state = 'stopped';
      return;
    }
    this.opts.log.warn('app exited', { code, signal, uptimeMs: uptime });
    if (probation.pending()) {
      this.app.state = 'exited';
      probation.fail();
      return;
    }
    if (!this.opts.forever) {
      this.app.state = 'exited';
      this.opts.onCrash?.(uptime, false);
      return;
    }
    this.scheduleRestart(uptime);
    this.opts.onCrash?.(uptime, true);
  }

  private scheduleRestart(uptime: number): void {
    const { opts } = this;
    if (uptime >= opts.stableAfterMs) this.rapidFailures = 0;
    this.rapidFailures++;
    if (this.rapidFailures > opts.maxRestarts) {
      this.app.state = 'failed';
      opts.log.error(
        `app failed ${this.rapidFailures} times in a row without staying up ${opts.stableAfterMs / 1000} ` +
          `s; giving up. Fix it and run \`launchfit update\` or restart launchfit.`,
      );
      return;
    }
    const delay = backoffMs(this.rapidFailures, { baseMs: 250, maxMs: opts.backoffMaxMs });
    this.app.state = 'backoff';
    opts.log.info('restarting app', { inMs: delay, attempt: this.rapidFailures });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.app.restarts++;
      void this.launch(0);
    }, delay);
  }

  private async stopChild(): Promise<void> {
    const proc = this.child;
    if (!proc || proc.pid === undefined) return;
    const pgid = proc.pid;
    const deadline = Date.now() + this.opts.killTimeoutMs;
    // The app's group (the wrapper, told of the app's exit, ends what is left); before the
    // wrapper named the app, the wrapper, which passes the signal on.
    this.askToStop(this.appPid ?? pgid);
    const leaderGone = await Promise.race([
      this.exited.then(() => true),
      sleep(Math.max(0, deadline - Date.now())).then(() => false),
    ]);
    if (!leaderGone) {
      this.opts.log.warn(
        `app did not stop within ${this.opts.killTimeoutMs / 1000} s; killing its process group and every process below it`,
        { pid: this.appPid ?? pgid },
      );
      killInstance(pgid);
      await this.exited;
    }
    // Children that outlive the leader get the rest of the timeout, then SIGKILL.
    if (!(await waitForGroupExit(pgid, deadline - Date.now()))) {
      this.opts.log.warn(
        `processes of the app did not stop within ${this.opts.killTimeoutMs / 1000} s; killing its process group`,
        { pid: pgid },
      );
      signalGroup(pgid, 'SIGKILL');
      if (!(await waitForGroupExit(pgid, 5000)))
        this.opts.log.error('processes of the app did not stop even after SIGKILL', { pid: pgid });
    }
  }

  /** `app.kill`: a signal to the group, or a command. */
  private askToStop(pgid: number): void {
    const { opts } = this;
    if (/^SIG[A-Z0-9]+$/.test(opts.kill)) {
      signalGroup(pgid, opts.kill as NodeJS.Signals);
      return;
    }
    // A graceful-stop command (e.g. `./bin/stop`), given the app's pid as $LAUNCHFIT_APP_PID.
    const env = appEnvironment({
      inherited: process.env,
      env: opts.env,
      extra: { LAUNCHFIT_APP_PID: String(pgid) },
      dir: opts.dir,
      account: opts.account,
      withheld: opts.withheld,
    });
    const cmd = spawn('/bin/sh', ['-c', opts.kill], {
      cwd: opts.cwd,
      env,
      stdio: 'ignore',
      ...spawnIdentity(opts.account),
    });
    cmd.on('error', (error) =>
      opts.log.error(`the kill command \`${opts.kill}\` could not be started: ${error.message}`),
    );
    const killer = setTimeout(() => cmd.kill('SIGKILL'), opts.killTimeoutMs);
    cmd.on('close', () => clearTimeout(killer));
  }
}

export function createSupervisor(initial: SupervisorOptions): Supervisor {
  return new AppSupervisor(initial);
}

/** The release a start runs (the folder `current` points to), for the log; the path if it cannot be read. */
function releaseName(cwd: string): string {
  try {
    return path.basename(realpathSync(cwd));
  } catch {
    return cwd;
  }
}
