// hook-server's fleet registry, wired: the apps of `fleet:` with their secrets resolved, their
// reports in DATA/fleet/ (lib/fleet/fleet-store.ts), each app's max_hosts for the routes, the
// silent hosts forgotten at start and every hour (lib/fleet/fleet-expiry.ts), and what the status
// page, /metrics and GET /fleet/APP/releases (with the app's ledger, ledger-source.ts) read of it.
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { resolveSecret } from '../core/secrets.ts';
import type { Logger } from '../core/log.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { startFleetExpiry } from '../fleet/fleet-expiry.ts';
import type { FleetRegistry } from '../fleet/fleet-memory.ts';
import { fleetLogFile, FleetStore } from '../fleet/fleet-store.ts';
import { fleetReleases, type FleetReleases, type FleetReleasesOptions } from '../release/rollout/fleet-view.ts';
import type { Queryable } from '../db/connect.ts';
import type { FleetView } from '../web/read-sources.ts';
import { ledgerSources } from './ledger-source.ts';
import { SharedFleet } from '../fleet/fleet-store-db.ts';

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
  store: FleetRegistry;
  maxHosts: Map<string, number>;
  tally(): Array<{ app: string; version: string; result: string; hosts: number }>;
  views(): FleetView[];
  /** The app's releases: its verified ledger (when one is found) joined with its hosts' reports. */
  releases(app: string, page?: FleetReleasesOptions): Promise<FleetReleases>;
  /** Stops the hourly sweep, then closes the registry. */
  close(): Promise<void>;
}

/** The queue database several hook-servers share, and whether this one leads (docs/ha.md). */
export interface SharedDatabase {
  db: Queryable;
  leads: () => boolean;
}

/**
 * The fleet's part of hook-server, or undefined without a `fleet:` block (/fleet/ paths are then
 * 404 like any unknown path): its registry in DATA/fleet/, or in the queue database when `shared`
 * is given. `close` stops the hourly sweep, then closes the registry.
 */
export async function openFleet(
  { config, env = process.env }: { config: ShipkitConfig; env?: NodeJS.ProcessEnv },
  dataDir: string,
  log: Logger,
  shared?: SharedDatabase,
): Promise<Fleet | undefined> {
  if (!config.fleet?.size) return undefined;
  const secrets = await resolveFleetSecrets(config, env);
  const apps = [...config.fleet.values()];
  const maxHosts = new Map(apps.map((app) => [app.app, app.maxHosts]));
  const store = shared ? await openShared(shared, dataDir, [...secrets.keys()], log) : await openLocal(dataDir, log);
  const expiry = await startFleetExpiry({
    store,
    forgetAfterDays: new Map(apps.map((app) => [app.app, app.forgetAfterDays])),
    log,
    active: shared?.leads,
  });
  const tally = () => [...secrets.keys()].flatMap((app) => store.tally(app).map((row) => ({ app, ...row })));
  const views = (): FleetView[] =>
    // From the registry's running summary: no pass over the hosts per page.
    [...secrets.keys()].map((app) => ({
      app,
      hosts: store.count(app),
      tally: store.tally(app),
      rollout: store.rollout(app),
      failures: store.failures(app),
      liars: store.liars(app),
    }));
  const ledgers = ledgerSources(config, log, shared?.db);
  const releases = async (app: string, page: FleetReleasesOptions = {}) =>
    fleetReleases(app, store.hosts(app, { sorted: false }), await ledgers.get(app)?.read(), page);
  const close = async () => {
    await expiry.stop();
    await store.close();
  };
  return { secrets, store, maxHosts, tally, views, releases, close };
}

async function openLocal(dataDir: string, log: Logger): Promise<FleetStore> {
  const store = await FleetStore.open(dataDir, {
    onCompactError: (error) =>
      log.warn('could not rewrite the fleet registry; it stays long and is tried again later', {
        error: error.message,
      }),
  });
  if (store.damaged) log.warn('the fleet registry had damaged lines; they were dropped', { damaged: store.damaged });
  return store;
}

/**
 * The registry in the queue database. At the first start with `queue:` this node's
 * DATA/fleet/fleet.log is copied in (and renamed, so it is not read again); a database that has a
 * registry already keeps it, and the file is left as it is.
 */
async function openShared(
  { db, leads }: SharedDatabase,
  dataDir: string,
  apps: string[],
  log: Logger,
): Promise<SharedFleet> {
  const store = await SharedFleet.open(db, { log, leads });
  const file = fleetLogFile(dataDir);
  if (!existsSync(file)) return store;
  try {
    const local = await openLocal(dataDir, log);
    const copied = await store.adopt(local, apps).finally(() => local.close());
    if (!copied) {
      log.warn(`${file} is not read with queue: (the database's fleet registry is); it can be removed`);
      return store;
    }
    await rename(file, `${file}.copied-to-queue`);
    log.info(
      `fleet: copied ${copied.hosts} hosts and ${copied.rollouts} rollouts of ${file} into the queue database`,
      copied,
    );
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}
