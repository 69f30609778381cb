// `shipkit worker` (docs/workers.md): a build worker on any machine that reaches the queue database.
// It builds the repos of its own shipkit.yml (jobs of other repos are left to other workers),
// each job run as hook-server runs it (process/runner.ts: `build`/`release` as a process group,
// the repo's user, timeout, secrets from this machine's environment and files, logs.txt under
// this machine's DATA), and runs a reaper (pg/reaper.ts) like every other worker.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { ConfigError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import { isProcessAlive } from '../core/lock.ts';
import { endProcessGroup } from '../core/process-group.ts';
import { hookServerLockFile, repoPaths, type ShipkitConfig } from '../config/shipkit-yml.ts';
import { readJobLog } from './job-log.ts';
import { processRunnerFor, type UpToDateCheck } from './process/runner.ts';
import { connectQueueDatabase, type QueueConnection } from './pg/connect.ts';
import { resolveQueue } from '../db/primary.ts';
import { Reaper } from './pg/reaper.ts';
import { PgWorker } from './pg/build-worker.ts';
import { endOrphanedJobs } from './pg/orphans.ts';

export interface WorkerSettings {
  config: ShipkitConfig;
  /** `--queue`: overrides the config's `queue:`. */
  queue?: string;
  name?: string;
  concurrency?: number;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Seconds between reaper rounds (tests make it short). */
  reaperMs?: number;
  /**
   * What else it takes from the queue database besides jobs (`shipkit worker`: preview builds,
   * lib/previews/remote-build.ts); given the connection and its name, gives back what stops it.
   */
  alsoServe?: (conn: QueueConnection, name: string) => Promise<() => Promise<void>>;
  /** A push that changes nothing needs no build (lib/pipeline/up-to-date.ts; passed in: jobs sit below the pipeline). */
  upToDate?: UpToDateCheck;
}

export interface RunningWorker {
  name: string;
  /** Jobs at once here. */
  concurrency: number;
  /** This worker's data folder. */
  data: string;
  /** The database, as messages name it (no password). */
  where: string;
  repos: string[];
  /** Stop taking jobs; running ones get `graceMs`, then are handed back. */
  stop(graceMs: number): Promise<void>;
}

export async function startWorker({
  config,
  queue,
  name = hostname(),
  concurrency,
  log,
  env = process.env,
  reaperMs,
  upToDate,
  alsoServe,
}: WorkerSettings): Promise<RunningWorker> {
  const value = queue ?? config.queue;
  if (!value)
    throw new ConfigError(
      `No queue database: pass --queue URL or set queue: in ${config.file} (postgres://USER@HOST/DATABASE, env:NAME or file:PATH).`,
    );
  const db = await resolveQueue(value, {
    log,
    env,
    baseDir: path.dirname(config.file),
    where: queue ? '--queue' : `${config.file}: queue`,
  });
  const repos = [...config.repos.keys()];
  if (repos.length === 0)
    throw new ConfigError(
      `${config.file} names no repos: a worker builds only the repos its own config names (repos:).`,
    );
  await refuseHookServerData(config);
  const jobsDir = path.join(config.data, 'jobs');
  await ensureDir(config.data, 0o755);
  await ensureDir(jobsDir, 0o755);
  const run = await processRunnerFor(config, { log, env, upToDate });
  const conn = await connectQueueDatabase({ db, name: `shipkit worker ${name}`, log, repos, supervise: false });
  await endOrphanedJobs({ db: conn.pool, jobsDir, name, log }).catch((error) =>
    log.warn(`could not look for builds left behind by a previous run: ${messageOf(error)}`),
  );
  const outputOf = (job: { id: string }) => path.join(jobsDir, job.id, 'output.log');
  // `concurrency: 0` is hook-server's (it builds nothing itself) when both read one shipkit.yml:
  // a worker that took it would take no job, forever, and say nothing. It runs one at once.
  const slots = concurrency ?? (config.concurrency > 0 ? config.concurrency : 1);
  if (concurrency === undefined && config.concurrency === 0)
    log.info(
      `concurrency: 0 in ${config.file} is hook-server's (it builds nothing itself); this worker runs 1 ` +
        `job at once (--concurrency N for more)`,
    );
  const worker = new PgWorker({
    ...conn,
    name,
    concurrency: slots,
    repos,
    run,
    log,
    outputOf,
    sectionOf: (job) => readJobLog(repoPaths(config, job.repo).logs, job.id),
  });
  const reaper = new Reaper({ ...conn, log, everyMs: reaperMs });
  worker.start();
  reaper.start();
  const stopAlso = (await alsoServe?.(conn, name)) ?? (async () => {});
  return {
    name,
    concurrency: slots,
    data: config.data,
    where: db.where,
    repos,
    async stop(graceMs) {
      await worker.stop({
        graceMs,
        killGroup: (job) => endProcessGroup(job.pgid, { graceMs: 2_000 }).then(() => undefined),
      });
      await stopAlso();
      await reaper.stop();
      await conn.close();
    },
  };
}

/**
 * A worker must not share hook-server's data folder: both would write DATA/jobs/ID/output.log,
 * and the worker would send back what hook-server appended (the output of one job repeated many
 * times). hook-server holds DATA/journal/hook-server.lock while it runs (lib/server/hook-server.ts).
 */
async function refuseHookServerData(config: ShipkitConfig): Promise<void> {
  const file = hookServerLockFile(config.data);
  let holder: { pid?: unknown; host?: unknown };
  try {
    holder = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return; // no hook-server here, or its lock half-written: nothing holds the folder
  }
  if (typeof holder.pid !== 'number' || !isProcessAlive(holder.pid, String(holder.host ?? ''))) return;
  throw new ConfigError(
    `The data folder ${config.data} (data: in ${config.file}) is the data folder of a running hook-server ` +
      `(process ${holder.pid} on ${String(holder.host)} holds ${file}): give this worker a data: of its own (docs/workers.md).`,
  );
}
