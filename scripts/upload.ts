#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// upload: send a built folder to its targets: rsync over ssh, S3, or a git branch.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { runCli, type FlagSpec } from '../lib/core/cli.ts';
import { UsageError, WorkError } from '../lib/core/errors.ts';
import { findConfigFile, getRepo, loadShipkitConfig, repoPaths } from '../lib/config/shipkit-yml.ts';
import { parseTarget, uploadEntries, uploadTo, type UploadResult } from '../lib/stages/upload/index.ts';

const usage = `Usage:
  upload REPO [--config FILE] [--dry-run] [--json]
  upload --from DIR --to TARGET [--delete] [--dry-run] [--json] [options]

The first form uploads the repo's work folder to the targets in shipkit.yml (repos.REPO.upload),
in order. The second uploads DIR to one TARGET; its options are in \`upload --from --help\`.

Options:
  --config FILE          shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                         ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --dry-run              show what would change, change nothing
  --json                 print the results as JSON on stdout
S3 credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).

Exit status: 0 uploaded, 1 an upload failed, 2 bad arguments or configuration.
`;

const fromUsage = `Usage: upload --from DIR --to TARGET [--delete] [--dry-run] [--json] [options]

Uploads DIR to one TARGET:
  user@host:path, rsync://[user@]host[:port]/path   rsync over ssh (--delay-updates)
  s3://bucket/prefix                               only changed files (size + MD5/ETag)
  git+REMOTE#BRANCH                                DIR becomes the branch's tree (gh-pages style)

Options:
  --delete               remove remote files that are not in DIR (rsync, S3)
  --dry-run              show what would change, change nothing
  --endpoint URL         S3-compatible endpoint (path-style addressing); --region REGION
  --cache-control VALUE  S3 Cache-Control for every object
  --concurrency N        S3 transfers at once (default 8)
  --ssh-key FILE, --port N, --known-hosts FILE    ssh settings for rsync and git
  --json                 print the results as JSON on stdout
S3 credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).

Exit status: 0 uploaded, 1 an upload failed, 2 bad arguments or configuration.
`;

const string: FlagSpec = { type: 'string' };
const boolean: FlagSpec = { type: 'boolean' };

await runCli(
  {
    name: 'upload',
    usage,
    flags: { config: string, 'dry-run': boolean, json: boolean },
    minPositionals: 1,
    maxPositionals: 1,
    commands: {
      '--from': {
        usage: fromUsage,
        flags: {
          from: string,
          to: string,
          delete: boolean,
          'dry-run': boolean,
          json: boolean,
          endpoint: string,
          region: string,
          'cache-control': string,
          'ssh-key': string,
          'known-hosts': string,
          concurrency: { type: 'integer', max: 64 },
          port: { type: 'integer', max: 65535 },
        },
        maxPositionals: 0,
      },
    },
  },
  async (args, log) => {
    let results: UploadResult[];
    if (args.command === undefined) {
      const config = await loadShipkitConfig(findConfigFile(args.config));
      const repo = getRepo(config, args._[0]);
      const workDir = repoPaths(config, repo.name).work;
      if (!(await stat(workDir).catch(() => undefined))?.isDirectory())
        throw new WorkError(
          `The work folder ${workDir} of ${repo.name} does not exist; run \`shipkit build ${repo.name}\` first.`,
        );
      results = await uploadEntries({
        workDir,
        entries: repo.upload,
        doc: config.doc,
        configFile: config.file,
        log,
        dryRun: args['dry-run'],
      });
    } else {
      if (!args.from || !args.to)
        throw new UsageError(
          `Missing --${args.from ? 'to TARGET' : 'from DIR'}. Run \`upload --from --help\` for usage.`,
        );
      const from = path.resolve(args.from);
      if (!(await stat(from).catch(() => undefined))?.isDirectory())
        throw new UsageError(`The source folder ${from} does not exist (or is not a folder).`);
      const target = parseTarget(args.to, { endpoint: args.endpoint, region: args.region });
      results = [
        await uploadTo(target, {
          from,
          log,
          delete: args.delete,
          dryRun: args['dry-run'],
          cacheControl: args['cache-control'],
          concurrency: args.concurrency,
          port: args.port,
          sshKey: args['ssh-key'] === undefined ? undefined : path.resolve(args['ssh-key']),
          knownHosts: args['known-hosts'] === undefined ? undefined : path.resolve(args['known-hosts']),
        }),
      ];
    }
    if (args.json) {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    } else {
      for (const r of results) {
        const verb = r.dryRun ? 'would upload' : 'uploaded';
        const extra = r.commit
          ? ` (commit ${r.commit.slice(0, 12)})`
          : r.requests !== undefined
            ? ` (${r.requests} requests)`
            : '';
        process.stdout.write(
          `${r.target}: ${verb} ${r.uploaded}, unchanged ${r.unchanged}, deleted ${r.deleted}${extra}\n`,
        );
      }
    }
    return 0;
  },
);
