// The long-running side of launchfit (`run`) and the one-shot commands that share it:
// lock, crash recovery, supervisor, polling with jitter, control socket and TCP listener.
import path from 'node:path';
import { messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import { acquireLock, type Lock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { resolveSecret } from '../core/secrets.ts';
import { CONFIG_NAME, loadLaunchConfig, readReleaseAppDefaults, type LaunchConfig } from './config.ts';
import { startControlListener, startControlSocket } from './control.ts';
import type { FetchFn } from './fetch.ts';
import { stopLeftoverHook } from './hooks.ts';
import { deployPaths, readState, updateState, type DeployPaths } from './state.ts';
import { collectStatus, type Status } from './status.ts';
import { createAppRunner, type AppRunner } from './app-runner.ts';
import { stopLeftoverApp } from './supervisor.ts';
import { clearLeftovers, readCurrent, swapCurrentSymlink, removeRelease } from './switch.ts';
import { compareVersions } from '../release/version-file.ts';
import { checkForUpdates, rollbackRelease, type AppControl, type CheckResult, type UpdateContext } from './update.ts';

/** The deploy folder's config merged with the current release's own `app:` defaults. */
export async function loadEffectiveConfig(paths: DeployPaths): Promise<LaunchConfig> {
  const current = await readCurrent(paths);
  const releaseApp = current ? await readReleaseAppDefaults(path.join(paths.releases, current)).catch(() => ({})) : {};
  return loadLaunchConfig(paths.dir, releaseApp);
}

export async function lockDeployFolder(paths: DeployPaths): Promise<Lock> {
  await ensureDir(paths.meta, 0o700);
  return acquireLock(paths.lock, { what: `The deploy folder ${paths.dir}` });
}

/** A one-shot update (deploy/update without `run`): lock, recover, check, switch; no app is started. */
export async function updateOnce(dir: string, log: Logger, { fetchImpl, force = false }: { fetchImpl?: FetchFn; force?: boolean } = {}): Promise<CheckResult> {
  const paths = deployPaths(dir);
  const lock = await lockDeployFolder(paths);
  try {
    await stopLeftoverHook(paths, log);
    await clearLeftovers(paths, await readState(paths));
    await updateState(paths, (s) => { s.pending = undefined; });
    const config = await loadEffectiveConfig(paths);
    return await checkForUpdates({ paths, config, log, fetchImpl }, { force });
  } finally {
    await lock.release();
  }
}

export async function rollbackOnce(dir: string, log: Logger, version?: string): Promise<CheckResult> {
  const paths = deployPaths(dir);
  const lock = await lockDeployFolder(paths);
  try {
    const config = await loadEffectiveConfig(paths);
    return await rollbackRelease({ paths, config, log }, { version });
  } finally {
    await lock.release();
  }
}

export interface LauncherOptions {
  dir: string;
  log: Logger;
  /** Resolves when launchfit should stop (SIGTERM/SIGINT). */
  stopSignal: Promise<void>;
  fetchImpl?: FetchFn;
  /** For tests: the poll interval in ms instead of updates.interval. */
  intervalMs?: number;
  echo?: NodeJS.WritableStream;
  onReady?: (info: { socket: string; listenUrl?: string }) => void;
}

/** `launchfit run`: supervise the app, poll for updates, answer on the control socket. */
export async function runLauncher(opts: LauncherOptions): Promise<void> {
  const { log } = opts;
  const paths = deployPaths(opts.dir);
  const lock = await lockDeployFolder(paths);
  let runner: AppRunner | undefined;
  const closers: Array<() => Promise<void>> = [];
  try {
    // First, before the clean-up and the next check run the hook again: a hook orphaned by a
    // killed launchfit must not run twice at once.
    await stopLeftoverHook(paths, log);
    const state = await readState(paths);
    const removed = await clearLeftovers(paths, state);
    if (removed.length) log.info('cleared leftovers of an interrupted run', { removed });
    let config = await loadEffectiveConfig(paths);
    // Both slots: a launchfit killed during an overlapping update leaves two apps behind. They
    // hold the app's sockets, so they are stopped before the sockets are bound again.
    for (const pidFile of [paths.pidFile, paths.secondPidFile]) await stopLeftoverApp(pidFile, paths.dir, config.app.killTimeoutSec * 1000, log);

    runner = await createAppRunner({ paths, log, echo: opts.echo, config, loadConfig: async () => (config = await loadEffectiveConfig(paths)) });
    const app: AppControl = runner;
    const ctx = (): UpdateContext => ({ paths, config, log, app, fetchImpl: opts.fetchImpl });

    // A crash between a swap and its health check: the first start is that health check.
    const pending = state.pending;
    const current = await readCurrent(paths);
    if (current) {
      const healthy = await app.start(Boolean(pending && pending.to === current));
      if (!healthy && pending?.from && pending.to === current) {
        log.error(`release ${current} ${app.lastFailure?.()?.reason ?? 'did not stay up'} after an interrupted update; going back to ${pending.from}`);
        await swapCurrentSymlink(paths, pending.from);
        await updateState(paths, (s) => {
          const v = s.installed[current]?.version;
          if (v && !s.bad.includes(v)) s.bad.push(v);
          delete s.installed[current];
          s.pending = undefined;
        });
        await removeRelease(paths, current);
        await app.start(false);
      } else if (healthy && pending?.to === current) {
        await updateState(paths, (s) => {
          const v = s.installed[current]?.version;
          if (pending.from) s.previous = pending.from;
          if (v && (!s.highest || compareVersions(v, s.highest) > 0)) s.highest = v;
        });
      }
    } else {
      log.info('nothing installed yet; checking for updates');
    }
    await updateState(paths, (s) => { s.pending = undefined; });

    // One update or rollback at a time, in order. Check requests that arrive while a check is
    // waiting to start join it; once it has started, they queue one more (coalescing).
    let tail: Promise<unknown> = Promise.resolve();
    const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
      const next = tail.then(work, work);
      tail = next.catch(() => {});
      return next;
    };
    const runCheck = async (force: boolean): Promise<CheckResult> => {
      try {
        config = await loadEffectiveConfig(paths); // launchify.yml edits apply from the next check on
        const result = await checkForUpdates(ctx(), { force });
        if (result.action !== 'not-modified') log.info(result.message, { action: result.action });
        return result;
      } catch (error) {
        log.error(`update check failed: ${messageOf(error)}`);
        throw error;
      }
    };
    let waitingCheck: Promise<CheckResult> | undefined;
    let waitingForce = false;
    // A forced check (asked by the fleet master) makes the waiting check a forced one.
    const requestCheck = ({ force = false }: { force?: boolean } = {}): Promise<CheckResult> => {
      waitingForce ||= force;
      waitingCheck ??= exclusive(() => {
        const forced = waitingForce;
        waitingCheck = undefined;
        waitingForce = false;
        return runCheck(forced);
      });
      return waitingCheck;
    };
    const handlers = {
      status: async (): Promise<Status> => collectStatus(paths, runner!.info()),
      update: requestCheck,
      rollback: (version?: string) => exclusive(() => rollbackRelease(ctx(), { version })),
    };
    const socket = await startControlSocket(paths.socket, handlers, log);
    closers.push(() => socket.close());
    let listenUrl: string | undefined;
    if (config.control.listen) {
      const secret = await resolveSecret(config.control.secret, { baseDir: paths.dir, where: `${config.file}: control.secret` });
      // The app is named by the deploy folder, or by the release name's APP prefix
      // (my-app-gnu-linux-1.2 answers to my-app, as `server-update my-app` sends it).
      let currentName = current;
      const accepts = (name: string) => name === path.basename(paths.dir) || Boolean(currentName?.startsWith(`${name}-`));
      const listener = await startControlListener(handlers, { listen: config.control.listen, secret, accepts, log });
      const timer = setInterval(() => { void readCurrent(paths).then((c) => { currentName = c; }); }, 1000);
      closers.push(async () => { clearInterval(timer); await listener.close(1000); });
      listenUrl = listener.url;
    }
    opts.onReady?.({ socket: paths.socket, listenUrl });

    // Polling with ±10 % jitter, so a fleet does not hit the server in step.
    let stopped = false;
    let pollTimer: NodeJS.Timeout | undefined;
    const schedule = (first = false) => {
      if (stopped) return;
      const base = opts.intervalMs ?? config.updates.intervalSec * 1000;
      // The first check comes soon after start (a fresh deploy folder, or updates missed while
      // down), unless the interval was overridden (tests, benchmarks).
      const delay = first && opts.intervalMs === undefined ? Math.min(base, 1000) : base * (0.9 + Math.random() * 0.2);
      pollTimer = setTimeout(() => { void requestCheck().catch(() => {}).finally(() => schedule()); }, delay);
    };
    if (config.updates.server) schedule(true);
    else log.warn('updates.server is not set; not polling');

    await opts.stopSignal;
    stopped = true;
    if (pollTimer) clearTimeout(pollTimer);
    log.info('stopping');
    for (const close of closers.splice(0)) await close().catch((error) => log.warn(`stopping a listener failed: ${messageOf(error)}`));
    await Promise.race([tail, new Promise((r) => setTimeout(r, 30_000))]);
    await runner.close();
  } finally {
    for (const close of closers) await close().catch((error) => log.warn(`stopping a listener failed: ${messageOf(error)}`));
    await runner?.close().catch((error) => log.warn(`stopping the app failed: ${messageOf(error)}`));
    await lock.release();
  }
}
