// The long-running side of launchfit (`run`) and the one-shot commands that share it:
// lock, crash recovery, supervisor, polling with jitter, control socket and TCP listener. The
// order of checks and rollbacks (one at a time, requests coalesced) is update-queue.ts.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { RemoteError, UsageError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import { acquireLock, type Lock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { resolveSecret } from '../core/secrets.ts';
import { checkCanRunAs, isAppOf } from './deploy-folder/app-env.ts';
import { endStrays, findPerl, readLeftInstance, type LeftInstance } from './app/instance.ts';
import { takeSockets, type RawHandle } from './app/sockets.ts';
import type { ListenSpec } from './deploy-folder/listen-spec.ts';
import { CONFIG_NAME, loadLaunchConfig, readReleaseAppDefaults, type LaunchConfig } from './deploy-folder/config.ts';
import { startControlListener, startControlSocket, type ControlHandlers } from './control/socket.ts';
import type { FetchFn } from './update-server/requests.ts';
import { stopLeftoverHook } from './install/hooks.ts';
import { nextPollDelayMs } from './install/poll-delay.ts';
import { ensureHostId } from './deploy-folder/host-id.ts';
import type { ReportResult } from '../release/format/fleet-report.ts';
import { Reporter, reportOfCheck } from './control/report.ts';
import { deployPaths, readState, updateState, type DeployPaths, type LaunchState } from './deploy-folder/state.ts';
import { collectStatus, type Status } from './control/status.ts';
import { createAppRunner, type AppRunner } from './app/runner.ts';
import { stopLeftoverApp } from './app/supervisor.ts';
import { clearLeftovers, readCurrent, swapCurrentSymlink, removeRelease } from './deploy-folder/current-link.ts';
import { compareVersions } from '../release/format/version-file.ts';
import type { AppControl, CheckResult, UpdateContext } from './install/context.ts';
import { checkForUpdates } from './install/update.ts';
import { goBackFromCrashLoop, restartUnhealthy, rollbackRelease } from './install/switch-to-release.ts';
import { UpdateQueue, type VerdictFn } from './install/update-queue.ts';

/** The deploy folder's config merged with the `app:` defaults of `release` (default: the current one). */
export async function loadEffectiveConfig(paths: DeployPaths, release?: string): Promise<LaunchConfig> {
  const current = release ?? (await readCurrent(paths));
  const releaseApp = current ? await readReleaseAppDefaults(path.join(paths.releases, current)).catch(() => ({})) : {};
  return loadLaunchConfig(paths.dir, releaseApp);
}

export async function lockDeployFolder(paths: DeployPaths): Promise<Lock> {
  await ensureDir(paths.meta, 0o700);
  return acquireLock(paths.lock, { what: `The deploy folder ${paths.dir}` });
}

/** A one-shot update (deploy/update without `run`): lock, recover, check, switch; no app is started. */
export async function updateOnce(
  dir: string,
  log: Logger,
  { fetchImpl, force = false }: { fetchImpl?: FetchFn; force?: boolean } = {},
): Promise<CheckResult> {
  const paths = deployPaths(dir);
  const lock = await lockDeployFolder(paths);
  try {
    await stopLeftoverHook(paths, log);
    await clearLeftovers(paths, await readState(paths));
    await updateState(paths, (s) => {
      s.pending = undefined;
    });
    const config = await loadEffectiveConfig(paths);
    return await checkForUpdates({ paths, config, log, fetchImpl }, { force });
  } finally {
    await lock.release();
  }
}

/**
 * Going back to a version marked bad clears its mark, so it needs --force: without it, anyone
 * who can ask for a rollback (an app that reached the control socket, a script) cannot turn a
 * release the host refused into the one it keeps. A UsageError (exit 2); nothing is changed.
 */
export async function refuseBadTarget(paths: DeployPaths, version: string | undefined, force: boolean): Promise<void> {
  if (version === undefined || force) return;
  const state = await readState(paths);
  const marked = state.bad.some((v) => compareVersions(v, version) === 0);
  const installed = Object.values(state.installed).some((r) => compareVersions(r.version, version) === 0);
  if (marked && installed) {
    throw new UsageError(
      `Version ${version} is marked bad (it was rolled back or failed its health check); going back to it ` +
        `clears that mark. If you mean it, run \`launchfit rollback --to ${version} --force\`.`,
    );
  }
}

export async function rollbackOnce(
  dir: string,
  log: Logger,
  version?: string,
  { force = false }: { force?: boolean } = {},
): Promise<CheckResult> {
  const paths = deployPaths(dir);
  const lock = await lockDeployFolder(paths);
  try {
    await refuseBadTarget(paths, version, force);
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
  const paths = deployPaths(opts.dir);
  const lock = await lockDeployFolder(paths);
  let launcher: Launcher | undefined;
  try {
    const { pending, config, taken, adopt } = await recoverDeployFolder(paths, opts.log);
    checkCanRunAs(config.app.account);
    launcher = new Launcher(opts, paths, config);
    await launcher.run(pending, taken, adopt);
  } finally {
    await launcher?.close();
    await lock.release();
  }
}

/** The instance a killed launchfit left serving the current release, in its slot. */
type Adoption = { slot: 'a' | 'b'; instance: LeftInstance };

/**
 * The instance to adopt instead of stopping: one a killed launchfit left running the release
 * `current` points at, under the wrapper, with no switch pending (a pending one is checked by a
 * fresh start, see startApp).
 */
async function instanceToAdopt(paths: DeployPaths, state: LaunchState): Promise<Adoption | undefined> {
  const current = await readCurrent(paths);
  if (state.pending || !current || !findPerl()) return undefined;
  for (const [slot, file] of [
    ['a', paths.pidFile],
    ['b', paths.secondPidFile],
  ] as const) {
    const instance = await readLeftInstance(file, paths.dir);
    if (instance?.release === current) return { slot, instance };
  }
  return undefined;
}

/** The process groups a killed launchfit left that carry this deploy folder's mark. */
async function leftoverGroups(paths: DeployPaths): Promise<number[]> {
  const found: number[] = [];
  for (const pidFile of [paths.pidFile, paths.secondPidFile]) {
    const pgid = await readFile(pidFile, 'utf8').then(
      (t) => (JSON.parse(t) as { pgid: number }).pgid,
      () => 0,
    );
    const ours =
      pgid > 1 &&
      (await readFile(`/proc/${pgid}/environ`, 'latin1').then(
        (e) => isAppOf(e.split('\0'), paths.dir),
        () => false,
      ));
    if (ours) found.push(pgid);
  }
  return found;
}

/**
 * app.listen's sockets, taken from an instance a killed launchfit left running: they stay open
 * throughout, so no connection is refused (they wait in the backlog). From an adopted instance,
 * its own health socket too, which it goes on answering probes on. In the runner's order
 * (listen…, health a, health b); undefined when there is none, or they cannot be taken (said why).
 */
async function takeLeftoverSockets(
  paths: DeployPaths,
  config: LaunchConfig,
  log: Logger,
  groups: number[],
  adopt?: Adoption,
): Promise<Array<RawHandle | undefined> | undefined> {
  const perl = findPerl();
  const { listen } = config.app;
  if (!listen.length || !perl) return undefined;
  const health = adopt && config.app.health ? path.join(paths.meta, `health-${adopt.slot}.sock`) : undefined;
  const specs: ListenSpec[] = [...listen, ...(health ? [{ kind: 'unix' as const, path: health, text: health }] : [])];
  for (const pgid of groups) {
    const { handles, reason } = await takeSockets(pgid, specs, perl);
    if (handles) {
      log.info("took the app's listening sockets over from the instance a previous launchfit left", { pid: pgid });
      const own = handles[listen.length];
      return health
        ? [
            ...handles.slice(0, listen.length),
            adopt!.slot === 'a' ? own : undefined,
            adopt!.slot === 'b' ? own : undefined,
          ]
        : handles;
    }
    log.warn(
      `could not take the app's listening sockets over from the instance a previous launchfit left ` +
        `(${reason}); ${adopt ? 'not adopting it' : 'binding them again: connections are refused until then'}`,
      { pid: pgid },
    );
  }
  return undefined;
}

interface Recovered {
  pending: LaunchState['pending'];
  config: LaunchConfig;
  taken?: Array<RawHandle | undefined>;
  adopt?: Adoption;
}

/**
 * What a killed launchfit left behind: its hook, half-made folders, its apps. The instance that
 * serves the current release is adopted (with app.listen, only once its sockets are taken over);
 * any other is stopped, after its sockets were taken over.
 */
async function recoverDeployFolder(paths: DeployPaths, log: Logger): Promise<Recovered> {
  // First, before the clean-up and the next check run the hook again: a hook orphaned by a
  // killed launchfit must not run twice at once.
  await stopLeftoverHook(paths, log);
  const state = await readState(paths);
  const removed = await clearLeftovers(paths, state);
  if (removed.length) log.info('cleared leftovers of an interrupted run', { removed });
  const config = await loadEffectiveConfig(paths);
  let adopt = await instanceToAdopt(paths, state);
  let taken: Recovered['taken'];
  if (config.app.listen.length) {
    taken = adopt && (await takeLeftoverSockets(paths, config, log, [adopt.instance.pgid], adopt));
    if (!taken) {
      adopt = undefined;
      taken = await takeLeftoverSockets(paths, config, log, await leftoverGroups(paths));
    }
  }
  // Both slots: a launchfit killed during an overlapping update leaves two apps behind. Those
  // not adopted are stopped (their sockets are ours by now, or bound again after).
  for (const [slot, pidFile] of [
    ['a', paths.pidFile],
    ['b', paths.secondPidFile],
  ] as const) {
    if (adopt?.slot !== slot) await stopLeftoverApp(pidFile, paths.dir, config.app.killTimeoutSec * 1000, log);
  }
  // And whatever else carries the folder's mark: an app that escaped its instance before.
  const roots = [process.pid, ...(adopt ? [adopt.instance.pgid] : [])];
  const escaped = await endStrays(paths.dir, roots, config.app.killTimeoutSec * 1000);
  if (escaped.length)
    log.warn(`ended ${escaped.length} processes of the app a previous launchfit left outside its instances`, {
      pids: escaped.join(','),
    });
  return { pending: state.pending, config, taken, adopt };
}

/** `launchfit run` in a locked, recovered deploy folder: the app, the checks, the control socket and listener. */
class Launcher {
  private readonly opts: LauncherOptions;
  private readonly log: Logger;
  private readonly paths: DeployPaths;
  /** Re-read before each check and each start of the app. */
  private config: LaunchConfig;
  private runner: AppRunner | undefined;
  private readonly updates = new UpdateQueue((force, verdict) => this.runCheck(force, verdict));
  /** The control socket and listener, closed first when stopping. */
  private readonly closers: Array<() => Promise<void>> = [];
  private stopped = false;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Checks in a row the update server failed (did not answer, or answered an error). */
  private serverFailures = 0;
  /** updates.report: signed reports sent in the background (report.ts). */
  private readonly reporter: Reporter;

  constructor(opts: LauncherOptions, paths: DeployPaths, config: LaunchConfig) {
    this.opts = opts;
    this.reporter = new Reporter({ paths, log: opts.log });
    this.log = opts.log;
    this.paths = paths;
    this.config = config;
  }

  /** Until the stop signal, then a clean stop. */
  async run(pending: LaunchState['pending'], taken?: Array<RawHandle | undefined>, adopt?: Adoption): Promise<void> {
    const { paths, log } = this;
    this.runner = await createAppRunner({
      paths,
      log,
      echo: this.opts.echo,
      config: this.config,
      taken,
      adopt,
      loadConfig: async (release) => (this.config = await loadEffectiveConfig(paths, release)),
      onUnhealthy: (release) =>
        void this.updates
          .exclusive(async () => {
            if (!this.stopped) await restartUnhealthy(this.context(), release);
          })
          .catch((error) => log.error(`restarting the unhealthy app failed: ${messageOf(error)}`)),
      onCrashLoop: (release, failure) =>
        void this.updates
          .exclusive(async () => {
            if (!this.stopped) await goBackFromCrashLoop(this.context(), release, failure);
          })
          .catch((error) => log.error(`going back from the crashing release failed: ${messageOf(error)}`)),
    });
    const current = await this.startApp(this.runner, pending);
    await updateState(paths, (s) => {
      s.pending = undefined;
    });
    const listenUrl = await this.startControl(current);
    this.opts.onReady?.({ socket: paths.socket, listenUrl });
    void this.report('running', '', 0);
    if (this.config.updates.server) this.schedule(true);
    else log.warn('updates.server is not set; not polling');
    await this.opts.stopSignal;
    await this.stop();
  }

  /** Whatever is still open (after a failure too), then the app; errors are logged. */
  async close(): Promise<void> {
    await this.closeListeners();
    await this.runner?.close().catch((error) => this.log.warn(`stopping the app failed: ${messageOf(error)}`));
  }

  private async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.log.info('stopping');
    await this.closeListeners();
    await Promise.race([this.updates.idle(), new Promise((r) => setTimeout(r, 30_000))]);
    await Promise.race([this.reporter.idle(), new Promise((r) => setTimeout(r, 3000))]);
    await this.runner!.close();
  }

  private async closeListeners(): Promise<void> {
    for (const close of this.closers.splice(0))
      await close().catch((error) => this.log.warn(`stopping a listener failed: ${messageOf(error)}`));
  }

  private context(verdict?: VerdictFn): UpdateContext {
    return {
      paths: this.paths,
      config: this.config,
      log: this.log,
      app: this.runner,
      fetchImpl: this.opts.fetchImpl,
      verdict,
    };
  }

  /** A crash between a swap and its health check: the first start is that health check. */
  private async startApp(app: AppControl, pending: LaunchState['pending']): Promise<string | undefined> {
    const current = await readCurrent(this.paths);
    if (!current) {
      this.log.info('nothing installed yet; checking for updates');
      return current;
    }
    const healthy = await app.start(Boolean(pending && pending.to === current));
    if (!healthy && pending?.from && pending.to === current) await this.goBack(app, current, pending.from);
    else if (healthy && pending?.to === current) await this.finishSwitch(current, pending.from);
    return current;
  }

  /** The interrupted update's release failed its first start: the previous one again, this one marked bad. */
  private async goBack(app: AppControl, current: string, from: string): Promise<void> {
    const { paths } = this;
    this.log.error(
      `release ${current} ${app.lastFailure?.()?.reason ?? 'did not stay up'} after an interrupted update; going back to ${from}`,
    );
    await swapCurrentSymlink(paths, from);
    await updateState(paths, (s) => {
      const v = s.installed[current]?.version;
      if (v && !s.bad.includes(v)) s.bad.push(v);
      delete s.installed[current];
      s.pending = undefined;
    });
    await removeRelease(paths, current);
    await app.start(false);
  }

  private async finishSwitch(current: string, from: string | undefined): Promise<void> {
    await updateState(this.paths, (s) => {
      const v = s.installed[current]?.version;
      if (from) s.previous = from;
      if (v && (!s.highest || compareVersions(v, s.highest) > 0)) s.highest = v;
    });
  }

  private async runCheck(force: boolean, verdict?: VerdictFn): Promise<CheckResult> {
    const started = Date.now();
    const before = await this.currentVersion();
    // The check's work (and a new instance's start) must not slow the serving instance's answers.
    const endRaise = this.runner?.raiseServing();
    try {
      this.config = await loadEffectiveConfig(this.paths); // launchify.yml edits apply from the next check on
      const result = await checkForUpdates(this.context(verdict), { force });
      // A poll that found nothing new (not modified, up to date) is debug: one line a poll otherwise.
      if (result.action === 'not-modified' || result.action === 'up-to-date')
        this.log.debug(result.message, { action: result.action });
      else this.log.info(result.message, { action: result.action });
      const outcome = reportOfCheck(result, undefined);
      if (outcome)
        void this.report(outcome.result, outcome.reason, (Date.now() - started) / 1000, result.version, before);
      return result;
    } catch (error) {
      this.log.error(`update check failed: ${messageOf(error)}`);
      const outcome = reportOfCheck(undefined, error);
      if (outcome) void this.report(outcome.result, outcome.reason, (Date.now() - started) / 1000, undefined, before);
      throw error;
    } finally {
      endRaise?.();
    }
  }

  /** The fleet master's prepare: the offered release staged, not switched to (checkForUpdates' `stage`). */
  private async runStage(): Promise<CheckResult> {
    // Download, verification and extraction while the app serves: as in runCheck.
    const endRaise = this.runner?.raiseServing();
    try {
      this.config = await loadEffectiveConfig(this.paths);
      const result = await checkForUpdates(this.context(), { force: true, stage: true });
      if (result.action !== 'staged') this.log.info(result.message, { action: result.action });
      return result;
    } catch (error) {
      this.log.error(`prepare failed: ${messageOf(error)}`);
      throw error;
    } finally {
      endRaise?.();
    }
  }

  private async currentVersion(): Promise<string | undefined> {
    const current = await readCurrent(this.paths);
    return current ? (await readState(this.paths)).installed[current]?.version : undefined;
  }

  /** Queue a report to updates.report (nothing without it); never throws, never waits for the send. */
  private async report(
    result: ReportResult,
    reason: string,
    seconds: number,
    version?: string,
    previous?: string,
  ): Promise<void> {
    if (!this.config.updates.report) return;
    try {
      const state = await readState(this.paths);
      const host = await ensureHostId(this.paths);
      const app = state.binding?.app ?? this.config.updates.app ?? path.basename(this.paths.dir);
      const now = version ?? (await this.currentVersion()) ?? '0';
      // The digest it verified of the release it names, when it installed one of that version.
      const release = Object.values(state.installed).findLast((r) => r.version === now);
      const install = result === 'updated' && state.lastInstall?.version === now ? state.lastInstall : undefined;
      this.reporter.send(this.config, {
        app,
        host,
        version: now,
        previous: previous === now ? undefined : previous,
        seq: state.seq?.seq,
        sha256: release?.sha256,
        result,
        reason,
        seconds,
        way: install?.way,
        bytes: install?.bytes,
      });
    } catch (error) {
      this.log.warn(`report not sent: ${messageOf(error)}`);
    }
  }

  /** The control socket, and the TCP listener if control.listen is set (its URL then). */
  private async startControl(current: string | undefined): Promise<string | undefined> {
    const handlers: ControlHandlers = {
      status: async (): Promise<Status> => collectStatus(this.paths, this.runner!.info()),
      update: (options) =>
        options?.verdict ? this.updates.requestVerdict(options) : this.updates.requestCheck(options),
      prepare: () => this.updates.exclusive(() => this.runStage()),
      rollback: (version, options) =>
        this.updates.exclusive(async () => {
          await refuseBadTarget(this.paths, version, Boolean(options?.force));
          return rollbackRelease(this.context(), { version });
        }),
    };
    const socket = await startControlSocket(this.paths.socket, handlers, this.log, await this.socketOwner());
    this.closers.push(() => socket.close());
    const listen = this.config.control.listen;
    return listen ? this.startFleetListener(handlers, listen, current) : undefined;
  }

  /** The deploy folder's owner, who alone reaches the control socket (the app, as app.user, does not). */
  private async socketOwner(): Promise<{ uid: number; gid: number }> {
    const { uid, gid } = await stat(this.paths.dir);
    const app = this.config.app.account;
    if (app && app.uid === uid)
      this.log.warn(
        `app.user ${app.name} owns the deploy folder, so the app can reach the control socket; let another user own it`,
      );
    return { uid, gid };
  }

  /** The signed listener `server-update APP` reaches this host on. */
  private async startFleetListener(
    handlers: ControlHandlers,
    listen: string,
    current: string | undefined,
  ): Promise<string> {
    const { paths, config } = this;
    const secret = await resolveSecret(config.control.secret, {
      baseDir: paths.dir,
      where: `${config.file}: control.secret`,
    });
    // The app is named by the deploy folder, or by the release name's APP prefix
    // (my-app-gnu-linux-1.2 answers to my-app, as `server-update my-app` sends it).
    let currentName = current;
    const accepts = (name: string) => name === path.basename(paths.dir) || Boolean(currentName?.startsWith(`${name}-`));
    const listener = await startControlListener(handlers, { listen, secret, accepts, log: this.log });
    const timer = setInterval(() => {
      void readCurrent(paths).then((c) => {
        currentName = c;
      });
    }, 1000);
    this.closers.push(async () => {
      clearInterval(timer);
      await listener.close(1000);
    });
    return listener.url;
  }

  /** Polling with jitter, backing off while the update server fails (poll-delay.ts). */
  private schedule(first = false): void {
    if (this.stopped) return;
    const base = this.opts.intervalMs ?? this.config.updates.intervalSec * 1000;
    // The first check comes soon after start (a fresh deploy folder, or updates missed while
    // down), unless the interval was overridden (tests, benchmarks).
    const delay =
      first && this.opts.intervalMs === undefined ? Math.min(base, 1000) : nextPollDelayMs(base, this.serverFailures);
    if (this.serverFailures > 0)
      this.log.warn(
        `the update server failed ${this.serverFailures} time(s) in a row; the current release keeps ` +
          `serving; next check in ${Math.round(delay / 100) / 10} s`,
      );
    this.pollTimer = setTimeout(() => {
      void this.updates
        .requestCheck()
        .then(
          () => {
            this.serverFailures = 0;
          },
          (error) => {
            this.serverFailures = error instanceof RemoteError ? this.serverFailures + 1 : 0;
          },
        )
        .finally(() => this.schedule());
    }, delay);
  }
}
