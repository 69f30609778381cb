// Runs one command of a build step: spawned directly (no shell, no zx), in its own process group so a
// timeout ends the whole tree, its output written to the job log as timestamped lines, capped per
// command.
// The whole story: docs/internals.md.
import { spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import type { JobLogWriter } from '../jobs/job-log.ts';
import { formatBytes } from '../core/log.ts';
import { StreamMasker } from '../jobs/masking.ts';
import { endProcessGroup, signalGroup } from '../core/process-group.ts';
import { redactUrls } from '../core/redact.ts';

export interface OutputLimits {
  /** Bytes of a command's output written as they come. */
  headBytes: number;
  /** Bytes kept from the end of the output once the head is full. */
  tailBytes: number;
}

export const DEFAULT_OUTPUT_LIMITS: OutputLimits = { headBytes: 1024 * 1024, tailBytes: 256 * 1024 };
const MAX_LINE = 16 * 1024;

/** Writes a stream of output bytes to the job log as `TIME | line`, within the limits. */
export class CappedOutput {
  private readonly log: JobLogWriter;
  private readonly limits: OutputLimits;
  private headLeft: number;
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  private tail: Array<{ time: Date; chunk: Buffer }> = [];
  private tailSize = 0;
  private omitted = 0;
  total = 0;
  /** The last lines written, for an error message. */
  private recent: string[] = [];

  private readonly watch?: (line: string) => void;
  /** The job's secrets, masked on the byte stream so a secret cut across chunks is still caught. */
  private readonly masker: StreamMasker;

  constructor(log: JobLogWriter, limits: OutputLimits = DEFAULT_OUTPUT_LIMITS, watch?: (line: string) => void) {
    this.log = log;
    this.watch = watch;
    this.limits = limits;
    this.headLeft = limits.headBytes;
    this.masker = new StreamMasker(log.secrets ?? []);
  }

  write(chunk: Buffer, time = new Date()): void {
    this.total += chunk.length;
    this.take(this.masker.write(chunk), time);
  }

  private take(chunk: Buffer, time: Date): void {
    if (!chunk.length) return;
    if (this.headLeft > 0) {
      const take = Math.min(this.headLeft, chunk.length);
      this.headLeft -= take;
      this.emit(this.decoder.write(chunk.subarray(0, take)), time);
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    this.tail.push({ time, chunk });
    this.tailSize += chunk.length;
    while (this.tail.length > 1 && this.tailSize - this.tail[0].chunk.length >= this.limits.tailBytes) {
      this.omitted += this.tail[0].chunk.length;
      this.tailSize -= this.tail.shift()!.chunk.length;
    }
  }

  private emit(text: string, time: Date): void {
    let rest = this.partial + text;
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      this.line(rest.slice(0, newline), time);
      rest = rest.slice(newline + 1);
    }
    while (rest.length > MAX_LINE) {
      this.line(`${rest.slice(0, MAX_LINE)} [line continues]`, time);
      rest = rest.slice(MAX_LINE);
    }
    this.partial = rest;
  }

  private line(text: string, time: Date): void {
    // Credentials in a URL (a clone URL in git's error message) never reach the log.
    const clean = redactUrls(text.replace(/\r$/, ''));
    // Masked on the stream already (write()), so not again per line.
    this.log.maskedLine(`| ${clean}`, time);
    this.watch?.(clean);
    this.recent.push(clean);
    if (this.recent.length > 20) this.recent.shift();
  }

  /** Writes what is still held back: the partial last line, the omission note and the tail. */
  end(): void {
    this.take(this.masker.end(), new Date());
    this.emit(this.decoder.end(), new Date());
    if (this.tail.length) {
      let skip = this.omitted;
      let first = true;
      // Start the tail at a line boundary: drop the part-line at its start.
      const pieces: Array<{ time: Date; text: string }> = [];
      const decoder = new StringDecoder('utf8');
      for (const { time, chunk } of this.tail) {
        let text = decoder.write(chunk);
        if (first) {
          first = false;
          const newline = text.indexOf('\n');
          const cut = newline === -1 ? text.length : newline + 1;
          skip += Buffer.byteLength(text.slice(0, cut)) + Buffer.byteLength(this.partial);
          this.partial = '';
          text = text.slice(cut);
        }
        pieces.push({ time, text });
      }
      pieces.push({ time: new Date(), text: decoder.end() });
      this.log.line(
        `--- ${formatBytes(skip)} of output left out here (the log keeps the first ` +
          `${formatBytes(this.limits.headBytes)} and the last ${formatBytes(this.limits.tailBytes)} of each command) ---`,
      );
      for (const { time, text } of pieces) this.emit(text, time);
    }
    if (this.partial) this.line(this.partial, new Date());
    this.partial = '';
    this.tail = [];
  }

  lastLines(n = 10): string[] {
    return this.recent.slice(-n);
  }
}

export interface RunLoggedOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: JobLogWriter;
  /** Epoch ms when the job's time is up; the command is killed then. */
  deadline: number;
  /** The job's timeout in seconds, for the message. */
  timeoutSec: number;
  limits?: OutputLimits;
  /** Run as this uid/gid (the repo's `user:`), when shipkit runs as root. */
  uid?: number;
  gid?: number;
  /** Grace between SIGTERM and SIGKILL to the process group. */
  killGraceMs?: number;
  /** Sees every line that is written to the log (not the left-out middle). */
  watch?: (line: string) => void;
  /** Aborting kills the process group at once (the build itself got SIGTERM). */
  signal?: AbortSignal;
  /** A node started ahead for this very command (prestartNode): used when it matches, else ended. */
  prestarted?: Prestarted;
}

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The last lines of output, for a short error message on the terminal. */
  lastLines: string[];
  outputBytes: number;
}

/** `spawn`, the child running as uid/gid when given (the repo's `user:`); also zx's `spawn` option. */
export function spawnAs(uid?: number, gid?: number): typeof spawnChild {
  if (uid === undefined) return spawnChild;
  return ((command: string, args: readonly string[], spawnOptions: SpawnOptions) =>
    spawnChild(command, args, { ...spawnOptions, uid, gid })) as typeof spawnChild;
}

/**
 * Runs `argv` (no shell) in its own process group. Never throws for a failing command: the result
 * says how it ended. A command that cannot be started ends as a shell's would: 127 (not found) or
 * 126, with a line saying why.
 */
export async function runLogged(argv: string[], options: RunLoggedOptions): Promise<CommandResult> {
  const { log, deadline } = options;
  const out = new CappedOutput(log, options.limits, options.watch);
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    log.line(`!!! not started: the job's time limit of ${options.timeoutSec} s is used up`);
    return { exitCode: null, signal: null, timedOut: true, lastLines: [], outputBytes: 0 };
  }
  const child =
    startPrestarted(options.prestarted, argv, options) ??
    spawnAs(options.uid, options.gid)(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const ended = endOf(child, argv[0], out);
  child.stdout!.on('data', (chunk: Buffer) => out.write(chunk));
  child.stderr!.on('data', (chunk: Buffer) => out.write(chunk));
  const pid = child.pid;
  let timedOut = false;
  let stopping: Promise<unknown> | undefined;
  const stop = () => {
    stopping ??= endProcessGroup(pid, { graceMs: options.killGraceMs ?? 3000 });
  };
  const timer = setTimeout(() => {
    timedOut = true;
    log.line(
      `!!! time limit reached: the job's timeout is ${options.timeoutSec} s; stopping process group ${pid} (SIGTERM, then SIGKILL)`,
    );
    stop();
  }, remaining);
  const onAbort = () => {
    log.line(`!!! stopping process group ${pid}: ${String(options.signal?.reason ?? 'the job was stopped')}`);
    stop();
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  const result = await ended;
  options.signal?.removeEventListener('abort', onAbort);
  clearTimeout(timer);
  // Whatever the command left running in its group (a background server, a stuck watcher) goes too.
  signalGroup(pid, 'SIGKILL');
  await stopping;
  out.end();
  return {
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut,
    lastLines: out.lastLines(),
    outputBytes: out.total,
  };
}

// ---------------------------------------------------------------------------------------------
// A node started ahead of its turn. A no-op rebuild is git's few milliseconds and then litpro, a
// node program: started when its turn comes, its node's own start (about 50 ms, a quarter of the
// build) comes after everything else. Started while git runs, that start overlaps git; the node
// then waits, doing nothing and reading nothing, until it is told to run (or its pipe closes,
// when it exits). It is used only when the command, folder, user and environment it was started
// with are the ones the command gets when its turn comes, except for the variables Node does not
// read at its start (PRESTART_LATE), which are handed over with the go; else it is ended and the
// command spawned as usual, so a prestart never changes what runs, only when its node starts.

/** A node started ahead for a command, waiting for the go on its fd 3 (prestartNode). */
export interface Prestarted {
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  child: ChildProcess;
}

/** Known only when the command's turn comes, and read by npm and the build's scripts, not by Node's start. */
const PRESTART_LATE = ['SHIPKIT_SHA', 'npm_config_cache', 'NPM_CONFIG_CACHE'];

// The waiting node: on the go (one JSON line: argv and environment) it closes fd 3, takes that
// environment and argv as its own, and loads the script as `node SCRIPT ARGS…` would; -e is taken
// out of execArgv so a fork() of the script runs its own module, not this. Without the go: exit 1.
const WAITER =
  `const s=new(require('node:net').Socket)({fd:3,readable:true,writable:false});let b='';s.setEncoding('utf8');` +
  `const quit=()=>process.exit(1);s.on('end',quit);s.on('error',quit);s.on('data',(d)=>{b+=d;const i=b.indexOf('\\n');if(i<0)return;` +
  `s.off('end',quit);s.off('error',quit);s.destroy();const go=JSON.parse(b.slice(0,i));for(const k of ` +
  `Object.keys(process.env))delete process.env[k];` +
  `Object.assign(process.env,go.env);process.execArgv.length=0;process.argv=[process.execPath,...go.argv.slice(1)];` +
  `import(require('node:url').pathToFileURL(go.argv[1]).href);});`;

/**
 * Starts `argv` (`[this node, SCRIPT, …]`) ahead: its node starts now and waits for runLogged to
 * run it. Undefined for any other command (another node, a shell script, a flag for node) or
 * when it cannot start; the command is then spawned when its turn comes.
 */
export function prestartNode(
  argv: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number },
): Prestarted | undefined {
  if (argv[0] !== process.execPath || argv.length < 2 || argv[1].startsWith('-') || 'Deno' in globalThis)
    return undefined;
  try {
    const child = spawnAs(options.uid, options.gid)(process.execPath, ['-e', WAITER], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    child.once('error', () => {});
    // Not waited for while it waits: a build that ends without using it exits, and the closed
    // pipe ends the waiting node.
    child.unref();
    for (const stream of child.stdio) (stream as { unref?: () => void } | null)?.unref?.();
    return { argv: [...argv], ...options, child };
  } catch {
    return undefined;
  }
}

/** Ends a prestarted node that will not be used (its group: it has started nothing yet). */
export function discardPrestarted(prestarted: Prestarted | undefined): void {
  if (!prestarted || prestarted.child.exitCode !== null || prestarted.child.signalCode !== null) return;
  (prestarted.child.stdio[3] as NodeJS.WritableStream | null)?.end();
  if (prestarted.child.pid !== undefined) signalGroup(prestarted.child.pid, 'SIGKILL');
}

/** The prestarted node, told to run, when it was started for exactly this; else undefined (and it is ended). */
function startPrestarted(
  prestarted: Prestarted | undefined,
  argv: string[],
  options: RunLoggedOptions,
): ChildProcess | undefined {
  if (!prestarted) return undefined;
  const { child } = prestarted;
  const same = (a: NodeJS.ProcessEnv, b: NodeJS.ProcessEnv) =>
    [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => PRESTART_LATE.includes(k) || a[k] === b[k]);
  const matches =
    child.pid !== undefined &&
    child.exitCode === null &&
    child.signalCode === null &&
    JSON.stringify(argv) === JSON.stringify(prestarted.argv) &&
    options.cwd === prestarted.cwd &&
    options.uid === prestarted.uid &&
    options.gid === prestarted.gid &&
    same(options.env, prestarted.env);
  if (!matches) {
    discardPrestarted(prestarted);
    return undefined;
  }
  child.ref();
  for (const stream of child.stdio) (stream as { ref?: () => void } | null)?.ref?.();
  const go = child.stdio[3] as NodeJS.WritableStream;
  go.on('error', () => {});
  go.end(`${JSON.stringify({ argv, env: options.env })}\n`);
  return child;
}

/**
 * How the child ended, once its output is all read ('close', as zx waited for). One that could not
 * be started (its 'error') ends with a shell's code for it and a line in the output saying why.
 */
function endOf(
  child: ChildProcess,
  command: string,
  out: CappedOutput,
): Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // started: 'close' still comes
      out.write(
        Buffer.from(
          `shipkit: cannot run ${command}: ${error.code === 'ENOENT' ? 'command not found' : error.message}\n`,
        ),
      );
      resolve({ exitCode: error.code === 'ENOENT' ? 127 : 126, signal: null });
    });
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
  });
}

/**
 * Runs `argv` (no shell) and returns its exit code and stdout, stderr dropped: a quick query such
 * as `git rev-parse`. Killed (SIGTERM) after `timeoutMs`; one that cannot start gives exitCode null.
 */
export function captureCommand(
  argv: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number; gid?: number },
): Promise<{ exitCode: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawnAs(options.uid, options.gid)(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer =
      options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
    const done = (exitCode: number | null) => {
      clearTimeout(timer);
      resolve({ exitCode, stdout: Buffer.concat(chunks).toString('utf8') });
    };
    child.once('error', () => {
      if (child.pid === undefined) done(null);
    });
    child.once('close', (exitCode) => done(exitCode));
  });
}

/** `exit 1`, `killed by SIGKILL`, `timed out`: how a command ended, for a log line. */
export function describeEnd(result: CommandResult): string {
  if (result.timedOut) return 'timed out (process tree killed)';
  if (result.signal) return `killed by ${result.signal}`;
  return `exit ${result.exitCode}`;
}
