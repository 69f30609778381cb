#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// fleet forget APP --fleet URL --fleet-secret REF (HOST... | --silent-for DAYS)
//   take hosts out of hook-server's fleet registry (docs/fleet.md "Forgetting hosts").
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import { validateName } from '../lib/core/names.ts';

const forgetUsage = `Usage: fleet forget APP --fleet URL --fleet-secret file:PATH|env:NAME HOST...   (shipkit fleet forget …)
       fleet forget APP --fleet URL --fleet-secret file:PATH|env:NAME --silent-for DAYS

Takes hosts out of hook-server's fleet registry of APP (POST /fleet/forget): the hosts named,
or every host whose latest report is more than DAYS days old. A forgotten host is no longer in
GET /fleet/APP, so \`release rollout\` stops waiting for it, and no longer counts against
max_hosts. If it reports again, it enrols again, as a new host does. hook-server also forgets
hosts silent for longer than forget_after (default 30 days) on its own, every hour.

  HOST                    a host id: 32 lowercase hex characters, as in DIR/.launchfit/host-id
  --silent-for DAYS       forget every host whose latest report is older than DAYS days
  --fleet URL             hook-server, e.g. http://ci.example.com:8080
  --fleet-secret SECRET   the app's fleet secret (fleet: in hook-server's shipkit.yml):
                          file:PATH (first line) or env:NAME
  --json                  print {"app", "forgotten"} as JSON
  -h, --help              this help

Exit codes: 0 done (also when no host was forgotten), 1 hook-server could not be reached or
failed, 2 usage or configuration error (nothing forgotten).

Examples:
  shipkit fleet forget my-app --fleet http://127.0.0.1:9000 --fleet-secret file:/etc/shipkit/fleet-my-app.secret \\
    0123456789abcdef0123456789abcdef
  shipkit fleet forget my-app --fleet http://127.0.0.1:9000 --fleet-secret env:FLEET_SECRET --silent-for 7
`;

const fleetCliSpec: CliSpec = {
  name: 'fleet',
  usage: `Usage: fleet forget APP --fleet URL --fleet-secret file:PATH|env:NAME (HOST... | --silent-for DAYS)

hook-server's fleet registry: which hosts report each app's updates (docs/fleet.md). Run as
\`shipkit fleet …\`.

fleet forget APP ...
  Takes the named hosts, or those silent for --silent-for DAYS, out of the registry, so that
  \`release rollout\` no longer waits for them (see \`fleet forget --help\`).
`,
  maxPositionals: 0,
  commands: {
    forget: {
      usage: forgetUsage,
      flags: {
        fleet: { type: 'string' },
        'fleet-secret': { type: 'string' },
        'silent-for': { type: 'integer', min: 1, max: 36_500 },
        json: { type: 'boolean' },
      },
      minPositionals: 1,
    },
  },
};

async function forgetMain(args: Args): Promise<number> {
  const app = validateName(String(args._[0]), 'app name');
  const hosts = args._.slice(1);
  const silentFor = args['silent-for'] as number | undefined;
  if (hosts.length > 0 && silentFor !== undefined)
    throw new UsageError('Name hosts or give --silent-for DAYS, not both. Run `fleet forget --help` for usage.');
  if (hosts.length === 0 && silentFor === undefined)
    throw new UsageError('Name the hosts to forget, or give --silent-for DAYS. Run `fleet forget --help` for usage.');
  const { badHostId, forgetHosts } = await import('../lib/release/rollout/fleet-client.ts');
  const bad = badHostId(hosts);
  if (bad !== undefined)
    throw new UsageError(
      `${JSON.stringify(bad.slice(0, 40))} is not a host id: 32 lowercase hex characters, as in DIR/.launchfit/host-id.`,
    );
  for (const flag of ['fleet', 'fleet-secret']) {
    if (typeof args[flag] !== 'string' || args[flag] === '')
      throw new UsageError(`Missing --${flag}. Run \`fleet forget --help\` for usage.`);
  }
  const { resolveSecretFlag } = await import('../lib/core/secrets.ts');
  const secret = await resolveSecretFlag(String(args['fleet-secret']), '--fleet-secret');
  const forgotten = await forgetHosts({
    fleet: String(args.fleet),
    app,
    secret,
    ...(silentFor === undefined ? { hosts } : { silentForDays: silentFor }),
  });
  if (args.json) process.stdout.write(`${JSON.stringify({ app, forgotten })}\n`);
  else {
    const what = silentFor === undefined ? `of the ${hosts.length} named` : `silent for over ${silentFor} days`;
    process.stdout.write(`Forgot ${forgotten} host${forgotten === 1 ? '' : 's'} of ${app} (${what}).\n`);
  }
  return 0;
}

await runCli(fleetCliSpec, (args) => {
  if (args.command === 'forget') return forgetMain(args);
  throw new UsageError('Missing the action: fleet forget. Run `fleet --help` for usage.');
});
