// Shared test harness: temp folders, running the real scripts as child processes (under Node
// with tsx, or under Deno when SHIPKIT_TEST_RUNTIME=deno), free ports, real git repos.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../../lib/core/shell.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const RUNTIME = process.env.SHIPKIT_TEST_RUNTIME === 'deno' ? 'deno' : 'node';
const TSX_LOADER = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const DENO = path.join(ROOT, 'node_modules/.bin/deno');
// Set by test/run.ts: the one file it bundled from these sources at its start, which starts in a
// tenth of the CPU tsx needs to compile a script (about 0.1 s against 0.7 s).
let BUNDLE = process.env.SHIPKIT_TEST_BUNDLE;

/** The one file the scripts start from, when they do not start from the checkout's sources. */
export const scriptsBundle = (): string | undefined => BUNDLE;

/** Whether the scripts start from the one file (which carries no files beside it) rather than the checkout. */
export const scriptsFromBundle = () => BUNDLE !== undefined;

/** For a test about the checkout itself (where it finds its files): scripts start from scripts/*.ts. */
export function runScriptsFromSources(): void {
  BUNDLE = undefined;
}

$.verbose = false;
$.quiet = true;

const cleanups: Array<() => void> = [];
process.on('exit', () => {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
});

/** A fresh temp folder, removed when the test process exits. */
/**
 * Each file directly in `dir` (a DEST) by name with its sha256, dot files (a lock being held)
 * left out: equal before and after shows a refused command wrote nothing there.
 */
export function fileDigests(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((f) => [
        f,
        createHash('sha256')
          .update(readFileSync(path.join(dir, f)))
          .digest('hex'),
      ]),
  );
}

export function tmpDir(prefix = 'shipkit-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let scriptOverride: ((name: string) => string[]) | undefined;

/**
 * For benches that time shipkit as shipped: every script this process starts through these
 * helpers runs as `argvFor(NAME)` (bench/shipped.ts: node FILE NAME) instead of the sources.
 */
export function runScriptsAs(argvFor: (name: string) => string[]): void {
  scriptOverride = argvFor;
}

/** The command line that runs scripts/NAME.ts under the chosen runtime. */
export function scriptCommand(name: string): string[] {
  if (scriptOverride) return scriptOverride(name);
  const file = path.join(ROOT, 'scripts', `${name}.ts`);
  if (RUNTIME === 'deno') return [DENO, 'run', '-A', '--quiet', file];
  // The one file is scripts/shipkit.ts with every script inside: `shipkit.mjs NAME …` runs NAME.
  if (BUNDLE) return name === 'shipkit' ? [process.execPath, BUNDLE] : [process.execPath, BUNDLE, name];
  return [process.execPath, '--import', TSX_LOADER, file];
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete env.SHIPKIT_SECRET;
  delete env.LOG_FORMAT;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run a script to completion and collect its output. Never throws on a non-zero exit. */
export function runScript(name: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...pre] = scriptCommand(name);
  const child = spawn(cmd, [...pre, ...args], {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return collect(child, options);
}

/** Run any command (not through a shell) and collect its output. */
export function runCommand(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawn(cmd, args, {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return collect(child, options);
}

function collect(child: ChildProcess, options: RunOptions): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.on('error', () => {});
  child.stdin!.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout, stderr });
    });
  });
}

export interface Server {
  child: ChildProcess;
  url: string;
  port: number;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** A system user for builds that run as another user (root only): made once, its uid returned. */
export async function ensureSystemUser(name: string): Promise<number> {
  if ((await runCommand('id', ['-u', name])).exitCode !== 0) {
    const made = await runCommand('useradd', [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      name,
    ]);
    if (made.exitCode !== 0 && (await runCommand('id', ['-u', name])).exitCode !== 0)
      throw new Error(`useradd ${name} failed: ${made.stderr}`);
  }
  return Number((await runCommand('id', ['-u', name])).stdout.trim());
}

/**
 * For a test that builds (or serves) as another Unix user, which needs root: the system user
 * `shipkithook` (made on first use) and its uid; not root, it logs `skipped: WHY` and gives
 * undefined, and the test returns.
 */
export async function rootBuildUser(
  why = 'building as another user needs root',
): Promise<{ user: string; uid: number } | undefined> {
  if (process.getuid?.() !== 0) {
    console.log(`skipped: ${why}`);
    return undefined;
  }
  const user = 'shipkithook';
  return { user, uid: await ensureSystemUser(user) };
}

/**
 * Start a long-running script and wait until it logs `listening on http://HOST:PORT`.
 * The child is killed when the test process exits.
 */
export async function startScript(name: string, args: string[], options: RunOptions = {}): Promise<Server> {
  const [cmd, ...pre] = scriptCommand(name);
  const child = spawn(cmd, [...pre, ...args], {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start in time:\n${out}`)),
      options.timeoutMs ?? 20_000,
    );
    const onData = () => {
      const m = out.match(/listening on (http:\/\/[^\s"]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening:\n${out}`));
    });
  });
  return {
    child,
    url,
    port: Number(new URL(url).port),
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A free port on 127.0.0.1 for a server that is stopped and started again on it (an app under
 * launchfit, bound anew at each update). It is taken below the ephemeral range: a port from
 * there (freePort's) can be taken, while the server is down, as the source port of any outgoing
 * connection on the machine, a kept-alive one included, and the server's next start then fails
 * with EADDRINUSE. 10000-19999, apart from closedPort's range.
 */
export async function restartablePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 10_000 + Math.floor(Math.random() * 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found in 10000-19999 on 127.0.0.1');
}

/**
 * A port on 127.0.0.1 where a connection is refused. It is taken below the ephemeral range
 * (where freePort's and every outgoing connection's ports come from), so a server of a test
 * running beside this one cannot take it, nor can a connect to it meet itself (a socket whose
 * source port is the port it dials).
 */
export async function closedPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(false)));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('no closed port found in 20000-29999 on 127.0.0.1');
}

/** Whether something accepts connections on 127.0.0.1:`port` now. */
export const accepting = (port: number) =>
  new Promise<boolean>((resolve) => {
    const probe = net.connect(port, '127.0.0.1', () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });

export async function waitFor<T>(
  probe: () => T | Promise<T>,
  { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** git with a fixed identity and no user config, so tests do not depend on the machine. */
export function git(cwd: string, ...args: string[]) {
  return $({ cwd, env: gitEnv() })`git ${args}`;
}

export function gitEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.com',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.com',
  };
}

/**
 * A bare repo at BASE/NAME.git with one commit holding `files`; returns the bare path and a
 * function that commits more files to it (through a scratch work tree) and returns the new SHA.
 */
export async function makeBareRepo(
  base: string,
  name: string,
  files: Record<string, string> = { 'README.md': `# ${name}\n` },
  branch = 'main',
) {
  mkdirSync(base, { recursive: true });
  const bare = path.join(base, `${name}.git`);
  await git(base, 'init', '--quiet', '--bare', `--initial-branch=${branch}`, bare);
  const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-work-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  await git(work, 'init', '--quiet', `--initial-branch=${branch}`);
  await git(work, 'remote', 'add', 'origin', bare);
  const commit = async (more: Record<string, string>, message = 'change'): Promise<string> => {
    for (const [file, text] of Object.entries(more)) {
      mkdirSync(path.dirname(path.join(work, file)), { recursive: true });
      writeFileSync(path.join(work, file), text);
    }
    await git(work, 'add', '-A');
    await git(work, 'commit', '--quiet', '-m', message);
    await git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`, '--force');
    return (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
  };
  const first = await commit(files, 'initial');
  return { bare, work, first, commit };
}
