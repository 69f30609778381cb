// The app as `launchfit run` drives it: up to two supervised instances ("slots") so that, with
// app.listen, the new release can start beside the old one on the same sockets and take over
// only once healthy. Each slot has its own pid file and, with an HTTP health check, its own
// private health socket; the listening sockets are shared.
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import type { LaunchConfig } from './config.ts';
import { describeProbe, probeHealth, waitUntilHealthy, watchHealth, type HealthWatch, type ProbeAnswer } from './health.ts';
import { bindSockets, type SocketSet } from './sockets.ts';
import type { DeployPaths, StartFailure } from './state.ts';
import { createRotatingLog, createSupervisor, type AppInfo, type Supervisor } from './supervisor.ts';
import type { AppControl } from './update.ts';

interface Slot {
  id: 'a' | 'b';
  pidFile: string;
  healthSocket?: string;
  sup?: Supervisor;
  watch?: HealthWatch;
}

export interface RunnerInfo {
  app?: AppInfo;
  /** Both instances while an update overlaps them. */
  instances: AppInfo[];
  sockets: string[];
  health?: { url: string; last?: string; ok?: boolean; failuresInARow: number };
}

export interface AppRunner extends AppControl {
  info(): RunnerInfo;
  /** Stop every instance and close the sockets. */
  close(): Promise<void>;
}

export interface RunnerOptions {
  paths: DeployPaths;
  log: Logger;
  echo?: NodeJS.WritableStream;
  /** The effective config, re-read at each start (launchify.yml edits apply to the next start). */
  loadConfig(): Promise<LaunchConfig>;
  /** The config `run` started with: it decides the sockets, which are bound once. */
  config: LaunchConfig;
}

/** Bind app.listen (and the per-slot health sockets) and return the runner. Throws ConfigError on a bind failure, nothing started. */
export async function createAppRunner(opts: RunnerOptions): Promise<AppRunner> {
  const { paths, log } = opts;
  let config = opts.config;
  const listen = config.app.listen;
  const slots: Slot[] = [
    { id: 'a', pidFile: paths.pidFile, healthSocket: listen.length ? path.join(paths.meta, 'health-a.sock') : undefined },
    { id: 'b', pidFile: paths.secondPidFile, healthSocket: listen.length ? path.join(paths.meta, 'health-b.sock') : undefined },
  ];
  let sockets: SocketSet | undefined;
  if (listen.length) {
    sockets = await bindSockets([
      ...listen.map((spec) => ({ spec, name: 'listen' })),
      ...slots.map((s) => ({ spec: { kind: 'unix' as const, path: s.healthSocket!, text: s.healthSocket! }, name: 'health' })),
    ]);
    log.info('listening for the app', { sockets: listen.map((s) => s.text) });
  }
  const listeners = sockets?.sockets.slice(0, listen.length) ?? [];
  const healthFd = (slot: Slot) => sockets?.sockets[listen.length + slots.indexOf(slot)];
  const output = createRotatingLog(paths.appLog, config.app.logMaxBytes, config.app.logKeep);
  let active = slots[0];
  let lastFailure: StartFailure | undefined;
  let closed = false;

  const probeOf = (slot: Slot) => (timeoutMs: number): Promise<ProbeAnswer> => {
    const health = config.app.health!;
    return probeHealth({ url: health.url, socketPath: listen.length ? slot.healthSocket : undefined, timeoutMs });
  };

  function supervisorOf(slot: Slot): Supervisor {
    const a = config.app;
    const health = a.health && listen.length ? healthFd(slot) : undefined;
    const settings = {
      exec: a.exec ?? 'true', cwd: paths.current, env: a.env, kill: a.kill, killTimeoutMs: a.killTimeoutSec * 1000, forever: a.forever,
      backoffMaxMs: a.backoffMaxSec * 1000, stableAfterMs: a.stableAfterSec * 1000, maxRestarts: a.maxRestarts,
      sockets: [...listeners, ...(health ? [health] : [])].map((s) => ({ fd: s.fd, name: s.name })),
    };
    slot.sup ??= createSupervisor({
      ...settings, dir: paths.dir, appLog: paths.appLog, logMaxBytes: a.logMaxBytes, logKeep: a.logKeep, pidFile: slot.pidFile,
      log: log.child({ app: true, ...(listen.length ? { instance: slot.id } : {}) }), echo: opts.echo, output,
    });
    slot.sup.setOptions(settings);
    return slot.sup;
  }

  /** Start a slot; with probation, wait for health (or for it to stay up) and record why it failed. */
  async function startSlot(slot: Slot, probation: boolean): Promise<boolean> {
    config = await opts.loadConfig();
    const a = config.app;
    lastFailure = undefined;
    if (!a.exec) {
      log.warn('app.exec is not set in launchify.yml (nor in the release\'s); nothing to run');
      return true;
    }
    const sup = supervisorOf(slot);
    let wait: Awaited<ReturnType<typeof waitUntilHealthy>> | undefined;
    const check = probation && a.health
      ? async (exited: Promise<void>) => {
        wait = await waitUntilHealthy({ probe: probeOf(slot), timeoutMs: a.health!.timeoutSec * 1000, intervalMs: a.health!.intervalSec * 1000, deadlineMs: a.healthyAfterSec * 1000, exited });
        return wait.healthy;
      }
      : undefined;
    const healthy = await sup.start(probation && !check ? a.healthyAfterSec * 1000 : 0, check);
    if (!healthy) {
      const probes = (wait?.answers ?? []).map((p) => `${p.at} ${describeProbe(p)}`);
      const exited = sup.info().state === 'exited' || wait?.reason === 'exited';
      const last = wait?.answers.at(-1);
      const reason = exited
        ? `did not stay up for ${a.healthyAfterSec} s`
        : `did not answer its health check ${a.health!.url} with a 2xx within ${a.healthyAfterSec} s${last ? ` (last: ${describeProbe(last)})` : ''}`;
      const output = sup.info().tail;
      const bound = output.some((l) => /EADDRINUSE/.test(l)) && listen.length
        ? ' (its output shows EADDRINUSE: the app binds the port itself instead of using the sockets launchfit hands it as fds 3… with LISTEN_FDS)'
        : '';
      lastFailure = { reason: `${reason}${bound}`, probes, output };
      return false;
    }
    if (a.health) watchSlot(slot);
    return true;
  }

  function watchSlot(slot: Slot): void {
    slot.watch?.stop();
    const health = config.app.health!;
    slot.watch = watchHealth({
      probe: () => probeOf(slot)(health.timeoutSec * 1000), intervalMs: health.intervalSec * 1000, failures: health.failures,
      onUnhealthy: async (answers) => {
        const info = slot.sup?.info();
        // A process (re)started less than healthy_after ago is still starting.
        if (!info?.startedAt || info.state !== 'running' || Date.now() - Date.parse(info.startedAt) < config.app.healthyAfterSec * 1000) return;
        log.warn(`the app failed ${answers.length} health checks in a row; restarting it`, { pid: info.pid, last: describeProbe(answers.at(-1)!) });
        await slot.sup?.restart();
      },
    });
  }

  async function stopSlot(slot: Slot, killTimeoutMs?: number): Promise<void> {
    slot.watch?.stop();
    slot.watch = undefined;
    if (!slot.sup) return;
    if (killTimeoutMs !== undefined) slot.sup.setOptions({ killTimeoutMs });
    await slot.sup.stop();
  }

  const other = () => slots[slots.indexOf(active) ^ 1];

  return {
    start: (probation) => startSlot(active, probation),
    stop: () => stopSlot(active),
    lastFailure: () => lastFailure,
    overlap: listen.length ? {
      startNext: () => startSlot(other(), true),
      async promoteNext() {
        const old = active;
        active = other();
        const a = config.app;
        await stopSlot(old, (a.drainSec ?? a.killTimeoutSec) * 1000);
      },
      dropNext: () => stopSlot(other()),
    } : undefined,
    info() {
      const instances = slots.filter((s) => s.sup && s.sup.info().state !== 'stopped').map((s) => s.sup!.info());
      const last = active.watch?.last();
      return {
        app: active.sup?.info(),
        instances,
        sockets: listen.map((s) => s.text),
        health: config.app.health ? { url: config.app.health.url, last: last && describeProbe(last), ok: last?.ok, failuresInARow: active.watch?.failuresInARow() ?? 0 } : undefined,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const slot of slots) await stopSlot(slot);
      output.close();
      await sockets?.close();
    },
  };
}
