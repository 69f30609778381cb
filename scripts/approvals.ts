#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// approvals [APP]: for each environment with approvals: in shipkit.yml, the release waiting at its
// source and the approvals that count for it at its DEST (docs/environments.md "Approvals").
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import type { Logger } from '../lib/core/log.ts';
import type { AppConfig, EnvironmentConfig } from '../lib/config/environments.ts';
import type { ShipkitConfig } from '../lib/config/shipkit-yml.ts';

const spec: CliSpec = {
  name: 'approvals',
  usage: `Usage: approvals [APP] [--config FILE] [--state DIR] [--json]   (shipkit approvals …)

For each app in shipkit.yml (or APP alone) and each of its environments with \`approvals:\`:
the release waiting to move in (the source environment's current VERSION, while the
environment does not run it) and how many of the approvals at its DEST count, who is still
awaited, and one line for each approval there that does not count and why (forged, expired,
for another version, environment or sha256, a revoked key, the publisher's key).

  my-app 1.4.0 → production: 0 of 1 approvals (waiting for Alice <alice@example.com>, Bob <bob@example.com>)

Options:
  --config FILE   shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml, ./.shipkit/shipkit.yml,
                  /etc/shipkit/shipkit.yml)
  --state DIR     what was read at each DEST, as \`release history\` keeps it (default
                  $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --json          print {"environments": [...]}, each with its waiting release and check

Exit codes: 0 shown (also when nothing waits), 1 failed (a DEST that failed), 2 usage, config,
or a source ledger that does not verify.
`,
  flags: { config: { type: 'string' }, state: { type: 'string' }, json: { type: 'boolean' } },
  maxPositionals: 1,
};

/** The source environment of `env` (its from:), or undefined when it has none in `app`. */
function sourceOf(app: AppConfig, env: EnvironmentConfig): EnvironmentConfig | undefined {
  return env.from === undefined ? undefined : app.environments.get(env.from);
}

/** One environment's line (and refused lines), and what --json shows of it. */
async function environmentStatus(
  config: ShipkitConfig,
  app: AppConfig,
  env: EnvironmentConfig,
  args: Args,
  log: Logger,
) {
  const source = sourceOf(app, env);
  const head = `${app.name} → ${env.name}`;
  if (!source)
    return {
      json: { app: app.name, env: env.name, nothing: 'no source environment (from:)' },
      text: `${head}: no source environment (from:)\n`,
    };
  const [{ openDestination }, { ledgerTrustOf, waitingRelease }, { checkApprovals }] = await Promise.all([
    import('../lib/release/dest/destination.ts'),
    import('../lib/release/gates/approval-release.ts'),
    import('../lib/release/gates/approvals.ts'),
  ]);
  const target = openDestination(env.to, log);
  const trust = await ledgerTrustOf({
    state: args.state,
    releaseKey: app.key,
    by: `${config.file}'s apps.${app.name}.key`,
    say: (line) => process.stderr.write(`${line}\n`),
  });
  const waiting = await waitingRelease(openDestination(source.to, log), target, {
    ...trust,
    app: app.name,
    sourceName: source.name,
    targetName: env.name,
  });
  if ('nothing' in waiting)
    return {
      json: { app: app.name, env: env.name, nothing: waiting.nothing },
      text: `${head}: nothing waiting (${waiting.nothing})\n`,
    };
  const { version, sha256, publishers, publisherUsers } = waiting.release;
  const check = await checkApprovals({
    dest: target,
    app: app.name,
    version,
    sha256,
    env: env.name,
    rule: env.approvals!,
    publishers,
    publisherUsers,
  });
  const { shownEscaped } = await import('../lib/core/escape.ts');
  const awaited =
    check.valid.length < check.required && check.missing.length
      ? ` (waiting for ${check.missing.map(shownEscaped).join(', ')})`
      : '';
  const text =
    `${app.name} ${version} → ${env.name}: ${check.valid.length} of ${check.required} approvals${awaited}\n` +
    check.refused.map((line) => `  not counted: ${shownEscaped(line)}\n`).join('');
  return { json: { app: app.name, env: env.name, version, sha256, check }, text };
}

async function main(args: Args, log: Logger): Promise<number> {
  const { findConfigFile, loadShipkitConfig } = await import('../lib/config/shipkit-yml.ts');
  const { appOf } = await import('../lib/pipeline/environments.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const apps = args._.length ? [appOf(config, args._[0])] : [...config.apps.values()];
  const shown = [];
  for (const app of apps)
    for (const env of app.environments.values())
      if (env.approvals) shown.push(await environmentStatus(config, app, env, args, log));
  if (args.json) process.stdout.write(`${JSON.stringify({ environments: shown.map((s) => s.json) })}\n`);
  else
    process.stdout.write(
      shown.length ? shown.map((s) => s.text).join('') : `No environment in ${config.file} needs approvals.\n`,
    );
  return 0;
}

await runCli(spec, main);
