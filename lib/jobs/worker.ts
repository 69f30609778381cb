// `shipkit worker` (DESIGN §8): a build worker on any machine that reaches the queue database.
// It builds the repos of its own shipkit.yml (jobs of other repos are left to other workers),
// each job run as hook-server runs it (process/runner.ts: `build`/`release` as a process group,
// the repo's user, timeout, secrets from this machine's environment and files, logs.txt under
// this machine's DATA), and runs a reaper (pg/reaper.ts) like every other worker.
import { hostname } from 'node:os';
import path from 'node:path';
import { ConfigError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import { endProcessGroup } from '../core/process-group.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { processRunnerFor } from './process/runner.ts';
import { connectQueueDatabase, resolveQueueUrl } from './pg/connect.ts';
import { Reaper } from './pg/reaper.ts';
import { PgWorker } from './pg/worker.ts';
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
}

export interface RunningWorker {
  name: string;
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
}: WorkerSettings): Promise<RunningWorker> {
  const value = queue ?? config.queue;
  if (!value)
    throw new ConfigError(
      `No queue database: pass --queue URL or set queue: in ${config.file} (postgres://USER@HOST/DATABASE, env:NAME or file:PATH).`,
    );
  const db = await resolveQueueUrl(value, {
    env,
    baseDir: path.dirname(config.file),
    where: queue ? '--queue' : `${config.file}: queue`,
  });
  const repos = [...config.repos.keys()];
  if (repos.length === 0)
    throw new ConfigError(
      `${config.file} names no repos: a worker builds only the repos its own config names (repos:).`,
    );
  const jobsDir = path.join(config.data, 'jobs');
  await ensureDir(config.data, 0o755);
  await ensureDir(jobsDir, 0o755);
  const run = await processRunnerFor(config, { log, env });
  const conn = await connectQueueDatabase({ db, name: `shipkit worker ${name}`, log, repos, supervise: false });
  await endOrphanedJobs({ db: conn.pool, jobsDir, name, log }).catch((error) =>
    log.warn(`could not look for builds left behind by a previous run: ${messageOf(error)}`),
  );
  const outputOf = (job: { id: string }) => path.join(jobsDir, job.id, 'output.log');
  const worker = new PgWorker({
    ...conn,
    name,
    concurrency: concurrency ?? config.concurrency ?? 1,
    repos,
    run,
    log,
    outputOf,
  });
  const reaper = new Reaper({ ...conn, log, everyMs: reaperMs });
  worker.start();
  reaper.start();
  return {
    name,
    where: db.where,
    repos,
    async stop(graceMs) {
      await worker.stop({
        graceMs,
        killGroup: (job) => endProcessGroup(job.pgid, { graceMs: 2_000 }).then(() => undefined),
      });
      await reaper.stop();
      await conn.close();
    },
  };
}
