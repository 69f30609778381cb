// Hosts that stopped reporting leave hook-server's fleet registry on their own (F10/F11): at start
// and then every hour, each app's hosts whose latest report is older than its `forget_after` days
// are forgotten (FleetStore.forget, durable). A host retired, reinstalled under a new id or made
// up then no longer fills GET /fleet/APP, nor halts every later `release rollout` as missing; one
// that reports again simply enrols again.
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { FleetRegistry } from './fleet-memory.ts';

const DAY_MS = 86_400_000;
export const EXPIRY_INTERVAL_MS = 3_600_000;

export interface FleetExpiryOptions {
  store: FleetRegistry;
  /** Each app's forget_after in days; 0 = never. */
  forgetAfterDays: ReadonlyMap<string, number>;
  log: Logger;
  now?: () => number;
  /** Time between two sweeps after the first (default an hour). */
  intervalMs?: number;
  /** Sweeps only while this says so (several hook-servers: the leader's). */
  active?: () => boolean;
}

export interface FleetExpiry {
  /** No sweep after this; resolves once one under way has ended. */
  stop(): Promise<void>;
}

/** Forget each app's hosts silent for longer than its forget_after; how many per app (apps with none left out). */
export async function forgetSilentHosts(
  store: FleetRegistry,
  forgetAfterDays: ReadonlyMap<string, number>,
  now: number,
): Promise<Map<string, number>> {
  const forgotten = new Map<string, number>();
  for (const [app, days] of forgetAfterDays) {
    if (days <= 0) continue;
    const cutoff = now - days * DAY_MS;
    const count = await store.forget(app, store.silentSince(app, cutoff), { silentBefore: cutoff });
    if (count > 0) forgotten.set(app, count);
  }
  return forgotten;
}

/**
 * Sweep once now (awaited: the registry is trimmed before hook-server listens), then every
 * `intervalMs` on a timer that keeps no process alive. A sweep that fails (full disk) is logged
 * and tried again at the next one.
 */
export async function startFleetExpiry(options: FleetExpiryOptions): Promise<FleetExpiry> {
  const { store, forgetAfterDays, log, now = Date.now, active = () => true } = options;
  let running: Promise<void> | undefined;
  const sweep = () =>
    active() &&
    (running ??= forgetSilentHosts(store, forgetAfterDays, now())
      .then((forgotten) => {
        for (const [app, hosts] of forgotten)
          log.info(
            `fleet: forgot ${hosts} host${hosts === 1 ? '' : 's'} silent for over ${forgetAfterDays.get(app)} days`,
            {
              app,
              hosts,
            },
          );
      })
      .catch((error: unknown) =>
        log.warn('fleet: could not forget silent hosts; tried again later', { error: messageOf(error) }),
      )
      .finally(() => {
        running = undefined;
      }));
  if (![...forgetAfterDays.values()].some((days) => days > 0)) return { stop: async () => {} };
  await sweep();
  const timer = setInterval(sweep, options.intervalMs ?? EXPIRY_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
