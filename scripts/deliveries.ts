#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// deliveries list | deliveries replay ID: the webhook deliveries hook-server keeps in the queue
// database with queue:, and one of them queued again as a new job (docs/ha.md).
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { ConfigError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';

const common = `  --config FILE   shipkit.yml with queue: (the same search as hook-server's)
  --json          print JSON
`;

const spec: CliSpec = {
  name: 'deliveries',
  usage: `Usage: deliveries list [--repo OWNER/NAME] [--limit N] [--config FILE] [--json]   (shipkit deliveries …)
       deliveries replay ID [--config FILE] [--json]

With queue:, every webhook delivery that made a job is kept in the database for 14 days under
its forge's delivery id (X-GitHub-Delivery, X-Gitea-Delivery, X-Gogs-Delivery, GitLab's
Idempotency-Key or X-Gitlab-Event-UUID): a retry that lands on any hook-server is answered with
the first job. \`list\` shows them, newest first; \`replay ID\` (a delivery id or a job id) queues
the kept delivery again as a new job, as if it had just come, for the repo and branch this
shipkit.yml names. Run \`deliveries list --help\` or \`deliveries replay --help\`. See docs/ha.md.
`,
  flags: {},
  maxPositionals: 0,
  commands: {
    list: {
      usage: `Usage: deliveries list [--repo OWNER/NAME] [--limit N] [--config FILE] [--json]

The deliveries kept in the queue database, newest first: received, forge, delivery id, job,
repo, event and size.

  --repo NAME     only this repo's
  --limit N       at most N (default 50)
${common}Exit codes: 0 listed, 2 no queue: or the database cannot be used.
`,
      flags: {
        repo: { type: 'string' },
        limit: { type: 'integer', min: 1, max: 100_000 },
        config: { type: 'string' },
        json: { type: 'boolean' },
      },
      maxPositionals: 0,
    },
    replay: {
      usage: `Usage: deliveries replay ID [--config FILE] [--json]

Queues the delivery ID names (its delivery id, or the id of the job it made) again as a new job.
Its kept body is read as hook-server reads a delivery; it must be a push to the branch its repo
builds, or a release, of a repo this shipkit.yml names. The job is committed before this exits;
any hook-server shows it and a worker (or hook-server) builds it.

${common}Exit codes: 0 queued, 1 the delivery cannot be replayed (said why; nothing queued),
2 no queue: or the database cannot be used.
`,
      flags: { config: { type: 'string' }, json: { type: 'boolean' } },
      minPositionals: 1,
      maxPositionals: 1,
    },
  },
};

/** This shipkit.yml's queue database, connected; a ConfigError without queue:. */
async function connect(args: Args, log: Logger) {
  const { findConfigFile, loadShipkitConfig } = await import('../lib/config/shipkit-yml.ts');
  const { connectConfigQueue } = await import('../lib/jobs/pg/connect.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  if (!config.queue)
    throw new ConfigError(
      `${config.file} has no queue: setting; deliveries are kept only in the queue database (docs/workers.md).`,
    );
  const conn = await connectConfigQueue({ ...config, queue: config.queue }, 'shipkit deliveries', log);
  return { config, conn };
}

async function listMain(args: Args, log: Logger): Promise<number> {
  const { listDeliveries } = await import('../lib/server/replay.ts');
  const { conn } = await connect(args, log);
  try {
    const kept = await listDeliveries(conn.pool, { repo: args.repo, limit: args.limit });
    if (args.json) process.stdout.write(`${JSON.stringify(kept)}\n`);
    else if (kept.length === 0) process.stdout.write('No deliveries are kept.\n');
    else
      for (const d of kept)
        process.stdout.write(
          `${d.received}  ${d.source.padEnd(7)} ${d.id}  job ${d.job}  ${d.repo}  ${d.event}  ${d.bytes} bytes\n`,
        );
    return 0;
  } finally {
    await conn.close();
  }
}

async function replayMain(args: Args, log: Logger): Promise<number> {
  const [{ replayDelivery }, { commandActor }, { hostname }] = await Promise.all([
    import('../lib/server/replay.ts'),
    import('../lib/audit/trail.ts'),
    import('node:os'),
  ]);
  const { ValidationError } = await import('../lib/core/errors.ts');
  const { config, conn } = await connect(args, log);
  try {
    const by = { actor: commandActor(), node: hostname() };
    const { of, result } = await replayDelivery(conn, config, args._[0], new Date(), by);
    if (args.json)
      process.stdout.write(`${JSON.stringify({ job: result.job.id, of: of.id, repo: result.job.repo })}\n`);
    else
      process.stdout.write(
        `Delivery ${of.id} (job ${of.job}) queued again as job ${result.job.id} for ${result.job.repo}\n`,
      );
    return 0;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    log.error(error.message);
    return 1;
  } finally {
    await conn.close();
  }
}

await runCli(spec, (args, log) => (args.command === 'replay' ? replayMain(args, log) : listMain(args, log)));
