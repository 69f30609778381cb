#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// previews list | show | approve | rebuild | rm: the previews of pull requests a running
// hook-server keeps, asked through its HTTP API with the read token (docs/previews.md).
import { runCli, type Args, type CliSpec, type CommandSpec } from '../lib/core/cli.ts';
import { ConfigError, ValidationError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';

const common = `  --config FILE   shipkit.yml (the same search as hook-server's): its token: and listen:
  --url URL       hook-server's address (default: http://127.0.0.1:PORT from listen:)
`;
const exits = (done: string) =>
  `Exit codes: 0 ${done}, 1 hook-server refused (its reason is shown) or is not reachable,
2 a bad REPO#N, flag or config (nothing was sent).
`;
const flags = { config: { type: 'string' }, url: { type: 'string' } } as const;

/** approve, rebuild and rm: one REPO#N, no other flags. */
function action(verb: string, what: string, done: string): CommandSpec {
  return {
    usage: `Usage: previews ${verb} REPO#N [--config FILE] [--url URL] [--json]

${what}

  --json          print hook-server's record of it after
${common}${exits(done)}`,
    flags: { ...flags, json: { type: 'boolean' } },
    minPositionals: 1,
    maxPositionals: 1,
  };
}

const spec: CliSpec = {
  name: 'previews',
  usage: `Usage: previews list [--repo OWNER/NAME] [--json]   (shipkit previews …)
       previews show REPO#N [--json]
       previews approve REPO#N
       previews rebuild REPO#N
       previews rm REPO#N

The previews of pull requests (repos with previews: in shipkit.yml), as the running hook-server
keeps them: each pr-N with its state (building, live, waiting for approval, failed, torn down),
head commit and URL. REPO#N names one: the repository and the pull request's number, such as
octo/site#42. Every form takes --config FILE and --url URL. Run \`previews list --help\` and so on.
See docs/previews.md.
`,
  flags: {},
  maxPositionals: 0,
  commands: {
    list: {
      usage: `Usage: previews list [--repo OWNER/NAME] [--config FILE] [--url URL] [--json]

Every preview hook-server knows, newest change first (torn-down ones too): NAME, REPO, STATE,
HEAD (7 characters), AGE (since the state last changed) and URL.

  --repo NAME     only this repo's
  --json          print hook-server's answer: {"previews": [...]}
${common}${exits('listed')}`,
      flags: { ...flags, repo: { type: 'string' }, json: { type: 'boolean' } },
      maxPositionals: 0,
    },
    show: {
      usage: `Usage: previews show REPO#N [--config FILE] [--url URL] [--json]

One preview: its state and since when, head commit, URL, the commit it serves, why it failed or
waits, and its build job.

  --json          print it as JSON
${common}${exits('shown')}`,
      flags: { ...flags, json: { type: 'boolean' } },
      minPositionals: 1,
      maxPositionals: 1,
    },
    approve: action(
      'approve',
      `Approves the pull request's current head commit and builds it: for a pull request from a fork or
an author not trusted, which waits for approval. A later push needs a new approval.`,
      'approved (the build is under way)',
    ),
    rebuild: action('rebuild', `Builds the preview's head commit again (a failed or live one).`, 'rebuilding'),
    rm: action(
      'rm',
      `Tears the preview down now: its process, its nginx route, its folder (and database). A later
push to the pull request builds it again.`,
      'removed',
    ),
  },
};

/** REPO#N from the command line, checked before anything is read or sent. */
async function targetOf(text: string): Promise<{ repo: string; pr: number }> {
  const [{ parsePreviewRef }, { repoNameProblem }] = await Promise.all([
    import('../lib/previews/store.ts'),
    import('../lib/core/names.ts'),
  ]);
  const target = parsePreviewRef(text);
  if (repoNameProblem(target.repo))
    throw new ValidationError(
      `Invalid preview ${JSON.stringify(text.slice(0, 80))}: give REPO#N, such as octo/site#42.`,
    );
  return target;
}

/** hook-server's address and read token, from shipkit.yml (and --url). */
async function clientOptions(args: Args) {
  const [{ findConfigFile, loadShipkitConfig }, { resolveSecret }, { hookServerUrl }, path] = await Promise.all([
    import('../lib/config/shipkit-yml.ts'),
    import('../lib/core/secrets.ts'),
    import('../lib/previews/client.ts'),
    import('node:path'),
  ]);
  if (args.url !== undefined && !/^https?:\/\/[^/]/i.test(args.url))
    throw new ValidationError(`--url ${JSON.stringify(args.url)}: give an http:// or https:// address.`);
  const config = await loadShipkitConfig(findConfigFile(args.config));
  if (!config.token)
    throw new ConfigError(
      `${config.file} has no token: setting; the previews API needs hook-server's read token (docs/previews.md).`,
    );
  const token = await resolveSecret(config.token, {
    baseDir: path.dirname(config.file),
    where: `${config.file}: token`,
  });
  return { url: args.url ?? hookServerUrl(config.listen), token };
}

async function main(args: Args, log: Logger): Promise<number> {
  const { listPreviews, actOnPreview, formatPreviewTable, formatPreview, PreviewRefused } =
    await import('../lib/previews/client.ts');
  const command = args.command as 'list' | 'show' | 'approve' | 'rebuild' | 'rm';
  const target = command === 'list' ? undefined : await targetOf(args._[0]);
  const options = await clientOptions(args);
  const print = (text: string) => process.stdout.write(text);
  try {
    if (command === 'list' || command === 'show') {
      const all = await listPreviews(options);
      if (command === 'list') {
        const listed = args.repo === undefined ? all : all.filter((p) => p.repo === args.repo);
        print(args.json ? `${JSON.stringify({ previews: listed })}\n` : formatPreviewTable(listed, new Date()));
        return 0;
      }
      const one = all.find((p) => p.repo === target!.repo && p.pr === target!.pr);
      if (!one) {
        log.error(`No preview of ${target!.repo}#${target!.pr} is known to hook-server.`);
        return 1;
      }
      print(args.json ? `${JSON.stringify(one)}\n` : formatPreview(one, new Date()));
      return 0;
    }
    const record = await actOnPreview(options, command, target!);
    if (args.json) print(`${JSON.stringify(record)}\n`);
    else {
      const { shownEscaped } = await import('../lib/core/escape.ts');
      const verb = { approve: 'approved', rebuild: 'rebuilding', rm: 'removed' }[command];
      print(`${target!.repo}#${target!.pr} ${verb}: ${shownEscaped(String(record.state))}\n`);
    }
    return 0;
  } catch (error) {
    if (!(error instanceof PreviewRefused)) throw error;
    log.error(error.message);
    return 1;
  }
}

await runCli(spec, main);
