// `release REPO --tag TAG`: check out the tag and run the repo's release script (`release:` in
// shipkit.yml, default release.sh) with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA set. Its
// output goes to the repo's logs.txt like a build's; its exit code is the release's.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { Args, CliSpec } from './cli.ts';
import { configError } from './config.ts';
import { UsageError } from './errors.ts';
import { run, StepFailure, type BuildContext, type StepResult } from './build-context.ts';
import { pullStep } from './build-pull.ts';
import { newJobId, validateJobId } from './joblog.ts';
import { abortOnSignals, report, runJob, validateRef } from './job.ts';
import type { Logger } from './log.ts';
import { resolveInside } from './names.ts';
import { findConfigFile, getRepo, loadShipkitConfig, repoPaths, type RepoConfig, type ShipkitConfig } from './shipkit-config.ts';

export const releaseCliSpec: CliSpec = {
  name: 'release',
  usage: `Usage: release REPO --tag TAG [--config FILE] [--job-id ID] [--json]
       release publish DIR --name APP --platform PLATFORM --version V --key SECRET_KEY.asc
               [--passphrase-file F] --to DEST [--keep N] [--codename NAME] [--expires DAYS]

release REPO --tag TAG
  Checks out TAG in DATA/repos/REPO and runs the repo's release script (\`release:\` in
  shipkit.yml, default release.sh) with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA in its
  environment. Output goes to DATA/logs/REPO/logs.txt (see \`logs REPO\`); the script's exit
  code is the release's. A missing or non-executable script fails with exit 1.

  --config FILE   shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml, /etc/shipkit/shipkit.yml)
  --tag TAG       the tag to release, e.g. v1.4.0 (refs/tags/v1.4.0 also accepted)
  --job-id ID     the job's id in the log (default: a new one)
  --json          print the result as JSON on stdout

release publish DIR ...
  Packs DIR into APP-PLATFORM-V.tar.gz, signs it, uploads tarball and .sig to DEST and writes
  VERSION last (see \`release publish --help\`).

Examples:
  release octo/site --tag v1.4.0
  release publish build/ --name my-app --platform gnu-linux --version 1.23.42b \\
    --key release-key.asc --to /srv/app-updates
`,
  string: ['config', 'tag', 'job-id'],
  boolean: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
};

/** The release script's path inside the work folder; a ConfigError when it would leave it. */
function releaseScriptPath(config: ShipkitConfig, repo: RepoConfig, work: string): string {
  try {
    return resolveInside(work, repo.release, 'release script');
  } catch (error) {
    throw configError(config.doc, [...repo.keyPath, 'release'], `must be a path inside the repo such as release.sh or scripts/release.sh, got ${JSON.stringify(repo.release)}.`, { cause: error });
  }
}

/** Runs the checked-out release script; a missing or non-executable one fails with a fix. */
async function releaseScriptStep(ctx: BuildContext): Promise<StepResult> {
  const relative = ctx.repo.release;
  const script = releaseScriptPath(ctx.config, ctx.repo, ctx.paths.work);
  const tag = ctx.env.SHIPKIT_TAG;
  const info = await stat(script).catch(() => undefined);
  if (!info) {
    throw new StepFailure(`The release script ${relative} does not exist at ${tag}; add it to the repo (see templates/release.sh) or set \`release:\` for ${ctx.repo.name} in shipkit.yml.`);
  }
  if (!info.isFile()) throw new StepFailure(`The release script ${relative} is not a file.`);
  try {
    await access(script, constants.X_OK);
  } catch {
    throw new StepFailure(`The release script ${relative} is not executable; run \`git update-index --chmod=+x ${relative}\`, commit, and tag again.`);
  }
  try {
    await run(ctx, [script], { what: `./${relative}`, cwd: ctx.paths.work });
  } catch (error) {
    if (error instanceof StepFailure && error.commandExit) error.exitCode = error.commandExit;
    throw error;
  }
  return { note: `./${relative} exited 0` };
}

export async function releaseMain(args: Args, log: Logger): Promise<number> {
  const name = String(args._[0]);
  if (args.tag === undefined) throw new UsageError('Missing --tag TAG: which tag to release, e.g. --tag v1.4.0.');
  const tag = validateRef(String(args.tag).replace(/^refs\/tags\//, ''), 'tag');
  const id = args['job-id'] !== undefined ? validateJobId(args['job-id']) : newJobId();
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const repo = getRepo(config, name);
  // A script path outside the repo is a configuration error (exit 2) before any job starts.
  releaseScriptPath(config, repo, repoPaths(config, repo.name).work);
  const controller = abortOnSignals();
  log.info(`release ${repo.name} ${tag}: job ${id}`);
  const outcome = await runJob({
    config, repo, kind: 'release', id, ref: `refs/tags/${tag}`, env: { SHIPKIT_TAG: tag }, log, signal: controller.signal,
    steps: [{ name: 'pull', run: pullStep }, { name: 'release', run: releaseScriptStep }],
  });
  return report(outcome, args, log);
}
