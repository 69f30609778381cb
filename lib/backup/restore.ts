// `shipkit restore --from DEST [--to DIR]` and `shipkit backup verify DEST` (docs/backup.md): the
// backup is checked whole before a byte is written; then shipkit.yml and DATA are put in place
// beside a target that exists (refused without --force, kept aside with it).
import { constants } from 'node:fs';
import { chmod, copyFile, readFile, rename, mkdir, writeFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { loadShipkitConfig } from '../config/shipkit-yml.ts';
import { jobsIn, program, queueDatabase, restoreDatabase } from './database.ts';
import { checkPart, checkSizes, DATABASE_PART, MANIFEST, readManifest, type Manifest, type Part } from './manifest.ts';

export interface VerifyOptions {
  /** Checks MANIFEST.json.sig against this armored public key (without one the .sig is not checked). */
  verifySignature?: (data: Buffer, signature: Buffer) => Promise<void>;
  /** Told when the backup is signed and no key was given to check it. */
  log?: Pick<Logger, 'warn'>;
}

/** The manifest of a backup whose every part is present and matches. Throws naming what is wrong. */
export async function verifyBackup(from: string, options: VerifyOptions = {}): Promise<Manifest> {
  const manifest = await openBackup(from, options);
  for (const part of manifest.parts) await checkPart(from, part);
  return manifest;
}

/** The manifest, its signature checked when a key is given, and every part there at its size. */
async function openBackup(from: string, options: VerifyOptions): Promise<Manifest> {
  const manifest = await readManifest(from);
  const sigFile = path.join(from, `${MANIFEST}.sig`);
  const signature = await readFile(sigFile).catch(() => undefined);
  if (signature && !options.verifySignature)
    options.log?.warn(`${MANIFEST}.sig was not checked: give --key PUBKEY.asc to check who made this backup`);
  if (signature && options.verifySignature) {
    try {
      await options.verifySignature(await readFile(path.join(from, MANIFEST)), signature);
    } catch (error) {
      throw new ValidationError(`${sigFile} does not verify: ${messageOf(error)}. The backup may have been altered.`, {
        cause: error,
      });
    }
  }
  await checkSizes(from, manifest);
  return manifest;
}

export interface RestoreOptions {
  from: string;
  /** Where shipkit.yml goes (default: the current folder's .shipkit). */
  to: string;
  force?: boolean;
  /** Decrypts the secret files (an armored OpenPGP secret key, unlocked). */
  decrypt?: (armored: string) => Promise<Buffer>;
  verifySignature?: VerifyOptions['verifySignature'];
  /** With a database part: put it into the restored config's queue: database (default), or leave that database as it is. */
  database?: boolean;
  log: Logger;
  now?: Date;
}

export interface RestoreResult {
  config: string;
  data: string;
  keptAside: string[];
  /** Secret files not restored: left out at backup, or encrypted with no key given. */
  missing: string[];
  /** The database the schemas went into (as messages name it), or 'left as it is'. */
  database?: string;
}

export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const { from, to } = options;
  // Sizes now; each part's sha256 as it is copied into the staging folder, which goes on a mismatch.
  const manifest = await openBackup(from, { verifySignature: options.verifySignature, log: options.log });
  const configDir = path.resolve(to);
  const dataDir = path.resolve(configDir, manifest.data);
  const configFile = path.join(configDir, 'shipkit.yml');
  const targets = dataDir === configDir ? [configDir] : [configFile, dataDir];
  const existing = (await Promise.all(targets.map((t) => exists(t)))).some(Boolean);
  const sameFolder = dataDir === configDir || !path.relative(configDir, dataDir).startsWith('..');
  if (existing && !options.force)
    throw new ConfigError(
      `${targets.join(' and ')} already exist${targets.length === 1 ? 's' : ''}; restore over them with --force (they are kept aside), or pick another --to. Nothing was written.`,
    );
  if (!options.decrypt && manifest.parts.some((p) => p.path === 'secrets/config/shipkit.yml.asc'))
    throw new ConfigError(
      `The backup's shipkit.yml holds literal secrets and is encrypted; give --decrypt-key. Nothing was written.`,
    );
  // Everything is written into a new folder first and moved into place at the end.
  const stamp = (options.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
  const staging = `${configDir}.restoring-${stamp}`;
  const stagedData = sameFolder
    ? path.join(staging, path.relative(configDir, dataDir))
    : `${dataDir}.restoring-${stamp}`;
  const missing = [...manifest.left_out];
  let database: string | undefined;
  if (manifest.parts.some((p) => p.path === DATABASE_PART) && options.database !== false)
    for (const tool of ['pg_restore', 'psql'] as const) program(tool);
  try {
    await mkdir(staging, { recursive: true, mode: 0o700 });
    await mkdir(stagedData, { recursive: true, mode: 0o700 });
    for (const part of manifest.parts) {
      if (part.path === 'config/shipkit.yml') await place(from, part, path.join(staging, 'shipkit.yml'));
      else if (part.path.startsWith('data/')) await place(from, part, path.join(stagedData, part.path.slice(5)));
      else {
        await checkPart(from, part);
        const [, room, rel] = /^secrets\/(config|data)\/(.+)\.asc$/.exec(part.path) ?? [];
        if (!rel) continue; // the database part: below
        if (!options.decrypt) {
          missing.push(`${rel} (encrypted: give --decrypt-key)`);
          continue;
        }
        const clear = await options.decrypt(await readFile(path.join(from, part.path), 'utf8'));
        const target = path.join(room === 'config' ? staging : stagedData, rel);
        await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
        await writeFile(target, clear, { mode: 0o600 });
      }
    }
    if (manifest.parts.some((p) => p.path === DATABASE_PART))
      database =
        options.database === false
          ? 'left as it is'
          : await restoreQueue(options, staging, path.join(from, DATABASE_PART));
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (!sameFolder) await rm(stagedData, { recursive: true, force: true });
    throw error;
  }
  const keptAside: string[] = [];
  for (const target of sameFolder ? [configDir] : [configDir, dataDir]) {
    if (await exists(target)) {
      const aside = `${target}.before-restore-${stamp}`;
      await rename(target, aside);
      keptAside.push(aside);
    }
  }
  await rename(staging, configDir);
  if (!sameFolder) await rename(stagedData, dataDir);
  return { config: configFile, data: dataDir, keptAside, missing, ...(database ? { database } : {}) };
}

/**
 * The database part into the database the restored shipkit.yml's `queue:` names (read from the
 * staging folder, its env: and file: resolved here). A database that already holds shipkit's jobs
 * is refused without --force: it may be the one that survived the machine.
 */
async function restoreQueue(options: RestoreOptions, staging: string, dump: string): Promise<string> {
  const config = await loadShipkitConfig(path.join(staging, 'shipkit.yml'));
  if (!config.queue)
    throw new ConfigError(`The backup holds a queue database but its shipkit.yml has no queue:. Nothing was written.`);
  const db = await queueDatabase(config.queue, staging);
  const jobs = await jobsIn(db);
  if (jobs > 0 && !options.force)
    throw new ConfigError(
      `${db.where} already holds ${jobs} shipkit job${jobs === 1 ? '' : 's'}: pass --no-database to leave it as it is (when only hook-server's machine was lost), or --force to replace shipkit's schemas there with the backup's. Nothing was written.`,
    );
  await restoreDatabase(db, dump);
  return db.where;
}

/**
 * A part copied to `target` by the kernel (copyFile, on libuv's threads) while its sha256 is
 * computed on this one: the two take two cores, not one after the other.
 */
async function place(from: string, part: Part, target: string): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  await Promise.all([
    copyFile(path.join(from, part.path), target, constants.COPYFILE_EXCL).then(() => chmod(target, 0o600)),
    checkPart(from, part),
  ]);
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
