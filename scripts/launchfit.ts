#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// launchfit: install a signed release from an update server, supervise the app, switch
// atomically to new releases and roll back. Wiring only; the work is in lib/launchfit/.
import process from 'node:process';
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';
import { askRunning, requestOverSocket } from '../lib/launchfit/control.ts';
import { deployOnce, rollbackOnce, runLauncher, updateOnce } from '../lib/launchfit/launcher.ts';
import { deployPaths } from '../lib/launchfit/state.ts';
import { collectStatus, formatStatus, type Status } from '../lib/launchfit/status.ts';
import type { CheckResult } from '../lib/launchfit/update.ts';
import { validateVersion } from '../lib/release/version-file.ts';

const spec: CliSpec = {
  name: 'launchfit',
  usage: `Usage:
  launchfit URL [--dir DIR] [--keyfile PUBKEY.asc] [--key FINGERPRINT]   same as deploy
  launchfit deploy [URL] [--dir DIR] [--keyfile PUBKEY.asc] [--key FINGERPRINT]
  launchfit run      [--dir DIR]     supervise the app, poll for updates, control socket
  launchfit update   [--dir DIR]     check now (through the socket when run is up)
  launchfit rollback [--dir DIR] [--to VERSION]
  launchfit status   [--dir DIR] [--json]

deploy installs the current release from URL into DIR (default: the current folder; it must
be empty the first time, and launchify.yml is written there). Releases are verified against
--keyfile (a local public key) or the key on the server matching the full --key fingerprint.

Options:
  --dir DIR          the deploy folder (default: .)
  --keyfile FILE     trusted public key (armored or binary), copied to DIR/trusted.asc
  --key FINGERPRINT  full fingerprint to pin (or a key ID selecting from --keyfile)
  --to VERSION       rollback: the installed version to go back to (default: the previous)
  --force            update: ignore the cached ETag and re-read VERSION
  --json             machine-readable results on stdout
  -h, --help         this help;  --version  the version

Exit codes: 0 ok, 1 the update/verification failed or was rolled back, 2 usage/config error.
See README.md (launchfit) and launchify.example.yml.`,
  string: ['dir', 'keyfile', 'key', 'to'],
  boolean: ['json', 'force'],
  maxPositionals: 2,
};

const COMMANDS = new Set(['deploy', 'run', 'update', 'rollback', 'status']);

function printResult(result: CheckResult, args: Args): number {
  process.stdout.write(args.json ? `${JSON.stringify(result)}\n` : `${result.message}\n`);
  return result.action === 'unhealthy' ? 1 : 0;
}

async function main(args: Args, log: Logger): Promise<number> {
  const positionals = args._ as string[];
  let command = positionals[0] ?? 'deploy';
  let url: string | undefined;
  if (!COMMANDS.has(command)) {
    if (!/^https?:\/\//.test(command)) throw new UsageError(`Unknown command ${JSON.stringify(command)}; use deploy, run, update, rollback or status (or give a URL).`);
    url = command;
    command = 'deploy';
    if (positionals.length > 1) throw new UsageError('Give only one URL.');
  } else if (positionals.length > 1) {
    if (command !== 'deploy') throw new UsageError(`${command} takes no argument besides options.`);
    url = positionals[1];
  }
  const dir = args.dir ?? process.cwd();
  const paths = deployPaths(dir);

  switch (command) {
    case 'deploy': {
      const result = await deployOnce(dir, { url, keyfile: args.keyfile, key: args.key }, log);
      const code = printResult(result, args);
      if (!args.json && result.action === 'installed') process.stderr.write(`Start it with: launchfit run --dir ${dir}\n`);
      return code;
    }
    case 'update': {
      const live = await askRunning(paths.socket, 'POST', '/update');
      return printResult(live ? live.result as CheckResult : await updateOnce(dir, log, { force: Boolean(args.force) }), args);
    }
    case 'rollback': {
      if (args.to !== undefined) validateVersion(String(args.to), '--to version');
      const query = args.to ? `?to=${encodeURIComponent(args.to)}` : '';
      const live = await askRunning(paths.socket, 'POST', `/rollback${query}`);
      return printResult(live ? live.result as CheckResult : await rollbackOnce(dir, log, args.to), args);
    }
    case 'status': {
      const live = await requestOverSocket(paths.socket, 'GET', '/status', 10_000).catch(() => undefined);
      const status = (live?.body.ok ? live.body.result : await collectStatus(paths)) as Status;
      process.stdout.write(args.json ? `${JSON.stringify(status)}\n` : formatStatus(status));
      return 0;
    }
    case 'run': {
      let stop!: () => void;
      const stopSignal = new Promise<void>((resolve) => { stop = resolve; });
      process.on('SIGTERM', () => stop());
      process.on('SIGINT', () => stop());
      await runLauncher({
        dir, log, stopSignal,
        intervalMs: process.env.LAUNCHFIT_INTERVAL_MS ? Number(process.env.LAUNCHFIT_INTERVAL_MS) : undefined,
        onReady: ({ socket }) => log.info(`launchfit ready; control socket ${socket}`),
      });
      return 0;
    }
  }
  return 0;
}

await runCli(spec, main);
