#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// backup --to DEST | backup verify DEST: one copy of hook-server's control plane, made while it
// runs, and its check (docs/backup.md).
import path from 'node:path';
import { runCli, version, type Args, type CliSpec } from '../lib/core/cli.ts';
import type { Logger } from '../lib/core/log.ts';

const verifyUsage = `Usage: backup verify DEST [--key PUBKEY.asc] [--json]   (shipkit backup verify …)

Checks the backup in DEST without restoring it: MANIFEST.json (its format one this shipkit
reads), every part's size and sha256 (each a regular file: links, FIFOs and devices are
refused), and with --key the manifest's signature (MANIFEST.json.sig), which must then be there.
Without --key, a backup that says it was signed is checked but said to be unchecked (stderr).

  --key FILE     the armored public key of the key that signed the manifest (required signature)
  --json         print {"ok", "parts", "bytes", "created"} as JSON
Exit codes: 0 the backup is whole, 2 it is not (the damaged or missing part is named).
`;

const spec: CliSpec = {
  name: 'backup',
  usage: `Usage: backup (--to DEST | --into ROOT [--keep N]) [--config FILE] [--logs DAYS]
              [--encrypt-to PUBKEY.asc] [--sign-key KEY.asc] [--passphrase-file F]
              [--no-database] [--json]                        (shipkit backup …)
       backup verify DEST [--key PUBKEY.asc]

Copies hook-server's control plane into the new or empty folder DEST while hook-server runs:
shipkit.yml, DATA's job journal, job records and logs, pushes, the fleet registry and sessions.
Every record in the copy is whole. Secrets given as env: or file: outside the config folder
stay references; secret files inside it (the first start's webhook-secret and token) and
literal secrets in shipkit.yml are encrypted to --encrypt-to, or left out with a warning —
never written in clear. MANIFEST.json (each part's size and sha256) is written last, so a
backup cut short never looks whole. With queue: shipkit's schemas in PostgreSQL go in too,
through pg_dump (one consistent snapshot; the password never on a command line). Restore with \`shipkit restore --from DEST\`.

  --to DEST              a new or empty folder (made mode 0700), s3://BUCKET/PREFIX or USER@HOST:PATH
  --into ROOT            a new folder in ROOT named after the time (shipkit-20261124T031700Z)
  --keep N               with --into: keep the newest N whole backups there, remove older ones
  --config FILE          shipkit.yml (the same search as hook-server's)
  --encrypt-to FILE      an armored OpenPGP public key with an encryption subkey (docs/backup.md)
  --logs DAYS            keep only job logs changed in the last DAYS days (default: all)
  --sign-key FILE        sign MANIFEST.json with this armored secret key (MANIFEST.json.sig;
                         the manifest names the key's fingerprint: signed_by)
  --passphrase-file F    the --sign-key's passphrase (first line)
  --no-database          with queue:, leave the database out (back it up yourself)
  --json                 print {"to", "parts", "bytes", "left_out", "removed"} as JSON

Exit codes: 0 done, 1 the backup failed (nothing is left in DEST), 2 usage or configuration
error (nothing written). See docs/backup.md.
`,
  flags: {
    to: { type: 'string' },
    into: { type: 'string' },
    keep: { type: 'integer', min: 1, max: 10_000 },
    config: { type: 'string' },
    'encrypt-to': { type: 'string' },
    logs: { type: 'integer', min: 0, max: 36_500 },
    'sign-key': { type: 'string' },
    'passphrase-file': { type: 'string' },
    database: { type: 'boolean', default: true },
    json: { type: 'boolean' },
  },
  maxPositionals: 0,
  commands: {
    verify: {
      usage: verifyUsage,
      flags: { key: { type: 'string' }, json: { type: 'boolean' } },
      minPositionals: 1,
      maxPositionals: 1,
    },
  },
};

async function backupMain(args: Args, log: Logger): Promise<number> {
  const { UsageError } = await import('../lib/core/errors.ts');
  const to = typeof args.to === 'string' && args.to !== '' ? args.to : undefined;
  const into = typeof args.into === 'string' && args.into !== '' ? args.into : undefined;
  if (!to === !into)
    throw new UsageError(
      `${to ? 'Give --to DEST or --into ROOT, not both' : 'Missing --to DEST (or --into ROOT)'}. Run \`backup --help\` for usage.`,
    );
  if (args.keep !== undefined && !into) throw new UsageError('--keep N goes with --into ROOT.');
  const { backupTo, isRemote } = await import('../lib/backup/remote.ts');
  if (into && isRemote(into)) throw new UsageError('--into takes a local folder; give s3:// or host: as --to DEST.');
  const { findConfigFile, loadShipkitConfig } = await import('../lib/config/shipkit-yml.ts');
  const { takeBackup } = await import('../lib/backup/snapshot.ts');
  const { encrypterFor, signerFor } = await import('../lib/backup/pgp.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const encrypt = args['encrypt-to'] ? await encrypterFor(args['encrypt-to']) : undefined;
  const database = config.queue && args.database ? await queueDump(config.queue, path.dirname(config.file)) : undefined;
  const sign = args['sign-key'] ? await signerFor(args['sign-key'], args['passphrase-file']) : undefined;
  const { datedFolder, pruneBackups } = await import('../lib/backup/keep.ts');
  const now = new Date();
  const dest = to ?? datedFolder(into!, now);
  const taken = await backupTo(dest, log, (dir) =>
    takeBackup({
      config,
      to: dir,
      now,
      encrypt,
      database,
      logsDays: args.logs,
      sign,
      signedBy: sign?.fingerprint,
      version: version(),
      log,
    }),
  );
  const result = { ...taken, to: dest };
  const removed = into && args.keep !== undefined ? await pruneBackups(into, args.keep) : [];
  for (const old of removed) log.info('an older backup removed (--keep)', { path: old });
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ to: result.to, parts: result.parts, bytes: result.bytes, left_out: result.leftOut, removed })}\n`,
    );
  else process.stdout.write(`Backed up ${result.parts} parts (${result.bytes} bytes) to ${result.to}\n`);
  return 0;
}

/** The database part's dump, its tools checked before anything is written. */
async function queueDump(queue: string | string[], configDir: string) {
  const { dumpDatabase, program, queueDatabase } = await import('../lib/backup/database.ts');
  program('pg_dump');
  const db = await queueDatabase(queue, configDir);
  return { where: db.where, dump: (file: string) => dumpDatabase(db, file) };
}

async function verifyMain(args: Args, log: Logger): Promise<number> {
  const { verifyBackup } = await import('../lib/backup/restore.ts');
  const { verifierFor } = await import('../lib/backup/pgp.ts');
  const { withLocalBackup } = await import('../lib/backup/remote.ts');
  const dir = String(args._[0]);
  const verifySignature = args.key ? await verifierFor(args.key) : undefined;
  const manifest = await withLocalBackup(dir, log, (local) => verifyBackup(local, { verifySignature, log }));
  const bytes = manifest.parts.reduce((sum, p) => sum + p.size, 0);
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ ok: true, parts: manifest.parts.length, bytes, created: manifest.created })}\n`,
    );
  else
    process.stdout.write(
      `${dir}: a whole backup of ${manifest.created} (shipkit ${manifest.shipkit}): ${manifest.parts.length} parts, ${bytes} bytes\n`,
    );
  return 0;
}

await runCli(spec, (args, log) => (args.command === 'verify' ? verifyMain(args, log) : backupMain(args, log)));
