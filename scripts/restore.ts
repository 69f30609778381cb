#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// restore --from DEST [--to DIR]: hook-server's control plane back from a backup, in one command,
// on this machine or a new one (docs/backup.md).
import { runCli, type Args } from '../lib/core/cli.ts';
import type { Logger } from '../lib/core/log.ts';
import path from 'node:path';

const usage = `Usage: restore --from DEST [--to DIR] [--force] [--decrypt-key KEY.asc]
               [--passphrase-file F] [--key PUBKEY.asc] [--no-database] [--json]
                                                             (shipkit restore …)

Checks the backup in DEST whole (as \`backup verify\` does; a damaged part, a bad signature or a
newer format is refused and nothing is written), then puts shipkit.yml into DIR and DATA where
the config says (relative to DIR, or the same absolute path). A DIR or DATA that exists is
refused without --force; with it, it is kept aside as NAME.before-restore-TIME. The secret
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
  --key FILE             check MANIFEST.json.sig against this armored public key
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
    log,
  };
  const result = await withLocalBackup(args.from, log, (from) => restoreBackup({ ...options, from }));
  for (const aside of result.keptAside) log.warn('what was there is kept aside', { path: aside });
  for (const file of result.missing) log.warn('a secret file to put back by hand', { file });
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ config: result.config, data: result.data, kept_aside: result.keptAside, missing: result.missing, database: result.database ?? null })}\n`,
    );
  else
    process.stdout.write(
      `Restored ${result.config} and ${result.data}${result.database ? `; the queue database: ${result.database}` : ''}.\nStart it: hook-server --config ${result.config}\n`,
    );
  return 0;
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
      database: { type: 'boolean', default: true },
      json: { type: 'boolean' },
    },
    maxPositionals: 0,
  },
  main,
);
