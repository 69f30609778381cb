#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// restore --from DEST [--to DIR]: hook-server's control plane back from a backup, in one command,
// on this machine or a new one (docs/backup.md).
import { runCli, type Args } from '../lib/core/cli.ts';
import type { Logger } from '../lib/core/log.ts';
import type { RestoreResult } from '../lib/backup/restore.ts';
import path from 'node:path';

const usage = `Usage: restore --from DEST [--to DIR] [--force] [--decrypt-key KEY.asc]
               [--passphrase-file F] [--key PUBKEY.asc] [--data-at PATH] [--no-database] [--json]
                                                             (shipkit restore …)

Checks the backup in DEST whole (as \`backup verify\` does; a damaged part, a bad signature or a
newer format is refused and nothing is written), then puts shipkit.yml into DIR and DATA where
the config says: inside DIR, or at the absolute path the backup recorded once you confirm it
with --data-at. A DIR or DATA that exists is refused without --force; with it, it is kept aside
as NAME.before-restore-TIME; a DATA a running hook-server uses is always refused. The secret
files come back decrypted with --decrypt-key, else each is named to put back by hand. A
backup made with queue: puts shipkit's schemas into the database the restored config names
(refused when that database already holds shipkit jobs, unless --force or --no-database). Then
start hook-server on the restored config: the same jobs, fleet and sessions, and no host needs
a change.

  --from DEST            the backup: a folder, s3://BUCKET/PREFIX or USER@HOST:PATH
  --to DIR               where shipkit.yml goes (default: ./.shipkit)
  --force                restore over an existing DIR or DATA (kept aside)
  --decrypt-key FILE     the armored secret key the backup's secrets were encrypted to
  --passphrase-file F    its passphrase (first line)
  --key FILE             check MANIFEST.json.sig against this armored public key (required)
  --data-at PATH         the absolute DATA the backup recorded, repeated to confirm it
  --no-database          leave the queue database as it is (it survived the machine)
  --json                 print {"config", "data", "kept_aside", "missing", "database"} as JSON

Exit codes: 0 restored, 1 the restore failed, 2 usage error, or the backup is refused.
`;

async function main(args: Args, log: Logger): Promise<number> {
  const { UsageError } = await import('../lib/core/errors.ts');
  if (typeof args.from !== 'string' || args.from === '')
    throw new UsageError('Missing --from DEST. Run `restore --help` for usage.');
  const { restoreBackup } = await import('../lib/backup/restore.ts');
  const { decrypterFor, verifierFor } = await import('../lib/backup/pgp.ts');
  const { withLocalBackup } = await import('../lib/backup/remote.ts');
  const options = {
    to: path.resolve(args.to ?? '.shipkit'),
    force: Boolean(args.force),
    decrypt: args['decrypt-key'] ? await decrypterFor(args['decrypt-key'], args['passphrase-file']) : undefined,
    verifySignature: args.key ? await verifierFor(args.key) : undefined,
    database: args.database !== false,
    dataAt: typeof args['data-at'] === 'string' ? args['data-at'] : undefined,
    log,
  };
  const result = await withLocalBackup(args.from, log, (from) => restoreBackup({ ...options, from }));
  for (const aside of result.keptAside) log.warn('what was there is kept aside', { path: aside });
  for (const secret of result.secrets)
    log.warn(secret.variable ? 'a secret to set by hand' : 'a secret file to put back by hand', {
      [secret.variable ? 'variable' : 'file']: secret.variable ?? secret.file,
      reason: secret.reason,
    });
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ config: result.config, data: result.data, kept_aside: result.keptAside, missing: result.missing, database: result.database ?? null, secrets: result.secrets })}\n`,
    );
  else process.stdout.write(startText(result));
  return 0;
}

/** What was restored and how to start it: with secrets missing, each named with how to supply it first. */
function startText(result: RestoreResult): string {
  const restored = `Restored ${result.config} and ${result.data}${result.database ? `; the queue database: ${result.database}` : ''}.\n`;
  if (!result.missing.length) return `${restored}Start it: hook-server --config ${result.config}\n`;
  const n = result.missing.length;
  return (
    restored +
    `hook-server will not start until ${n === 1 ? 'this secret is' : `these ${n} secrets are`} supplied:\n` +
    result.missing.map((line) => `  ${line}\n`).join('') +
    `Then start it: hook-server --config ${result.config}\n`
  );
}

await runCli(
  {
    name: 'restore',
    usage,
    flags: {
      from: { type: 'string' },
      to: { type: 'string' },
      force: { type: 'boolean' },
      'decrypt-key': { type: 'string' },
      'passphrase-file': { type: 'string' },
      key: { type: 'string' },
      'data-at': { type: 'string' },
      database: { type: 'boolean', default: true },
      json: { type: 'boolean' },
    },
    maxPositionals: 0,
  },
  main,
);
