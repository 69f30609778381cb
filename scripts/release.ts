#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// release REPO --tag TAG     run the repo's release script in the checked-out tag
// release publish DIR ...    pack, sign and publish an app release for launchfit
import { runCli, type Args, type CliSpec, type CommandSpec } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import { report, validateRef } from '../lib/build/job.ts';
import { abortOnSignals } from '../lib/core/signals.ts';
import { newJobId, validateJobId } from '../lib/jobs/job-id.ts';
import type { Logger } from '../lib/core/log.ts';
import { validateName } from '../lib/core/names.ts';
import { findConfigFile, getRepo, loadShipkitConfig } from '../lib/config/shipkit-yml.ts';
import { validateVersion } from '../lib/release/version-file.ts';

const publishCommand: CommandSpec = {
  usage: `Usage: release publish DIR --name APP --platform PLATFORM --version V --key SECRET_KEY.asc
                       [--passphrase-file F] --to DEST [--keep N] [--codename NAME]
                       [--expires DAYS] [--json]

Packs DIR into APP-PLATFORM-V.tar.gz (reproducible: sorted entries, fixed mtime and owner),
signs it (detached binary OpenPGP signature, as gpg --detach-sign makes), writes VERSION with
SHA256, SIZE and EXPIRES and signs it as VERSION.sig, and publishes them to DEST: the tarball
and its .sig first, VERSION.sig and VERSION last, each by temp file + rename. The public key
is published as pubkey.asc (clients trust it only against a pinned fingerprint).

Options:
  --name APP               app name (letters, digits, . _ -)
  --platform PLATFORM      e.g. gnu-linux
  --version V              dot-separated hexadecimal, e.g. 1.23.42b; must not go down
  --key FILE               armored OpenPGP secret key
  --passphrase-file FILE   passphrase for the key (first line)
  --to DEST                a local folder, s3://bucket/prefix or user@host:path
  --keep N                 releases kept on DEST, the current one always (default 5)
  --codename NAME          written as RELEASE NAME
  --expires DAYS           VERSION expires after DAYS (default 30; 0 = never)
  --json                   print the result as JSON

Exit codes: 0 published, 1 failed, 2 usage or configuration error.`,
  flags: {
    name: { type: 'string' }, platform: { type: 'string' }, version: { type: 'string' }, key: { type: 'string' },
    'passphrase-file': { type: 'string' }, to: { type: 'string' }, codename: { type: 'string' }, json: { type: 'boolean' },
    keep: { type: 'integer', min: 1, max: 10_000 },
    expires: { type: 'integer', min: 0, max: 36_500 },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

const releaseCliSpec: CliSpec = {
  name: 'release',
  usage: `Usage: release REPO --tag TAG [--config FILE] [--job-id ID] [--json]
       release publish DIR --name APP --platform PLATFORM --version V --key SECRET_KEY.asc
               [--passphrase-file F] --to DEST [--keep N] [--codename NAME] [--expires DAYS]

release REPO --tag TAG
  Checks out TAG in DATA/repos/REPO and runs the repo's release script (\`release:\` in
  shipkit.yml, default release.sh) with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA in its
  environment. Output goes to DATA/logs/REPO/logs.txt (see \`logs REPO\`); the script's exit
  code is the release's. A missing or non-executable script fails with exit 1.

  --config FILE   shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                  ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
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
  flags: { config: { type: 'string' }, tag: { type: 'string' }, 'job-id': { type: 'string' }, json: { type: 'boolean' } },
  minPositionals: 1,
  maxPositionals: 1,
  needs: ['bash', 'git'],
  commands: { publish: publishCommand },
};

async function releaseMain(args: Args, log: Logger): Promise<number> {
  const name = String(args._[0]);
  if (args.tag === undefined) throw new UsageError('Missing --tag TAG: which tag to release, e.g. --tag v1.4.0.');
  const tag = validateRef(String(args.tag).replace(/^refs\/tags\//, ''), 'tag');
  const id = args['job-id'] !== undefined ? validateJobId(args['job-id']) : newJobId();
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const repo = getRepo(config, name);
  const { runRelease } = await import('../lib/build/release.ts');
  const controller = abortOnSignals();
  return report(await runRelease({ config, repo, tag, id, log, signal: controller.signal }), { json: args.json, log, stdout: process.stdout });
}

async function publishMain(args: Args, log: Logger): Promise<number> {
  // Values that were given are checked first, so a bad name is reported even when more is missing.
  if (typeof args.name === 'string' && args.name) validateName(args.name, 'app name (--name)');
  if (typeof args.platform === 'string' && args.platform) validateName(args.platform, 'platform (--platform)');
  if (typeof args.version === 'string' && args.version) validateVersion(args.version, '--version');
  for (const flag of ['name', 'platform', 'version', 'key', 'to']) {
    if (typeof args[flag] !== 'string' || args[flag] === '') throw new UsageError(`Missing --${flag}. Run \`release publish --help\` for usage.`);
  }
  const { publishRelease } = await import('../lib/release/publish.ts');
  const result = await publishRelease({
    dir: String(args._[0]), name: args.name, platform: args.platform, version: args.version, key: args.key,
    passphraseFile: args['passphrase-file'], to: args.to, keep: args.keep, codename: args.codename, expiresDays: args.expires, log,
  });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`Published ${result.file} (${result.size} bytes, sha256 ${result.sha256}) to ${result.to}${result.unchanged ? ' (unchanged)' : ''}\n`);
  return 0;
}

await runCli(releaseCliSpec, (args, log) => (args.command === 'publish' ? publishMain(args, log) : releaseMain(args, log)));
