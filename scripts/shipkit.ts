#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// shipkit: lists the scripts; `shipkit SCRIPT …` runs one. Also the multi-call entry of the one-file
// bundle (started as `build`, `hook-server`, … it runs that script); each script is a literal
// import() so the bundler includes it, and only the one that runs is evaluated.
// The whole story: docs/internals.md.
import { prepareBuiltins, requireBuiltin } from '../lib/core/builtin.ts';

const SCRIPTS: Record<string, { about: string; load: () => Promise<unknown> }> = {
  'hook-server': {
    about: 'receive forge webhooks and run builds and releases',
    load: () => import('./hook-server.ts'),
  },
  build: {
    about: 'pull, downloads, install, compile, upload, publish, rollout: one build of a repo',
    load: () => import('./build.ts'),
  },
  downloads: { about: 'fetch the files listed in manifest.txt', load: () => import('./downloads.ts') },
  upload: { about: 'send a folder to rsync, S3 or a git branch', load: () => import('./upload.ts') },
  logs: { about: "show, follow and rotate a repo's job logs", load: () => import('./logs.ts') },
  release: {
    about: "run a repo's release.sh; `release publish` packs and signs an app release",
    load: () => import('./release.ts'),
  },
  'server-update': {
    about: 'tell every fleet host to update a repo (signed requests)',
    load: () => import('./server-update.ts'),
  },
  'slave-activate': {
    about: 'replace ~/repos/REPO with a fresh clone, once or on signed requests',
    load: () => import('./slave-activate.ts'),
  },
  launchfit: {
    about: 'install, supervise, update and roll back a signed app release',
    load: () => import('./launchfit.ts'),
  },
  backup: {
    about: "copy hook-server's control plane while it runs; `backup verify` checks a copy",
    load: () => import('./backup.ts'),
  },
  restore: {
    about: 'put a backup of the control plane back, on this machine or a new one',
    load: () => import('./restore.ts'),
  },
  fleet: {
    about: "forget hosts in hook-server's fleet registry (`fleet forget`)",
    load: () => import('./fleet.ts'),
  },
  deliveries: {
    about: 'with queue:, list the webhook deliveries kept, or replay one as a new job',
    load: () => import('./deliveries.ts'),
  },
  previews: {
    about: 'list the previews of pull requests; approve, rebuild or remove one',
    load: () => import('./previews.ts'),
  },
  approve: {
    about: "approve a release for an environment with approvals:, signed with the approver's key",
    load: () => import('./approve.ts'),
  },
  approvals: {
    about: 'show the releases waiting for approval and the approvals that count',
    load: () => import('./approvals.ts'),
  },
  audit: {
    about: "print or verify the control plane's audit trail (logins, replays, rollouts, rollbacks)",
    load: () => import('./audit.ts'),
  },
  worker: {
    about: 'take build jobs from the PostgreSQL queue and run them on this machine',
    load: () => import('./worker.ts'),
  },
  // The literate-programming compiler build runs for repos with lprc.js, carried along so that
  // the one-file bundle compiles them with nothing installed.
  litpro: {
    about: 'the bundled litpro (used by build for repos with lprc.js)',
    // @ts-expect-error litpro ships no type declarations; it is only run, never called.
    load: () => import('litpro/litpro.js'),
  },
};

const usage = `Usage: shipkit SCRIPT [ARGS...]     run one script (\`shipkit SCRIPT --help\` for its usage)
       shipkit [--help | --version]   list the scripts
       shipkit example-config         print shipkit.example.yml: every key of shipkit.yml,
                                      commented (\`shipkit example-config > shipkit.yml\`)

Scripts:
${Object.entries(SCRIPTS)
  .map(([name, { about }]) => `  ${name.padEnd(15)} ${about}`)
  .join('\n')}

A link to this program named after a script (e.g. \`hook-server\`) runs that script.
`;

/** The script a link was named after (`/usr/bin/build`, `build.mjs`), if any. */
function scriptOfLink(file: string | undefined): string | undefined {
  // Its last part, without node:path: the CommonJS entry's copy of that module's exports is ~0.1 ms of a start.
  const name = (file ?? '').slice((file ?? '').lastIndexOf('/') + 1).replace(/\.(mjs|cjs|js|ts)$/, '');
  return Object.hasOwn(SCRIPTS, name) && name !== 'litpro' ? name : undefined;
}

// In the one file (tools/multicall.ts): each script's `--help` text, captured when it was built,
// so that `SCRIPT --help` prints it without decompressing and compiling the script.
declare const __shipkitHelp: Record<string, string> | undefined;
const helpOf = (name: string): string | undefined =>
  typeof __shipkitHelp === 'object' && Object.hasOwn(__shipkitHelp, name) ? __shipkitHelp[name] : undefined;

// Set by the bundler: the one file answers `shipkit --version` without loading the CLI parser.
declare const SHIPKIT_VERSION: string | undefined;

/**
 * The answers given without loading a script, written straight to fd 1: process.stdout would load
 * Node's streams first (~1.5 ms of a 50 ms start). They leave as the scripts do when the reader
 * has gone (`shipkit.mjs hook-server --help | true`): exit 141, no stack trace (lib/core/cli.ts
 * says why). A full non-blocking pipe (EAGAIN) gets the rest through process.stdout, which waits.
 */
async function print(text: string): Promise<void> {
  // Through getBuiltinModule, or the require main's prepareBuiltins readied where Node has none.
  const { writeSync } = requireBuiltin<typeof import('node:fs')>('node:fs');
  const bytes = Buffer.from(text);
  let at = 0;
  try {
    while (at < bytes.length) at += writeSync(1, bytes, at);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') process.exit(141);
    if (code !== 'EAGAIN') throw error;
  }
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(141);
    throw error;
  });
  process.stdout.write(bytes.subarray(at));
}

/**
 * Runs the script `name`. In the one file a script's module hands back its run as `done`
 * (tools/multicall.ts); from the sources, import() itself waits for the script's top level.
 */
async function runScript(name: string): Promise<void> {
  const loaded = (await SCRIPTS[name].load()) as { done?: Promise<unknown> };
  await loaded.done;
}

async function main(): Promise<void> {
  // A Node without getBuiltinModule (20.0–20.15, 22.0–22.2) gets the one file's loader what it needs.
  await prepareBuiltins();
  const linked = scriptOfLink(process.argv[1]);
  const asked = process.argv[2];
  const onlyHelp = linked
    ? process.argv.length === 3 && process.argv[2] === '--help'
    : process.argv.length === 4 && process.argv[3] === '--help';
  const knownHelp = onlyHelp ? helpOf(linked ?? asked) : undefined;
  const alone = !linked && process.argv.length === 3 ? asked : undefined;
  if (knownHelp !== undefined) {
    await print(knownHelp);
  } else if (linked) {
    await runScript(linked);
  } else if (asked !== undefined && Object.hasOwn(SCRIPTS, asked)) {
    // The script reads its arguments from process.argv.slice(2), as when started on its own.
    process.argv.splice(1, 2, asked);
    await runScript(asked);
  } else if (alone === '--help' || alone === '-h') {
    await print(usage);
  } else if (alone === '--version' && typeof SHIPKIT_VERSION === 'string') {
    await print(`shipkit ${SHIPKIT_VERSION}\n`);
  } else {
    const [{ runCli }, { UsageError }] = await Promise.all([
      import('../lib/core/cli.ts'),
      import('../lib/core/errors.ts'),
    ]);
    await runCli({ name: 'shipkit', usage, maxPositionals: 1 }, async (args) => {
      if (args._[0] === 'example-config') {
        const { exampleConfigText } = await import('../lib/config/example-config.ts');
        process.stdout.write(await exampleConfigText());
        return 0;
      }
      if (args._.length)
        throw new UsageError(
          `Unknown script ${JSON.stringify(args._[0].slice(0, 40))}. Run \`shipkit\` to list the scripts.`,
        );
      process.stdout.write(usage);
      return 0;
    });
  }
}

// No top-level await: the one file's entry is also built as CommonJS, for the installed bins
// (tools/multicall.ts). A rejection is an uncaught error (printed, exit 1), as it was there.
void main();
