#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// logs REPO (show, list, follow a repo's jobs) and logs rotate (bound disk use).
import path from 'node:path';
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { UsageError, WorkError } from '../lib/core/errors.ts';
import { validateJobId } from '../lib/jobs/job-id.ts';
import { findJob, followJob, listJobs, type JobSummary } from '../lib/jobs/job-log.ts';
import { parseSize } from '../lib/jobs/log-rotate.ts';
import { logSettings, rotateRepoLogs } from '../lib/pipeline/job.ts';
import type { Logger } from '../lib/core/log.ts';
import { findConfigFile, getRepo, loadShipkitConfig, repoPaths } from '../lib/config/shipkit-yml.ts';

const logsCliSpec: CliSpec = {
  name: 'logs',
  usage: `Usage: logs REPO [--config FILE] [--job ID] [--list] [--follow] [--json]
       logs rotate [REPO] [--config FILE] [--max-size SIZE] [--keep N] [--force] [--json]

logs REPO           the last job of REPO (a build or a release), from DATA/logs/REPO/logs.txt
  --job ID          that job instead (rotated .gz files are searched too)
  --list            one line per job, newest first: id, kind, status, exit, sha, start, duration
  --follow          print the job as it is written, until it ends; exit 1 if it failed
  --json            the job (with its log text) or the list as JSON
logs rotate [REPO]  gzip logs.txt to logs.1.txt.gz once it passes the size cap, keep N files
  --max-size SIZE   the cap, e.g. 10M (default: logs.max_size in shipkit.yml, else 10M)
  --keep N          rotated files kept (default: logs.keep, else 5)
  --force           rotate even below the cap

Examples:
  logs octo/site
  logs octo/site --list
  logs octo/site --follow
  logs rotate --max-size 5M --keep 3
`,
  flags: {
    config: { type: 'string' },
    job: { type: 'string' },
    list: { type: 'boolean' },
    follow: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  minPositionals: 1,
  maxPositionals: 1,
  commands: {
    rotate: {
      usage: `Usage: logs rotate [REPO] [--config FILE] [--max-size SIZE] [--keep N] [--force] [--json]

Gzips DATA/logs/REPO/logs.txt to logs.1.txt.gz once it passes the size cap (older ones move up
to logs.2.txt.gz, ...) and keeps N rotated files; every configured repo when REPO is left out.
A repo whose job is running is skipped. Meant for cron or a systemd timer.

Options:
  --config FILE     shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                    ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --max-size SIZE   the cap, e.g. 10M or 512k (default: logs.max_size in shipkit.yml, else 10M)
  --keep N          rotated files kept (default: logs.keep, else 5)
  --force           rotate even below the cap
  --json            the results as JSON on stdout
`,
      flags: {
        config: { type: 'string' },
        'max-size': { type: 'string' },
        keep: { type: 'integer', min: 0, max: 1000 },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      maxPositionals: 1,
    },
  },
};

async function logsMain(args: Args, log: Logger): Promise<number> {
  if (args.command === 'rotate') return rotateMain(args, log);
  const jobId = args.job !== undefined ? validateJobId(args.job) : undefined;
  if (args.list && (args.follow || jobId))
    throw new UsageError('Use --list on its own, or --job/--follow without --list.');
  if (args.follow && args.json) throw new UsageError('--follow prints the log as it grows; use it without --json.');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const repo = getRepo(config, String(args._[0]));
  const dir = repoPaths(config, repo.name).logs;

  if (args.list) {
    const jobs = await listJobs(dir);
    if (args.json)
      process.stdout.write(
        `${JSON.stringify(jobs.map(({ file, ...job }) => ({ ...job, file: path.basename(file) })))}\n`,
      );
    else if (!jobs.length) log.info(`No jobs for ${repo.name} yet (${dir}).`);
    else process.stdout.write(formatJobList(jobs));
    return 0;
  }
  if (args.follow) {
    const summary = await followJob(dir, jobId, { write: (text) => process.stdout.write(text) });
    if (!summary) return notFound(repo.name, dir, jobId, log);
    return summary.status === 'succeeded' ? 0 : 1;
  }
  const job = await findJob(dir, jobId);
  if (!job) return notFound(repo.name, dir, jobId, log);
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ ...job.summary, file: path.basename(job.summary.file), log: job.text })}\n`,
    );
  else process.stdout.write(job.text);
  return 0;
}

function notFound(repo: string, dir: string, jobId: string | undefined, log: Logger): number {
  if (jobId)
    throw new WorkError(
      `No job ${jobId} in the logs of ${repo} (${dir}); \`shipkit logs ${repo} --list\` shows the jobs kept.`,
    );
  log.info(`No jobs for ${repo} yet (${dir}).`);
  return 0;
}

function formatJobList(jobs: JobSummary[]): string {
  const rows = jobs.map((j) => [
    j.id,
    j.kind,
    j.status,
    j.exit === undefined ? '-' : String(j.exit),
    j.sha ? j.sha.slice(0, 12) : '-',
    j.started.replace(/\.\d+Z$/, 'Z'),
    j.duration_ms === undefined ? '-' : `${(j.duration_ms / 1000).toFixed(1)}s`,
    j.step ?? '',
  ]);
  const header = ['JOB', 'KIND', 'STATUS', 'EXIT', 'SHA', 'STARTED', 'TIME', 'FAILED STEP'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return (
    [header, ...rows]
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

async function rotateMain(args: Args, log: Logger): Promise<number> {
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const settings = logSettings(config);
  const maxSize = args['max-size'] !== undefined ? parseSize(String(args['max-size'])) : settings.rotation.maxSize;
  if (maxSize === undefined)
    throw new UsageError(
      `Option --max-size must be a size such as 10M or 512k, got ${JSON.stringify(String(args['max-size']))}.`,
    );
  const keep: number = args.keep ?? settings.rotation.keep;
  const repos = args._[0] !== undefined ? [getRepo(config, args._[0])] : [...config.repos.values()];
  const { results, failures } = await rotateRepoLogs(
    config,
    repos,
    { maxSize, keep },
    { force: Boolean(args.force), log },
  );
  if (args.json) process.stdout.write(`${JSON.stringify(results)}\n`);
  else {
    for (const r of results) {
      const what = r.skipped
        ? `skipped: ${r.skipped}`
        : r.rotated
          ? `rotated logs.txt (${r.size} bytes) to logs.1.txt.gz`
          : `logs.txt is ${r.size} bytes, under the ${maxSize}-byte cap`;
      process.stdout.write(`${r.repo}: ${what}${r.removed.length ? `; removed ${r.removed.join(', ')}` : ''}\n`);
    }
  }
  return failures ? 1 : 0;
}

await runCli(logsCliSpec, logsMain);
