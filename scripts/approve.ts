#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// approve APP VERSION --env ENV --key KEY.asc: an approval of the release, signed with the
// approver's own key and kept at the environment's DEST (docs/environments.md "Approvals").
import { runCli, type Args, type CliSpec } from '../lib/core/cli.ts';
import { ConfigError, UsageError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';

const spec: CliSpec = {
  name: 'approve',
  usage: `Usage: approve APP VERSION --env ENV --key KEY.asc [--passphrase-file F] [--config FILE]
               [--state DIR] [--json]   (shipkit approve …)

Approves release VERSION of APP for the environment ENV, whose \`approvals:\` in shipkit.yml
names the approvers' public keys. The release is the one the source environment's (ENV's
from:) signed ledger records: its sha256 is read there, never typed. The approval is a small
JSON document bound to APP, VERSION, that sha256 and ENV, signed with KEY.asc (your own key, one
of the approvers'), and written to ENV's DEST as approvals/APP-VERSION-ENV-FPR.json with its
.sig; approving again replaces yours. It counts until it expires (approvals: expires:).

Refused, with nothing written: a key that is not one of the approvers', a revoked key, and the
key that published or promoted this version (an approval must come from someone else).

Options:
  --env ENV                the environment to approve it for (it must have approvals:)
  --key FILE               your armored OpenPGP secret key
  --passphrase-file FILE   its passphrase (first line)
  --config FILE            shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                           ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --state DIR              what was read at each DEST, as \`release history\` keeps it (default
                           $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --json                   print the approval and the count as JSON

Exit codes: 0 approved, 1 failed (a DEST that failed), 2 usage, config, or a refusal above.
`,
  flags: {
    env: { type: 'string' },
    key: { type: 'string' },
    'passphrase-file': { type: 'string' },
    config: { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 2,
  maxPositionals: 2,
};

async function main(args: Args, log: Logger): Promise<number> {
  const [{ validateName }, { validateVersion }] = await Promise.all([
    import('../lib/core/names.ts'),
    import('../lib/release/format/version-file.ts'),
  ]);
  const [name, version] = [validateName(args._[0], 'app name'), validateVersion(args._[1], 'VERSION')];
  for (const flag of ['env', 'key'])
    if (typeof args[flag] !== 'string' || !args[flag])
      throw new UsageError(`Missing --${flag}. Run \`approve --help\` for usage.`);
  validateName(args.env, 'environment name (--env)');
  const { findConfigFile, loadShipkitConfig } = await import('../lib/config/shipkit-yml.ts');
  const { environmentOf } = await import('../lib/pipeline/environments.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const { app, env } = environmentOf(config, name, args.env);
  const rule = env.approvals;
  if (!rule)
    throw new UsageError(
      `${env.name} needs no approvals: it has no approvals: in ${config.file}. Nothing was written.`,
    );
  const source = env.from === undefined ? undefined : app.environments.get(env.from);
  if (!source)
    throw new ConfigError(
      `${env.name} has no source environment (from:) in ${config.file}: the release to approve is read there. Nothing was written.`,
    );
  const [{ openDestination }, { ledgerTrustOf, recordAtSource }, { giveApproval, checkApprovals }] = await Promise.all([
    import('../lib/release/dest/destination.ts'),
    import('../lib/release/gates/approval-release.ts'),
    import('../lib/release/gates/approvals.ts'),
  ]);
  const trust = await ledgerTrustOf({
    state: args.state,
    releaseKey: app.key,
    by: `${config.file}'s apps.${app.name}.key`,
    say: (line) => process.stderr.write(`${line}\n`),
  });
  const record = await recordAtSource(openDestination(source.to, log), {
    ...trust,
    app: app.name,
    version,
    sourceName: source.name,
  });
  const subject = { app: app.name, version: record.version, sha256: record.sha256, env: env.name };
  const dest = openDestination(env.to, log);
  const { publishers, publisherUsers } = record;
  const approval = await giveApproval({
    dest,
    ...subject,
    key: args.key,
    passphraseFile: args['passphrase-file'],
    rule,
    publishers,
    log,
  });
  const check = await checkApprovals({ dest, ...subject, rule, publishers, publisherUsers });
  if (args.json) process.stdout.write(`${JSON.stringify({ ...subject, approval, check })}\n`);
  else
    process.stdout.write(
      `Approved ${subject.app} ${subject.version} (sha256 ${subject.sha256}) for ${env.name} until ` +
        `${approval.expires}: ${check.valid.length} of ${check.required} approvals\n`,
    );
  return 0;
}

await runCli(spec, main);
