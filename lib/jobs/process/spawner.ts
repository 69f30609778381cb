// Starting job processes off hook-server's thread: under Node a small helper process spawns each
// job (told by a JSON line, answering with its pid and exit), so a fork never stalls deliveries;
// under Deno jobs start in-process.
// The whole story: docs/internals.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isGroupAlive, signalGroup } from '../../core/process-group.ts';

export interface JobSpawn {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** Opened for appending (created 0640): the process's stdout and stderr. */
  output: string;
  /** Written to `output` before the process starts. */
  header: string;
}

export interface JobExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The process could not be started (no pid). */
  error?: Error;
  /** The helper died while the job ran: its end was seen only as its group vanishing (code unknown). */
  lost?: boolean;
}

export interface StartedJob {
  pid: number | undefined;
  exited: Promise<JobExit>;
}

export interface Spawner {
  /** Resolves once the process runs (or failed to start); rejects when the output file could not be written (its `code`, ENOSPC say, kept). */
  start(request: JobSpawn): Promise<StartedJob>;
}

/** The helper, run with `node -e`: CommonJS, Node built-ins only, nothing of shipkit. */
export const HELPER_SOURCE = `'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const failure = (e) => ({ message: String(e && e.message || e), code: e && e.code });
const send = (m) => { try { process.stdout.write(JSON.stringify(m) + '\\n'); } catch {} };
process.stdout.on('error', () => process.exit(0));
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
function start(r) {
  let fd;
  try {
    fd = fs.openSync(r.output, 'a', 0o640);
    fs.writeSync(fd, r.header);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    return send({ id: r.id, open: failure(e) });
  }
  let child;
  try {
    child = spawn(r.file, r.args, { cwd: r.cwd, env: r.env, detached: true, stdio: ['ignore', fd, fd], uid: r.uid, gid: r.gid });
  } catch (e) {
    fs.closeSync(fd);
    return send({ id: r.id, error: failure(e) });
  }
  fs.closeSync(fd);
  let said = false;
  child.once('error', (e) => { if (!said) { said = true; send({ id: r.id, error: failure(e) }); } });
  child.once('exit', (code, signal) => { if (!said) { said = true; send({ id: r.id, code, signal }); } });
  if (child.pid) send({ id: r.id, pid: child.pid });
}
let rest = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (rest + chunk).split('\\n');
  rest = lines.pop();
  for (const line of lines) if (line) start(JSON.parse(line));
});
process.stdin.on('end', () => process.exit(0));
`;

interface Pending {
  started: (job: StartedJob) => void;
  failed: (error: Error) => void;
  exited?: (exit: JobExit) => void;
  pid?: number;
}

interface Answer {
  id: number;
  pid?: number;
  code?: number | null;
  signal?: NodeJS.Signals | null;
  open?: { message: string; code?: string };
  error?: { message: string; code?: string };
}

const withCode = ({ message, code }: { message: string; code?: string }) =>
  Object.assign(new Error(message), code ? { code } : {});

/** Jobs started by a helper process (Node), restarted when it dies. */
class HelperSpawner implements Spawner {
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';

  start(request: JobSpawn): Promise<StartedJob> {
    const helper = this.helper ?? this.startHelper();
    const id = this.nextId++;
    return new Promise<StartedJob>((started, failed) => {
      this.pending.set(id, { started, failed });
      this.hold(true);
      helper.stdin!.write(`${JSON.stringify({ id, ...request })}\n`);
    });
  }

  private startHelper(): ChildProcess {
    // detached: a Ctrl-C meant for hook-server does not reach it; it ends when its stdin does.
    const helper = spawn(process.execPath, ['-e', HELPER_SOURCE], {
      env: {},
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
    });
    this.helper = helper;
    this.buffered = '';
    helper.stdout!.setEncoding('utf8');
    helper.stdout!.on('data', (chunk: string) => this.read(chunk));
    helper.stdin!.on('error', () => {
      /* the helper died: its exit below settles what it held */
    });
    // 'close', not 'exit': its last answers may still be in the pipe when it exits.
    helper.once('error', () => this.lose(helper));
    helper.once('close', () => this.lose(helper));
    return helper;
  }

  /** While jobs are out the helper keeps hook-server's loop alive; idle, it must not. */
  private hold(busy: boolean): void {
    const helper = this.helper;
    if (!helper) return;
    const handles = [helper, helper.stdin, helper.stdout] as Array<{ ref(): void; unref(): void } | null>;
    for (const handle of handles)
      if (busy) handle?.ref();
      else handle?.unref();
  }

  private read(chunk: string): void {
    const lines = (this.buffered + chunk).split('\n');
    this.buffered = lines.pop()!;
    for (const line of lines) if (line) this.answer(JSON.parse(line) as Answer);
  }

  private answer(answer: Answer): void {
    const job = this.pending.get(answer.id);
    if (!job) return;
    if (answer.open) return this.settle(answer.id, () => job.failed(withCode(answer.open!)));
    if (answer.pid !== undefined) {
      job.pid = answer.pid;
      return job.started({
        pid: answer.pid,
        exited: new Promise((resolve) => {
          job.exited = resolve;
        }),
      });
    }
    const exit: JobExit = answer.error
      ? { code: null, signal: null, error: withCode(answer.error) }
      : { code: answer.code ?? null, signal: answer.signal ?? null };
    // A process that failed to start has no pid, so no `started` yet: it starts and exits at once.
    this.settle(answer.id, () =>
      job.exited ? job.exited(exit) : job.started({ pid: undefined, exited: Promise.resolve(exit) }),
    );
  }

  private settle(id: number, then: () => void): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.hold(false);
    then();
  }

  /** The helper is gone: what it had not started fails, what it had started is watched by its group. */
  private lose(helper: ChildProcess): void {
    if (this.helper !== helper) return;
    this.helper = undefined;
    for (const [id, job] of this.pending) {
      this.pending.delete(id);
      if (job.pid === undefined)
        job.failed(new Error('the job-starting helper process stopped before it started the job'));
      else void watchGroup(job.pid).then(() => job.exited?.({ code: null, signal: null, lost: true }));
    }
  }
}

async function watchGroup(pgid: number): Promise<void> {
  while (isGroupAlive(pgid)) await sleep(250);
}

/** Jobs started here, as the helper would (Deno). */
const inProcess: Spawner = {
  async start(request) {
    const out = await open(request.output, 'a', 0o640);
    let child: ChildProcess;
    let exited: Promise<JobExit>;
    try {
      await out.write(request.header);
      child = spawn(request.file, request.args, {
        cwd: request.cwd,
        env: request.env,
        detached: true,
        stdio: ['ignore', out.fd, out.fd],
        uid: request.uid,
        gid: request.gid,
      });
      // Listened to at once: a failed start is told on the next tick.
      exited = new Promise<JobExit>((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal }));
        child.once('error', (error) => resolve({ code: null, signal: null, error }));
      });
    } finally {
      await out.close();
    }
    return { pid: child.pid, exited };
  },
};

/** A helper process under Node (`helper: false` starts in-process, as under Deno). */
export function createSpawner({ helper = !('Deno' in globalThis) }: { helper?: boolean } = {}): Spawner {
  return helper ? new HelperSpawner() : inProcess;
}

/**
 * A short command (a `git fetch`) started by `spawner`, off the caller's thread like a job, its
 * output dropped, its group killed past `timeoutMs`: its exit code, null when it did not exit by itself.
 */
export async function runQuietly(
  spawner: Spawner,
  request: Omit<JobSpawn, 'output' | 'header'> & { timeoutMs: number },
): Promise<number | null> {
  const { timeoutMs, ...command } = request;
  const child = await spawner.start({ ...command, output: '/dev/null', header: '' });
  const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), timeoutMs);
  const exit = await child.exited.finally(() => clearTimeout(timer));
  return exit.error || exit.lost ? null : exit.code;
}
