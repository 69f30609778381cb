// The app as `launchfit run` drives it: up to two supervised instances ("slots"), so that with
// app.listen the new release starts beside the old one on the same sockets and takes over only
// once healthy.
// The whole story: docs/internals.md.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../core/log.ts';
import { secretVariables } from '../deploy-folder/app-env.ts';
import { startDeadlineSec, type AppConfig, type LaunchConfig } from '../deploy-folder/config.ts';
import {
  createProber,
  describeProbe,
  probeHealth,
  waitUntilHealthy,
  watchHealth,
  type HealthWait,
  type HealthWatch,
  type ProbeAnswer,
  type Prober,
} from './health.ts';
import { updateBoost } from './priority.ts';
import { bindSockets, type BoundSocket, type RawHandle, type SocketSet } from './sockets.ts';
import type { ListenSpec } from '../deploy-folder/listen-spec.ts';
import type { LeftInstance } from './instance.ts';
import type { DeployPaths, StartFailure } from '../deploy-folder/state.ts';
import { createRotatingLog, createSupervisor, type AppInfo, type RotatingLog, type Supervisor } from './supervisor.ts';
import { readCurrent } from '../deploy-folder/current-link.ts';
import type { AppControl } from '../install/context.ts';

interface Slot {
  id: 'a' | 'b';
  pidFile: string;
  healthSocket?: string;
  /** The release folder (under releases/) the instance runs in. */
  release?: string;
  sup?: Supervisor;
  watch?: HealthWatch;
  /** Its health probes' kept-alive connection, for the URL and socket it was made for. */
  prober?: { key: string; prober: Prober };
  /** Set when the slot passed a start on probation (a switch): its crashes are counted until one run lasts app.stable_after. */
  switched?: { crashes: number };
}

/** Exits of a newly switched-to release, each before a run lasted app.stable_after, that send launchfit back. */
export const CRASHES_TO_GO_BACK = 2;

/** An instance and the release it runs (what serves, whatever `current` says). */
export type InstanceInfo = AppInfo & { release?: string };

export interface RunnerInfo {
  app?: InstanceInfo;
  /** Both instances while an update overlaps them. */
  instances: InstanceInfo[];
  sockets: string[];
  health?: { url: string; last?: string; ok?: boolean; failuresInARow: number };
}

export interface AppRunner extends AppControl {
  info(): RunnerInfo;
  /**
   * For the length of a check: the serving instance (and one promoted meanwhile) runs above
   * launchfit's own CPU priority, so the update's work does not slow its answers (priority.ts).
   * Returns the end of it. Does nothing where launchfit may not raise a priority.
   */
  raiseServing(): () => void;
  /** Stop every instance and close the sockets. */
  close(): Promise<void>;
}

export interface RunnerOptions {
  paths: DeployPaths;
  log: Logger;
  echo?: NodeJS.WritableStream;
  /** The effective config for a release, re-read at each start (launchify.yml edits apply to the next start). */
  loadConfig(release: string | undefined): Promise<LaunchConfig>;
  /** The config `run` started with: it decides the sockets, which are bound once. */
  config: LaunchConfig;
  /** Sockets taken over from an instance a killed launchfit left (sockets.ts takeSockets): app.listen's, then slot a's and b's health socket. */
  taken?: Array<RawHandle | undefined>;
  /** The instance a killed launchfit left serving the current release: supervised in its slot instead of started. */
  adopt?: { slot: 'a' | 'b'; instance: LeftInstance };
  /**
   * The serving instance of `release` failed `app.health.failures` probes in a row: a crash.
   * Without it, the instance is restarted (off probation).
   */
  onUnhealthy?(release: string | undefined): void;
  /**
   * The serving instance of `release`, started by a switch, exited CRASHES_TO_GO_BACK times (once
   * without app.forever) before any run lasted app.stable_after: go back (docs/launchfit.md).
   * Without it, the supervisor's backoff goes on.
   */
  onCrashLoop?(release: string | undefined, failure: StartFailure): void;
}

/** Bind app.listen (and the per-slot health sockets) and return the runner. Throws ConfigError on a bind failure, nothing started. */
export async function createAppRunner(opts: RunnerOptions): Promise<AppRunner> {
  const listen = opts.config.app.listen;
  const slots = slotsOf(opts.paths, listen.length > 0);
  const sockets = await bindAppSockets(listen, slots, opts.log, opts.taken);
  const runner = new AppSlotRunner(opts, slots, sockets);
  if (opts.adopt) runner.adopt(opts.adopt.slot, opts.adopt.instance);
  return runner;
}

function slotsOf(paths: DeployPaths, listening: boolean): Slot[] {
  return [
    { id: 'a', pidFile: paths.pidFile, healthSocket: listening ? path.join(paths.meta, 'health-a.sock') : undefined },
    {
      id: 'b',
      pidFile: paths.secondPidFile,
      healthSocket: listening ? path.join(paths.meta, 'health-b.sock') : undefined,
    },
  ];
}

interface HealthViaPort {
  known(): boolean;
  remember(): void;
}

/** Whether the app was seen not to serve its health socket: kept in DEPLOY/.launchfit/health-via-port. */
function healthViaPort(paths: DeployPaths): HealthViaPort {
  const file = path.join(paths.meta, 'health-via-port');
  let known = existsSync(file);
  return {
    known: () => known,
    remember() {
      known = true;
      try {
        writeFileSync(file, 'the app does not answer on its health socket: its port is probed\n');
      } catch {
        // Kept for this run only: the next one finds it out again.
      }
    },
  };
}

/** The app's listening sockets, then one health socket per slot; none without app.listen. */
async function bindAppSockets(
  listen: ListenSpec[],
  slots: Slot[],
  log: Logger,
  taken: Array<RawHandle | undefined> = [],
): Promise<SocketSet | undefined> {
  if (!listen.length) return undefined;
  const sockets = await bindSockets(
    [
      ...listen.map((spec) => ({ spec, name: 'listen' })),
      ...slots.map((s) => ({
        spec: { kind: 'unix' as const, path: s.healthSocket!, text: s.healthSocket! },
        name: 'health',
      })),
    ],
    taken,
  );
  log.info('listening for the app', { sockets: listen.map((s) => s.text) });
  return sockets;
}

/** Why a start on probation failed, for the log and `status`. */
function describeFailure(
  sup: Supervisor,
  a: AppConfig,
  wait: HealthWait | undefined,
  listening: boolean,
): StartFailure {
  const probes = (wait?.answers ?? []).map((p) => `${p.at} ${describeProbe(p)}`);
  const exited = sup.info().state === 'exited' || wait?.reason === 'exited';
  const passed = wait?.passedAfterMs !== undefined ? ' after its health check first passed' : '';
  const last = wait?.answers.at(-1);
  const lastText = last ? ` (last: ${describeProbe(last)})` : '';
  const reason = exited
    ? a.healthyAfterSec > 0 || !a.health
      ? `did not stay up for ${a.healthyAfterSec} s${passed}`
      : `exited before it answered its health check ${a.health.url} with a 2xx`
    : wait?.reason === 'failed'
      ? `failed its health check ${a.health!.url} within ${a.healthyAfterSec} s${passed}${lastText}`
      : `did not answer its health check ${a.health!.url} with a 2xx within ${startDeadlineSec(a)} s${lastText}`;
  const output = sup.info().tail;
  const unanswered =
    listening && last?.error?.startsWith('no answer within') && !exited
      ? ' (probed over its private health socket, the fd named health in LISTEN_FDNAMES: ' +
        'an app under app.listen serves HTTP on every fd from 3)'
      : '';
  const bound =
    output.some((l) => /EADDRINUSE/.test(l)) && listening
      ? ' (its output shows EADDRINUSE: the app binds the port itself instead of using the sockets ' +
        'launchfit hands it as fds 3… with LISTEN_FDS)'
      : '';
  return { reason: `${reason}${unanswered}${bound}`, probes, output };
}

/** The two slots: `active` serves, the other takes an overlapping update's new release. */
class AppSlotRunner implements AppRunner {
  private readonly opts: RunnerOptions;
  private readonly log: Logger;
  /** Re-read at each start. */
  private config: LaunchConfig;
  /** Bound once, from the config `run` started with. */
  private readonly listen: ListenSpec[];
  private readonly slots: Slot[];
  private readonly sockets: SocketSet | undefined;
  private readonly output: RotatingLog;
  private active: Slot;
  private failure: StartFailure | undefined;
  private closed = false;
  /** How far the serving instance is raised above launchfit's CPU priority during a check (priority.ts); 0: not at all. */
  private readonly boost = updateBoost();
  private boosted = false;
  /** The app was seen not to serve its health socket (portProbe). */
  private readonly healthViaPort: HealthViaPort;
  readonly overlap: AppControl['overlap'];

  constructor(opts: RunnerOptions, slots: Slot[], sockets: SocketSet | undefined) {
    this.opts = opts;
    this.log = opts.log;
    this.config = opts.config;
    this.listen = opts.config.app.listen;
    this.slots = slots;
    this.sockets = sockets;
    this.output = createRotatingLog(opts.paths.appLog, opts.config.app.logMaxBytes, opts.config.app.logKeep);
    this.active = slots[0];
    this.healthViaPort = healthViaPort(opts.paths);
    this.overlap = this.listen.length
      ? {
          startNext: async () => {
            await this.learnHealthWay(this.active);
            return this.startSlot(this.other(), true);
          },
          promoteNext: () => this.promoteNext(),
          dropNext: () => this.stopSlot(this.other()),
        }
      : undefined;
  }

  start(probation: boolean): Promise<boolean> {
    return this.startSlot(this.active, probation);
  }

  /** The serving instance is one a killed launchfit left in `id`'s slot: a start then finds it running. */
  adopt(id: 'a' | 'b', instance: LeftInstance): void {
    this.active = this.slots.find((s) => s.id === id)!;
    this.active.release = instance.release;
    this.supervisorOf(this.active).adopt(instance);
  }

  stop(): Promise<void> {
    return this.stopSlot(this.active);
  }

  lastFailure(): StartFailure | undefined {
    return this.failure;
  }

  raiseServing(): () => void {
    if (!this.boost || this.boosted) return () => {};
    this.boosted = true;
    this.active.sup?.setPriority(this.boost);
    return () => {
      this.boosted = false;
      for (const slot of this.slots) slot.sup?.setPriority(0);
    };
  }

  info(): RunnerInfo {
    const instances = this.slots
      .filter((s) => s.sup && s.sup.info().state !== 'stopped')
      .map((s) => ({ ...s.sup!.info(), release: s.release }));
    const { health } = this.config.app;
    const last = this.active.watch?.last();
    return {
      app: this.active.sup && { ...this.active.sup.info(), release: this.active.release },
      instances,
      sockets: this.listen.map((s) => s.text),
      health: health
        ? {
            url: health.url,
            last: last && describeProbe(last),
            ok: last?.ok,
            failuresInARow: this.active.watch?.failuresInARow() ?? 0,
          }
        : undefined,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const slot of this.slots) await this.stopSlot(slot);
    this.output.close();
    await this.sockets?.close();
  }

  private other(): Slot {
    return this.slots[this.slots.indexOf(this.active) ^ 1];
  }

  private async promoteNext(): Promise<void> {
    const old = this.active;
    this.active = this.other();
    // It takes over every connection while the old one drains and the check ends.
    if (this.boosted) this.active.sup?.setPriority(this.boost);
    const a = this.config.app;
    await this.stopSlot(old, (a.drainSec ?? a.killTimeoutSec) * 1000);
  }

  /**
   * Probes of the slot's instance, over one kept-alive connection (health.ts createProber): over
   * its health socket, or over the port once the app was seen not to serve that (portProbe).
   */
  private probeOf(slot: Slot): (timeoutMs: number) => Promise<ProbeAnswer> {
    return async (timeoutMs) => {
      const viaSocket = this.listen.length > 0 && !this.healthViaPort.known();
      const answer = await this.proberOf(slot, viaSocket).probe(timeoutMs);
      return viaSocket ? this.portProbe(slot, answer, timeoutMs) : answer;
    };
  }

  private proberOf(slot: Slot, viaSocket: boolean): Prober {
    const target = { url: this.config.app.health!.url, socketPath: viaSocket ? slot.healthSocket : undefined };
    const key = `${target.url} ${target.socketPath ?? ''}`;
    if (slot.prober?.key !== key) {
      slot.prober?.prober.close();
      slot.prober = { key, prober: createProber(target) };
    }
    return slot.prober.prober;
  }

  /**
   * Before a new instance starts beside `serving`, while that one still runs alone: one probe of
   * it, so that an app that serves fd 3 alone is found out now (portProbe) and the new instance's
   * check goes over the port. A first start is not checked and the watch's first probe comes an
   * `interval` later: an update sooner than that (a preview's push right after it opened) would
   * otherwise wait on a health socket nobody serves until the start deadline, then roll back.
   * Where the way is known (the file kept) or there is no health check over app.listen: nothing.
   */
  private async learnHealthWay(serving: Slot): Promise<void> {
    const health = this.config.app.health;
    const state = serving.sup?.info().state;
    if (!health || !this.listen.length || this.healthViaPort.known() || state !== 'running') return;
    await this.probeOf(serving)(health.timeoutSec * 1000);
  }

  /**
   * An app that serves fd 3 alone (`listen({fd: 3})`) never answers on its health socket. When a
   * probe there gets no answer while the instance runs alone, the URL is probed over TCP: a 2xx
   * there, and still none on the socket, means the app does not serve it, and from then on (kept
   * in DEPLOY/.launchfit) its port is probed. That is weaker in one case, said in the log: during a
   * switch the answer may come from the old instance sharing the port.
   */
  private async portProbe(slot: Slot, answer: ProbeAnswer, timeoutMs: number): Promise<ProbeAnswer> {
    const other = this.slots[this.slots.indexOf(slot) ^ 1].sup?.info().state;
    if (answer.ok || !answer.error?.startsWith('no answer within') || other === 'running' || other === 'backoff')
      return answer;
    const url = this.config.app.health!.url;
    const viaPort = await probeHealth({ url, timeoutMs });
    if (!viaPort.ok) return answer;
    const again = await this.proberOf(slot, true).probe(Math.min(timeoutMs, 1000));
    if (again.ok) return again;
    this.healthViaPort.remember();
    this.log.warn(
      `the app does not answer its health check on its private health socket (the fd named health, ` +
        `after the ones app.listen names): from now on ${url} is probed over TCP, where during an ` +
        `update the old instance may answer for the new one; serve HTTP on every fd from 3 (LISTEN_FDS)`,
    );
    return viaPort;
  }

  private healthFd(slot: Slot): BoundSocket | undefined {
    return this.sockets?.sockets[this.listen.length + this.slots.indexOf(slot)];
  }

  private supervisorOf(slot: Slot): Supervisor {
    const { paths } = this.opts;
    const a = this.config.app;
    const listeners = this.sockets?.sockets.slice(0, this.listen.length) ?? [];
    const health = a.health && this.listen.length ? this.healthFd(slot) : undefined;
    const cwd = slot.release ? path.join(paths.releases, slot.release) : paths.current;
    const settings = {
      exec: a.exec ?? 'true',
      cwd,
      env: a.env,
      account: a.account,
      kill: a.kill,
      withheld: secretVariables([this.config.control.secret, this.config.updates.report?.secret]),
      killTimeoutMs: a.killTimeoutSec * 1000,
      forever: a.forever,
      backoffMaxMs: a.backoffMaxSec * 1000,
      stableAfterMs: a.stableAfterSec * 1000,
      maxRestarts: a.maxRestarts,
      sockets: [...listeners, ...(health ? [health] : [])].map((s) => ({ fd: s.fd, name: s.name })),
      onCrash: (uptimeMs: number, restarting: boolean) => this.crashed(slot, uptimeMs, restarting),
    };
    slot.sup ??= createSupervisor({
      ...settings,
      dir: paths.dir,
      appLog: paths.appLog,
      logMaxBytes: a.logMaxBytes,
      logKeep: a.logKeep,
      pidFile: slot.pidFile,
      log: this.listen.length ? this.log.child({ instance: slot.id }) : this.log,
      echo: this.opts.echo,
      output: this.output,
    });
    slot.sup.setOptions(settings);
    return slot.sup;
  }

  /**
   * Start a slot in the release `current` points at (a running one keeps its release); with
   * probation, wait until it is healthy (see waitUntilHealthy, or without app.health that it
   * stays up). One that is not is stopped, and why is recorded.
   */
  private async startSlot(slot: Slot, probation: boolean): Promise<boolean> {
    const running = slot.sup && ['running', 'backoff'].includes(slot.sup.info().state);
    if (!running) slot.release = await readCurrent(this.opts.paths);
    this.config = await this.opts.loadConfig(slot.release);
    const a = this.config.app;
    this.failure = undefined;
    slot.switched = undefined;
    if (!a.exec) {
      this.log.warn("app.exec is not set in launchify.yml (nor in the release's); nothing to run");
      return true;
    }
    const sup = this.supervisorOf(slot);
    let waiting: Promise<HealthWait> | undefined;
    const check =
      probation && a.health
        ? async (exited: Promise<void>) => {
            const health = a.health!;
            waiting = waitUntilHealthy({
              probe: this.probeOf(slot),
              timeoutMs: health.timeoutSec * 1000,
              intervalMs: health.intervalSec * 1000,
              deadlineMs: startDeadlineSec(a) * 1000,
              holdMs: a.healthyAfterSec * 1000,
              exited,
            });
            return (await waiting).healthy;
          }
        : undefined;
    const healthy = await sup.start(probation && !check ? a.healthyAfterSec * 1000 : 0, check);
    if (!healthy) {
      // An exit fails the start at once; the wait ends with it (it watches the same exit). A
      // refused or reset probe is most often the app exiting: its port closes (or the probe's
      // connection is cut mid-answer) before its instance (the wrapper, which first ends what
      // the app left) has exited; that exit gets a moment.
      const wait = await waiting;
      const refused =
        wait?.reason === 'failed' && /ECONNREFUSED|ECONNRESET|socket hang up/.test(wait.answers.at(-1)?.error ?? '');
      const exited = refused && (await sup.exitedWithin(1000));
      this.failure = describeFailure(sup, a, exited ? { ...wait, reason: 'exited' } : wait, this.listen.length > 0);
      await this.stopSlot(slot);
      return false;
    }
    slot.switched = probation ? { crashes: 0 } : undefined;
    if (a.health) this.watchSlot(slot);
    return true;
  }

  /**
   * A crash of a slot's instance: the serving one, newly switched to, crashing again goes back;
   * without `forever` (nothing restarts it) its first crash does.
   */
  private crashed(slot: Slot, uptimeMs: number, restarting: boolean): void {
    const stableSec = this.config.app.stableAfterSec;
    if (slot !== this.active || !slot.switched || this.closed) return;
    if (uptimeMs >= stableSec * 1000) {
      slot.switched = undefined;
      return;
    }
    ++slot.switched.crashes;
    if ((restarting && slot.switched.crashes < CRASHES_TO_GO_BACK) || !this.opts.onCrashLoop) return;
    const reason = restarting
      ? `exited ${slot.switched.crashes} times after the switch before it stayed up ${stableSec} s (app.stable_after)`
      : `exited ${(uptimeMs / 1000).toFixed(1)} s after it started, before it stayed up ${stableSec} s (app.stable_after), and app.forever is off`;
    slot.switched = undefined;
    this.log.error(`release ${slot.release} ${reason}; going back`, { release: slot.release });
    this.opts.onCrashLoop(slot.release, { reason, probes: [], output: slot.sup?.info().tail ?? [] });
  }

  private watchSlot(slot: Slot): void {
    slot.watch?.stop();
    const health = this.config.app.health!;
    slot.watch = watchHealth({
      probe: () => this.probeOf(slot)(health.timeoutSec * 1000),
      intervalMs: health.intervalSec * 1000,
      failures: health.failures,
      onUnhealthy: async (answers) => {
        const info = slot.sup?.info();
        // A process (re)started less than its start deadline (or healthy_after) ago is still starting.
        const a = this.config.app;
        if (
          !info?.startedAt ||
          info.state !== 'running' ||
          Date.now() - Date.parse(info.startedAt) < Math.max(startDeadlineSec(a), a.healthyAfterSec) * 1000
        )
          return;
        this.log.warn(`the app failed ${answers.length} health checks in a row; restarting it`, {
          pid: info.pid,
          release: slot.release,
          last: describeProbe(answers.at(-1)!),
        });
        if (!this.opts.onUnhealthy) return slot.sup?.restart();
        slot.watch?.stop();
        this.opts.onUnhealthy(slot.release);
      },
    });
  }

  private async stopSlot(slot: Slot, killTimeoutMs?: number): Promise<void> {
    slot.watch?.stop();
    slot.watch = undefined;
    // The probes' kept connection is closed first: an app that drains waits for its open connections.
    slot.prober?.prober.close();
    slot.prober = undefined;
    if (!slot.sup) return;
    if (killTimeoutMs !== undefined) slot.sup.setOptions({ killTimeoutMs });
    await slot.sup.stop();
  }
}
