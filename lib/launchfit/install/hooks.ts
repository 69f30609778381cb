// hooks.before_symlink: run in the new release's folder in a process group of its own, output to
// .launchfit/hook.log, ended at hooks.timeout; the group is recorded before the command may start,
// so a launchfit killed meanwhile stops the orphan instead of running the hook twice.
// The whole story: docs/internals.md.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { WorkError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, readFileTail } from '../../core/fs.ts';
import { readProcFile } from '../../core/procfs.ts';
import type { Logger } from '../../core/log.ts';
import { bootId, endProcessGroup, isGroupAlive, processStartTime, signalGroup } from '../../core/process-group.ts';
import type { VersionInfo } from '../../release/format/version-file.ts';
import type { DeployPaths } from '../deploy-folder/state.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import { secretVariables, spawnIdentity, type AppAccount } from '../deploy-folder/app-env.ts';

/** What .launchfit/hook.json holds while a hook runs. */
interface HookRecord {
  pgid: number;
  /** Also in the hook's environment (LAUNCHFIT_HOOK_ID): tells our orphans from a reused pgid. */
  id: string;
  /** The group leader's start time (/proc/PID/stat field 22) and the boot it counts from. */
  startTime?: string | null;
  bootId?: string | null;
  hook: string;
  cwd: string;
  startedAt: string;
}

/** How long what a hook left running gets after SIGTERM, before SIGKILL. */
const LEFTOVER_GRACE_MS = 2000;
const OUTPUT_TAIL_BYTES = 2000;

// The shell waits for one line on stdin before it becomes the hook, so the hook never runs
// before its group is on record; if launchfit dies first, `read` sees EOF and nothing runs.
const GATE = 'read go || exit 1; exec /bin/sh -c "$0"';

/** What the hook needs of an update (lib/launchfit/install/update.ts's UpdateContext has these fields). */
export interface HookContext {
  paths: DeployPaths;
  config: Pick<LaunchConfig, 'hooks' | 'app' | 'control' | 'updates'>;
  log: Logger;
}

/** Runs hooks.before_symlink in the new release's folder; true when there was one (and it passed). */
export async function runBeforeSymlinkHook(ctx: HookContext, releaseDir: string, info: VersionInfo): Promise<boolean> {
  const hook = ctx.config.hooks.beforeSymlink;
  if (!hook) return false;
  ctx.log.info('running before_symlink hook', { hook, cwd: releaseDir });
  // As app.user when set (the hook is the release's code, as the app is), without launchfit's own secrets.
  const account = ctx.config.app.account;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LAUNCHFIT_DIR: ctx.paths.dir,
    LAUNCHFIT_RELEASE: releaseDir,
    LAUNCHFIT_VERSION: info.version,
    LAUNCHFIT_PID: String(process.pid),
  };
  for (const name of secretVariables([ctx.config.control.secret, ctx.config.updates.report?.secret])) delete env[name];
  if (account) Object.assign(env, { HOME: account.home, USER: account.name, LOGNAME: account.name });
  const timeoutSec = ctx.config.hooks.timeoutSec;
  const result = await runHookGroup({
    hook,
    cwd: releaseDir,
    env,
    account,
    timeoutMs: timeoutSec * 1000,
    paths: ctx.paths,
    log: ctx.log,
  });
  if (result.output) ctx.log.info(`hook output: ${result.output}`);
  if (result.timedOut || result.code !== 0) {
    const why = result.timedOut
      ? `did not finish within hooks.timeout (${timeoutSec} s) and was killed`
      : result.signal
        ? `was killed by ${result.signal}`
        : `exited with ${result.code}`;
    throw new WorkError(
      `hooks.before_symlink ${JSON.stringify(hook)} ${why}; the update was aborted and the running app left alone.`,
    );
  }
  return true;
}

interface HookResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last bytes of what the hook wrote. */
  output: string;
}

async function runHookGroup(opts: {
  hook: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  account?: AppAccount;
  timeoutMs: number;
  paths: DeployPaths;
  log: Logger;
}): Promise<HookResult> {
  const { paths, log } = opts;
  const id = randomBytes(8).toString('hex');
  const out = await open(paths.hookLog, 'w', 0o600);
  let child;
  try {
    child = spawn('/bin/sh', ['-c', GATE, opts.hook], {
      cwd: opts.cwd,
      env: { ...opts.env, LAUNCHFIT_HOOK_ID: id },
      detached: true,
      stdio: ['pipe', out.fd, out.fd],
      ...spawnIdentity(opts.account),
    });
  } finally {
    await out.close(); // the hook has its own copy
  }
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve(error));
  });
  child.stdin!.on('error', () => {}); // a shell that is already gone
  const pgid = child.pid;
  if (pgid === undefined) throw new WorkError(`hooks.before_symlink could not be started: ${messageOf(await ended)}.`);
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const record: HookRecord = {
      pgid,
      id,
      startTime: processStartTime(pgid),
      bootId: bootId(),
      hook: opts.hook,
      cwd: opts.cwd,
      startedAt: new Date().toISOString(),
    };
    await atomicWriteFile(paths.hookFile, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    child.stdin!.end('go\n');
    timer = setTimeout(() => {
      timedOut = true;
      signalGroup(pgid, 'SIGKILL');
    }, opts.timeoutMs);
    const exit = await ended;
    clearTimeout(timer);
    if (exit instanceof Error)
      throw new WorkError(`hooks.before_symlink could not be started: ${exit.message}.`, { cause: exit });
    if (isGroupAlive(pgid)) {
      log.warn(
        'hooks.before_symlink left processes running in its group; stopping them (start a daemon with setsid if it must outlive the hook)',
        { pgid },
      );
      await endProcessGroup(pgid, { graceMs: LEFTOVER_GRACE_MS });
    }
    return { ...exit, timedOut, output: await readTail(paths.hookLog) };
  } finally {
    clearTimeout(timer);
    await endProcessGroup(pgid, { graceMs: 0, signal: 'SIGKILL' });
    await rm(paths.hookFile, { force: true });
  }
}

/**
 * At start, before anything else: end the hook a killed launchfit left running (recorded in
 * .launchfit/hook.json and still carrying its LAUNCHFIT_HOOK_ID). True when there was one.
 */
export async function stopLeftoverHook(paths: DeployPaths, log: Logger): Promise<boolean> {
  let record: HookRecord;
  try {
    record = JSON.parse(await readFile(paths.hookFile, 'utf8')) as HookRecord;
  } catch {
    return false;
  }
  const ours = Number.isInteger(record.pgid) && record.pgid > 1 && isGroupAlive(record.pgid) && isOurGroup(record);
  if (ours) {
    log.warn('stopping the before_symlink hook left running by a previous launchfit', {
      pgid: record.pgid,
      hook: record.hook,
      startedAt: record.startedAt,
    });
    await endProcessGroup(record.pgid, { graceMs: LEFTOVER_GRACE_MS });
  }
  await rm(paths.hookFile, { force: true });
  return ours;
}

/**
 * Whether the live group `record.pgid` is the hook's and not a later one with a reused id. The
 * leader still running with the recorded start time (same boot) settles it; once the leader is
 * gone (its children live on), a member carrying the hook's LAUNCHFIT_HOOK_ID does.
 */
function isOurGroup(record: HookRecord): boolean {
  if (record.startTime && record.bootId && record.bootId === bootId()) {
    const now = processStartTime(record.pgid);
    if (now !== null) return now === record.startTime;
  }
  return processesWithEnv(`LAUNCHFIT_HOOK_ID=${record.id}`) > 0;
}

/** How many running processes carry `entry` (NAME=value) in their environment. */
function processesWithEnv(entry: string): number {
  let count = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    try {
      if (readProcFile(`/proc/${pid}/environ`).split('\0').includes(entry)) count++;
    } catch {
      /* gone, or another user's */
    }
  }
  return count;
}

async function readTail(file: string): Promise<string> {
  const text = await readFileTail(file, OUTPUT_TAIL_BYTES).catch(() => Buffer.alloc(0));
  return text.toString('utf8').trim();
}
