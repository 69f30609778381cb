#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// worker: take build and release jobs from the PostgreSQL queue (docs/workers.md) and run them here.
import { milliseconds, runCli } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import { redactUrls } from '../lib/core/redact.ts';
import { findConfigFile, loadShipkitConfig } from '../lib/config/shipkit-yml.ts';
import { startWorker } from '../lib/jobs/worker-command.ts';
import { upToDateCheckFor } from '../lib/pipeline/up-to-date.ts';
import { servePreviewBuilds } from '../lib/previews/remote-build.ts';

const usage = `Usage: worker [--config FILE] [--queue URL] [--name NAME] [--concurrency N]   (shipkit worker …)

Take build and release jobs from the queue database that hook-server writes them to (queue: in
shipkit.yml) and run them on this machine, exactly as hook-server runs them: the same steps,
users, secrets, caches and DATA/logs/REPO/logs.txt. Only the repos this machine's shipkit.yml
names are taken; never two jobs of one repo at once across all workers. See docs/workers.md.

  --config FILE       shipkit.yml of this machine: repos: it may build, data:, secrets
                      (default: $SHIPKIT_CONFIG, ./shipkit.yml, ./.shipkit/shipkit.yml,
                      /etc/shipkit/shipkit.yml)
  --queue URL         postgres://USER@HOST[:PORT]/DATABASE, env:NAME or file:PATH
                      (default: queue: in the config); prefer env: or file: for a
                      password (see docs/security.md)
  --name NAME         this worker's name on the status page (default: the host name)
  --concurrency N     jobs at once on this machine (default: concurrency: in the config)
  --grace SEC         on SIGTERM, how long running jobs may finish before they are handed
                      back to other workers (default 60)
  --json              JSON log lines
  -h, --help          this help
`;

/**
 * A literal `--queue postgres://USER:PASSWORD@…` is in /proc/PID/cmdline, which every user of the
 * machine may read: the command line is rewritten with the password as *** (process.title).
 */
function hideQueueArgument(queue: string | undefined): void {
  if (queue === undefined || /^(env|file):/.test(queue) || redactUrls(queue) === queue) return;
  try {
    process.title = process.argv.map((arg) => arg.split(queue).join(redactUrls(queue))).join(' ');
  } catch {
    // A runtime without a settable title (Deno): docs/security.md says to use env: or file:.
  }
}

/**
 * Once connected, the variable `queue: env:NAME` read is taken out of this process's environment,
 * so that nothing it starts inherits it (a build's environment is built afresh anyway,
 * lib/jobs/process/runner.ts). /proc/PID/environ still shows the environment the worker was
 * started with to its own user: builds that must not reach the database need a `user:` of their
 * own (docs/security.md).
 */
function forgetQueueVariable(queue: string | string[] | undefined): void {
  for (const entry of [queue ?? []].flat()) {
    const name = /^env:(.+)$/.exec(entry)?.[1];
    if (name) delete process.env[name];
  }
}

await runCli(
  {
    name: 'worker',
    usage,
    flags: {
      config: { type: 'string' },
      queue: { type: 'string' },
      name: { type: 'string' },
      concurrency: { type: 'integer', min: 1, max: 256 },
      grace: { type: 'seconds' },
      json: { type: 'boolean' },
    },
    maxPositionals: 0,
  },
  async (args, log) => {
    const signalled = new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    if (args.name !== undefined && !/^[A-Za-z0-9._:@() -]{1,64}$/.test(String(args.name)))
      throw new UsageError('Option --name must be 1-64 letters, digits, spaces or . _ : @ ( ) -.');
    hideQueueArgument(args.queue);
    const config = await loadShipkitConfig(findConfigFile(args.config));
    const worker = await startWorker({
      config,
      queue: args.queue,
      name: args.name,
      concurrency: args.concurrency,
      log,
      reaperMs: process.env.SHIPKIT_REAPER_MS ? Number(process.env.SHIPKIT_REAPER_MS) : undefined,
      upToDate: upToDateCheckFor(config),
      // Preview builds (previews.build_on: workers) of its repos with previews:, one at a time.
      alsoServe: (conn, name) =>
        servePreviewBuilds({ boss: conn.boss, db: conn.pool }, { config, env: process.env, log, name }),
    });
    forgetQueueVariable(args.queue ?? config.queue);
    log.info(
      `worker ${worker.name} taking jobs of ${worker.repos.length} repo${worker.repos.length === 1 ? '' : 's'} from ${worker.where}, ${worker.concurrency} at once, data in ${worker.data}`,
      { config: config.file },
    );
    const signal = await signalled;
    log.info(`${signal}: taking no more jobs; waiting for running ones`);
    await worker.stop(milliseconds(args.grace) ?? 60_000);
    log.info(`worker ${worker.name} stopped`);
    return 0;
  },
);
