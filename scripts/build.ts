#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// build REPO: pull, downloads, install, compile, upload, publish, rollout — one job in the repo's logs.txt.
// hook-server runs it as `build REPO --config FILE --sha SHA --ref REF --job-id ID`.
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { checkUploadConfig, parseSteps, STEP_AHEAD, STEP_FUNCTIONS } from '../lib/pipeline/steps.ts';
import { checkPipelineConfig } from '../lib/pipeline/publish-and-rollout.ts';
import { newJobId, validateJobId } from '../lib/jobs/job-id.ts';
import { report, runJob, validateRef, validateSha } from '../lib/pipeline/job.ts';
import { abortOnSignals } from '../lib/core/signals.ts';
import type { Logger } from '../lib/core/log.ts';
import {
  findConfigFile,
  getRepo,
  loadShipkitConfig,
  repoPaths,
  STEPS,
  type RepoConfig,
  type ShipkitConfig,
} from '../lib/config/shipkit-yml.ts';
import { UsageError } from '../lib/core/errors.ts';
import { previewBuildPaths, previewBuildPlan, previewFolder } from '../lib/previews/build.ts';

const buildCliSpec: CliSpec = {
  name: 'build',
  usage: `Usage: build REPO [--config FILE] [--sha SHA] [--ref REF] [--steps a,b] [--job-id ID] [--url URL] [--no-cache] [--json]

Runs the repo's build steps in DATA/repos/REPO and appends the job to DATA/logs/REPO/logs.txt.
Steps (in this order): ${STEPS.join(', ')}. The first failing step stops the build (exit 1).
publish and rollout run only when the repo has a publish: / rollout: block in shipkit.yml.

Options:
  --config FILE   shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                  ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --sha SHA       build exactly this commit (default: the head of --ref or of the repo's branch)
  --ref REF       the pushed ref, e.g. refs/heads/main (default: the repo's branch)
  --steps a,b     run only these steps, e.g. --steps install,compile
  --job-id ID     the job's id in the log (default: a new one); letters, digits, _ and -
  --url URL       clone from this URL instead of the configured one
  --no-cache      start clean: remove node_modules, downloads and the repo's cache: paths,
                  and install with a fresh npm cache (the repo's shared one is left as it is)
  --preview N     build pull request N's preview (hook-server runs this): pull to compile only,
                  in DATA/previews/REPO/pr-N/src, with the repo's previews.env as its only
                  variables (docs/previews.md); with --sha and --url (the PR head's clone URL)
  --fork          with --preview: the head lives in a fork; fetched without the deploy key or token
  --preview-user U  with --preview: run the steps as U, a user name or #UID (hook-server gives
                  each preview a uid of its own); default previews.user, never root
  --json          print the result as JSON on stdout

Examples:
  build octo/site
  build octo/site --sha 3f2a9c1 --ref refs/heads/main
  build site --steps compile --config /etc/shipkit/shipkit.yml
`,
  flags: {
    config: { type: 'string' },
    sha: { type: 'string' },
    ref: { type: 'string' },
    steps: { type: 'string' },
    'job-id': { type: 'string' },
    url: { type: 'string' },
    cache: { type: 'boolean', default: true },
    json: { type: 'boolean' },
    preview: { type: 'integer', min: 1, max: 999_999_999 },
    fork: { type: 'boolean' },
    'preview-user': { type: 'string' },
  },
  minPositionals: 1,
  maxPositionals: 1,
  needs: ['bash', 'git'],
};

async function buildMain(args: Args, log: Logger): Promise<number> {
  const name = String(args._[0]);
  const sha = args.sha !== undefined ? validateSha(String(args.sha)) : undefined;
  const ref = args.ref !== undefined ? validateRef(String(args.ref)) : undefined;
  const id = args['job-id'] !== undefined ? validateJobId(args['job-id']) : newJobId();
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const repo = getRepo(config, name);
  if (args.preview !== undefined) return buildPreviewMain(args, { config, repo, sha, id, log });
  const steps = parseSteps(args.steps, repo.steps);
  if (steps.includes('upload')) await checkUploadConfig(config, repo, repoPaths(config, repo.name).work);
  await checkPipelineConfig(config, {
    ...repo,
    publish: steps.includes('publish') ? repo.publish : undefined,
    rollout: steps.includes('rollout') ? repo.rollout : undefined,
  });
  // hook-server and workers always name the job: without --job-id, someone typed it.
  const beforeStart =
    args['job-id'] === undefined
      ? async () => {
          const { recordByCommand } = await import('../lib/audit/trail.ts');
          const detail = { job: id, sha: sha ?? null, ref: ref ?? null, steps };
          await recordByCommand(config, 'build', { action: 'build.manual', subject: repo.name, detail }, log);
        }
      : undefined;
  const controller = abortOnSignals();
  log.info(`build ${repo.name}: job ${id}`, { steps: steps.join(',') });
  const outcome = await runJob({
    config,
    repo,
    kind: 'build',
    id,
    sha,
    ref,
    url: args.url,
    noCache: args.cache === false,
    // Only a build of every configured step says what a push of the same tree would build.
    recordBuilt: args.steps === undefined,
    beforeStart,
    log,
    signal: controller.signal,
    steps: steps.map((step) => ({ name: step, run: STEP_FUNCTIONS[step], ahead: STEP_AHEAD[step] })),
  });
  return report(outcome, { json: args.json, log, stdout: process.stdout });
}

/** `build REPO --preview N`: the preview's build (lib/previews/build.ts), in its own folder. */
async function buildPreviewMain(
  args: Args,
  { config, repo, sha, id, log }: { config: ShipkitConfig; repo: RepoConfig; sha?: string; id: string; log: Logger },
): Promise<number> {
  if (sha === undefined || args.url === undefined)
    throw new UsageError('--preview needs --sha (the pull request head) and --url (where it is fetched from).');
  const pr = Number(args.preview);
  const user = args['preview-user'] === undefined ? undefined : String(args['preview-user']);
  if (user !== undefined && (user === 'root' || !/^(#[1-9][0-9]{0,9}|[a-z_][a-z0-9_-]{0,31})$/.test(user)))
    throw new UsageError(
      `--preview-user must be a user name or #UID other than root, got ${JSON.stringify(user.slice(0, 40))}.`,
    );
  const plan = previewBuildPlan(config, repo, { pr, url: String(args.url), fromFork: args.fork === true, user });
  const controller = abortOnSignals();
  log.info(`build ${repo.name} preview pr-${pr}: job ${id}`, { steps: plan.steps.join(',') });
  const outcome = await runJob({
    config,
    repo: plan.repo,
    kind: 'build',
    id,
    sha,
    url: plan.url,
    env: plan.env,
    paths: previewBuildPaths(previewFolder(config.data, repo.name, pr)),
    log,
    signal: controller.signal,
    steps: plan.steps.map((step) => ({ name: step, run: STEP_FUNCTIONS[step], ahead: STEP_AHEAD[step] })),
  });
  return report(outcome, { json: args.json, log, stdout: process.stdout });
}

await runCli(buildCliSpec, buildMain);
