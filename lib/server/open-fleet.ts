// hook-server's fleet registry, wired: the apps of `fleet:` with their secrets resolved, their
// reports in DATA/fleet/ (lib/fleet/fleet-store.ts), each app's max_hosts for the routes, the
// silent hosts forgotten at start and every hour (lib/fleet/fleet-expiry.ts), and what the status
// page and /metrics read of it.
import path from 'node:path';
import { resolveSecret } from '../core/secrets.ts';
import type { Logger } from '../core/log.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { startFleetExpiry } from '../fleet/fleet-expiry.ts';
import { FleetStore } from '../fleet/fleet-store.ts';
import type { FleetView } from '../web/read-sources.ts';

/** Each app's fleet secrets, resolved (the current one first); a secret that cannot be read names its key. */
async function resolveFleetSecrets(config: ShipkitConfig, env: NodeJS.ProcessEnv): Promise<Map<string, string[]>> {
  const secrets = new Map<string, string[]>();
  for (const app of config.fleet.values()) {
    const resolved = app.secrets.map((secret) =>
      resolveSecret(secret, {
        env,
        baseDir: path.dirname(config.file),
        where: `${config.doc.locate(app.keyPath)}: fleet.${app.app}.secret`,
      }),
    );
    secrets.set(app.app, await Promise.all(resolved));
  }
  return secrets;
}

/** The apps of `fleet:`: their secrets and caps, their registry, and what the page and /metrics show of it. */
export interface Fleet {
  secrets: Map<string, string[]>;
  store: FleetStore;
  maxHosts: Map<string, number>;
  tally(): Array<{ app: string; version: string; result: string; hosts: number }>;
  views(): FleetView[];
  /** Stops the hourly sweep, then closes the registry. */
  close(): Promise<void>;
}

/**
 * The fleet's part of hook-server, or undefined without a `fleet:` block (/fleet/ paths are then
 * 404 like any unknown path). `close` stops the hourly sweep, then closes the registry.
 */
export async function openFleet(
  { config, env = process.env }: { config: ShipkitConfig; env?: NodeJS.ProcessEnv },
  dataDir: string,
  log: Logger,
): Promise<Fleet | undefined> {
  if (!config.fleet?.size) return undefined;
  const secrets = await resolveFleetSecrets(config, env);
  const apps = [...config.fleet.values()];
  const maxHosts = new Map(apps.map((app) => [app.app, app.maxHosts]));
  const store = await FleetStore.open(dataDir, {
    onCompactError: (error) =>
      log.warn('could not rewrite the fleet registry; it stays long and is tried again later', {
        error: error.message,
      }),
  });
  if (store.damaged) log.warn('the fleet registry had damaged lines; they were dropped', { damaged: store.damaged });
  const expiry = await startFleetExpiry({
    store,
    forgetAfterDays: new Map(apps.map((app) => [app.app, app.forgetAfterDays])),
    log,
  });
  const tally = () => [...secrets.keys()].flatMap((app) => store.tally(app).map((row) => ({ app, ...row })));
  const views = (): FleetView[] =>
    [...secrets.keys()].map((app) => {
      const hosts = store.hosts(app);
      const failures = hosts
        .filter((h) => h.result === 'failed' || h.result === 'rolled_back' || h.result === 'skipped')
        .sort((a, b) => b.at - a.at);
      const liars = hosts.filter(
        (h) => h.claimed_bucket !== null && Math.abs(h.claimed_bucket - h.bucket) >= 0.0001,
      ).length;
      return { app, hosts: hosts.length, tally: store.tally(app), rollout: store.rollout(app), failures, liars };
    });
  const close = async () => {
    await expiry.stop();
    await store.close();
  };
  return { secrets, store, maxHosts, tally, views, close };
}
