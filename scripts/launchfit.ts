#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// launchfit: install a signed release from an update server, supervise the app, switch
// atomically to new releases and roll back. Wiring only; the work is in lib/launchfit/.
import process from 'node:process';
import { allowGcNudges, keepYoungGenerationSmall, skipOptimizingCompiler } from '../lib/core/v8-flags.ts';
import { runCli, type Args, type CliSpec, type FlagSpec } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';
import type { CheckResult } from '../lib/launchfit/install/context.ts';

// First, before the heap grows: an update streams a release through short-lived buffers (docs/internals.md).
keepYoungGenerationSmall();

const dirFlag: Record<string, FlagSpec> = { dir: { type: 'string' }, json: { type: 'boolean' } };
const DIR_HELP = `  --dir DIR          the deploy folder (default: .)
  --json             machine-readable results on stdout (and JSON log lines)`;
const EXIT_CODES = 'Exit codes: 0 ok, 1 the update/verification failed or was rolled back, 2 usage/config error.';

const spec: CliSpec = {
  name: 'launchfit',
  usage: `Usage:
  launchfit URL [--dir DIR] [--keyfile PUBKEY.asc] [--key FINGERPRINT]   same as deploy
  launchfit deploy [URL] [--dir DIR] [--keyfile PUBKEY.asc] [--key FINGERPRINT]
  launchfit run      [--dir DIR]     supervise the app, poll for updates, control socket
  launchfit update   [--dir DIR] [--force]   check now (through the socket when run is up)
  launchfit rollback [--dir DIR] [--to VERSION [--force]]
  launchfit status   [--dir DIR] [--json]
  launchfit host     --dir HOST      run every deploy folder listed in HOST/roster/

deploy installs the current release from URL into DIR (default: the current folder; it must
be empty the first time, and launchify.yml is written there). Releases are verified against
--keyfile (a local public key) or the key on the server matching the full --key fingerprint.
Each command has its own help: launchfit COMMAND --help.

${EXIT_CODES}
See docs/launchfit.md and launchify.example.yml.`,
  defaultCommand: { name: 'deploy', when: /^https?:\/\// },
  commands: {
    deploy: {
      usage: `Usage: launchfit deploy [URL] [--dir DIR] [--keyfile PUBKEY.asc] [--key FINGERPRINT] [--json]
       launchfit URL [...]   (the same)

Installs the current release from the update server URL into DIR. The first time, DIR must be
empty (besides .launchfit/) and launchify.yml is written there with URL and the trusted key;
later, URL may be left out. Through the running launchfit when \`launchfit run\` is up.

Options:
${DIR_HELP}
  --keyfile FILE     trusted public key (armored or binary), copied to DIR/trusted.asc
  --key FINGERPRINT  full fingerprint to pin (or a key ID selecting from --keyfile)

${EXIT_CODES}`,
      flags: { ...dirFlag, keyfile: { type: 'string' }, key: { type: 'string' } },
      maxPositionals: 1,
    },
    run: {
      usage: `Usage: launchfit run [--dir DIR] [--json]

Supervises the app in DIR/current, polls the update server (updates.interval), switches to new
releases, and answers \`launchfit update|rollback|status\` on DIR/.launchfit/control.sock (and
signed requests on control.listen). SIGTERM/SIGINT stop the app and launchfit.

Options:
${DIR_HELP}`,
      flags: dirFlag,
      maxPositionals: 0,
    },
    host: {
      usage: `Usage: launchfit host --dir HOST [--json]

Runs launchfit for every deploy folder listed in HOST/roster/, in this one process: a file
NAME.json there, {"dir": "/abs/deploy-folder", "log": "/abs/file.log"}, starts its launcher
(installing the current release first when the folder has none), and removing it stops the
launcher and its app. When a launcher stops, HOST/ended/NAME says why. With nothing listed for
a few seconds, the host exits; SIGTERM/SIGINT stop every app and the host. Another host already
running for HOST makes this one exit 0. kill -9 leaves the apps serving; the next host adopts them.

Options:
  --dir HOST         the host's folder (roster/, ended/, host.pid)
  --json             JSON log lines`,
      flags: dirFlag,
      maxPositionals: 0,
    },
    update: {
      usage: `Usage: launchfit update [--dir DIR] [--force] [--json]

Checks the update server now and installs a newer release; through the running launchfit when
\`launchfit run\` is up (which then also restarts the app).

Options:
${DIR_HELP}
  --force            ignore the cached ETag and re-read VERSION

${EXIT_CODES}`,
      flags: { ...dirFlag, force: { type: 'boolean' } },
      maxPositionals: 0,
    },
    rollback: {
      usage: `Usage: launchfit rollback [--dir DIR] [--to VERSION [--force]] [--json]

Switches current back to an installed release; through the running launchfit when
\`launchfit run\` is up. Then, as an update does, it waits until the app is up again (its
health check answers, or without app.health it stays up for healthy_after) and says how long
that took; exit 1 if the release gone back to does not come up.

Options:
${DIR_HELP}
  --to VERSION       the installed version to go back to (default: the previous release)
  --force            go back to a version marked bad (clears its mark); refused without it

${EXIT_CODES}`,
      flags: { ...dirFlag, to: { type: 'string' }, force: { type: 'boolean' } },
      maxPositionals: 0,
    },
    status: {
      usage: `Usage: launchfit status [--dir DIR] [--json]

Shows the current and previous releases, versions, the last update check and, when
\`launchfit run\` is up, the app's state.

Options:
${DIR_HELP}`,
      flags: dirFlag,
      maxPositionals: 0,
    },
  },
};

function printResult(result: CheckResult, args: Args): number {
  process.stdout.write(args.json ? `${JSON.stringify(result)}\n` : `${result.message}\n`);
  return result.action === 'unhealthy' ? 1 : 0;
}

async function main(args: Args, log: Logger): Promise<number> {
  const dir: string = args.dir ?? process.cwd();
  // A one-shot command is over in seconds; `run` (and `host`) supervises for months and keeps V8's optimizer.
  // Its downloads and unpacking have V8 collect their chunks as they go (docs/internals.md).
  if (args.command !== 'run' && args.command !== 'host') {
    skipOptimizingCompiler();
    allowGcNudges();
  }
  // Loaded here, not at the top: --help and a bad flag load nothing of launchfit (docs/benchmarks.md).
  const [{ deployOnce }, { runLauncher }, { runHereOrOnRunning }, { formatStatus }] = await Promise.all([
    import('../lib/launchfit/deploy.ts'),
    import('../lib/launchfit/launcher.ts'),
    import('../lib/launchfit/local-or-running.ts'),
    import('../lib/launchfit/control/status.ts'),
  ]);
  switch (args.command) {
    case 'deploy': {
      const result = await deployOnce(dir, { url: args._[0], keyfile: args.keyfile, key: args.key }, log);
      const code = printResult(result, args);
      if (!args.json && result.action === 'installed')
        process.stderr.write(`Start it with: launchfit run --dir ${dir}\n`);
      return code;
    }
    case 'update':
      return printResult(await runHereOrOnRunning(dir, { command: 'update', force: args.force }, log), args);
    case 'rollback':
      return printResult(
        await runHereOrOnRunning(dir, { command: 'rollback', to: args.to, force: args.force }, log),
        args,
      );
    case 'status': {
      const status = await runHereOrOnRunning(dir, { command: 'status' }, log);
      process.stdout.write(args.json ? `${JSON.stringify(status)}\n` : formatStatus(status));
      return 0;
    }
    case 'run': {
      await runLauncher({
        dir,
        log,
        stopSignal: stopOnSignal(),
        intervalMs: process.env.LAUNCHFIT_INTERVAL_MS ? Number(process.env.LAUNCHFIT_INTERVAL_MS) : undefined,
        onReady: ({ socket }) => log.info(`launchfit ready; control socket ${socket}`),
      });
      return 0;
    }
    case 'host': {
      if (!args.dir) throw new UsageError('launchfit host needs --dir HOST.');
      const { runHost } = await import('../lib/launchfit/host.ts');
      await runHost({ dir: args.dir, log, stopSignal: stopOnSignal() });
      return 0;
    }
  }
  return 0;
}

/** Resolves at the first SIGTERM or SIGINT. */
function stopOnSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.on('SIGTERM', () => resolve());
    process.on('SIGINT', () => resolve());
  });
}

await runCli(spec, main);
