// `shipkit restore --from DEST [--to DIR]` and `shipkit backup verify DEST` (docs/backup.md): the
// backup is checked whole before a byte is written (with a key, its signature must be there and
// verify); then shipkit.yml and DATA are staged and moved into place (restore-target.ts).
import { lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { loadShipkitConfig } from '../config/shipkit-yml.ts';
import { jobsIn, program, queueDatabase, restoreDatabase } from './database.ts';
import {
  checkPart,
  checkSizes,
  DATABASE_PART,
  MANIFEST,
  readManifest,
  readManifestBytes,
  readSignatureBytes,
  type Manifest,
} from './manifest.ts';
import {
  finishKilledSwap,
  holdDataFolder,
  isInside,
  moveIntoPlace,
  removeDeadStaging,
  stagingName,
  targetsFor,
  type Targets,
} from './restore-target.ts';

export interface VerifyOptions {
  /** Checks MANIFEST.json.sig against a public key: given, the signature is required. */
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

/** The manifest, its signature checked (and required) when a key is given, and every part there at its size. */
async function openBackup(from: string, options: VerifyOptions): Promise<Manifest> {
  const bytes = await readManifestBytes(from);
  const manifest = await readManifest(from, bytes);
  const sigFile = path.join(from, `${MANIFEST}.sig`);
  const signature = await readSignatureBytes(from);
  if (options.verifySignature) {
    if (!signature)
      throw new ValidationError(
        `${sigFile} is missing, and --key requires a signed backup: this one was made without --sign-key, ` +
          `or its signature was removed. Nothing was written.`,
      );
    try {
      await options.verifySignature(bytes, signature);
    } catch (error) {
      throw new ValidationError(`${sigFile} does not verify: ${messageOf(error)}. The backup may have been altered.`, {
        cause: error,
      });
    }
  } else if (manifest.signed_by && !signature)
    options.log?.warn(
      `the manifest says key ${manifest.signed_by} signed this backup, but ${MANIFEST}.sig is missing; ` +
        `its signature was not checked: give --key PUBKEY.asc to refuse such a backup`,
    );
  else if (manifest.signed_by)
    options.log?.warn(
      `the signature of key ${manifest.signed_by} (${MANIFEST}.sig) was not checked: give --key PUBKEY.asc to check who made this backup`,
    );
  else if (signature)
    options.log?.warn(`${MANIFEST}.sig was not checked: give --key PUBKEY.asc to check who made this backup`);
  await checkSizes(from, manifest);
  return manifest;
}

export interface RestoreOptions {
  from: string;
  /** Where shipkit.yml goes (default: the current folder's .shipkit). */
  to: string;
  force?: boolean;
  /** The absolute DATA the backup recorded, repeated by the operator to confirm it (--data-at). */
  dataAt?: string;
  /** Decrypts the secret files (an armored OpenPGP secret key, unlocked). */
  decrypt?: (armored: string) => Promise<Buffer>;
  verifySignature?: VerifyOptions['verifySignature'];
  /** With a database part: put it into the restored config's queue: database (default), or leave that database as it is. */
  database?: boolean;
  log: Logger;
  now?: Date;
}

/** A secret hook-server needs that the restore did not bring back. */
export interface MissingSecret {
  /** The file hook-server reads it from (absolute), or the environment variable now named in shipkit.yml. */
  file?: string;
  variable?: string;
  /** left-out: not in the backup (made without --encrypt-to); encrypted: in it, and no --decrypt-key given. */
  reason: 'left-out' | 'encrypted';
}

export interface RestoreResult {
  config: string;
  data: string;
  keptAside: string[];
  /** Secrets not restored, as sentences naming each (full paths): left out at backup, or encrypted with no key given. */
  missing: string[];
  /** The same, one record each, for the start instructions. */
  secrets: MissingSecret[];
  /** The database the schemas went into (as messages name it), or 'left as it is'. */
  database?: string;
}

export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const { from } = options;
  // Sizes now; each part's sha256 as it is copied into the staging folder, which goes on a mismatch.
  const manifest = await openBackup(from, { verifySignature: options.verifySignature, log: options.log });
  const targets = await targetsFor(manifest, options.to, options.dataAt);
  const secrets = leftOutSecrets(from, manifest, targets);
  await finishKilledSwap(targets.configDir, options.log);
  for (const dir of new Set([targets.configDir, targets.dataDir])) await removeDeadStaging(dir);
  await refuseExisting(targets, options.force);
  if (!options.decrypt && manifest.parts.some((p) => p.path === 'secrets/config/shipkit.yml.asc'))
    throw new ConfigError(
      `The backup's shipkit.yml holds literal secrets and is encrypted; give --decrypt-key. Nothing was written.`,
    );
  if (manifest.parts.some((p) => p.path === DATABASE_PART) && options.database !== false)
    for (const tool of ['pg_restore', 'psql'] as const) program(tool);
  const lock = await holdDataFolder(targets.dataDir);
  // Everything is written into new folders first and moved into place at the end.
  const stamp = (options.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
  const staging = stagingName(targets.configDir, stamp);
  const stagedData = targets.sameFolder
    ? path.join(staging, path.relative(targets.configDir, targets.dataDir))
    : stagingName(targets.dataDir, stamp);
  let database: string | undefined;
  try {
    secrets.push(...(await stageParts(options, manifest, targets, { config: staging, data: stagedData })));
    if (manifest.parts.some((p) => p.path === DATABASE_PART))
      database = options.database === false ? 'left as it is' : await restoreQueue(options, manifest, staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (!targets.sameFolder) await rm(stagedData, { recursive: true, force: true });
    await lock?.release();
    throw error;
  }
  const keptAside = await moveIntoPlace(targets, { config: staging, data: stagedData }, stamp, lock);
  return {
    config: targets.configFile,
    data: targets.dataDir,
    keptAside,
    missing: secrets.map(describeMissing),
    secrets,
    ...(database ? { database } : {}),
  };
}

/** An existing DIR or DATA is replaced only with --force. */
async function refuseExisting(targets: Targets, force = false): Promise<void> {
  const paths = targets.sameFolder ? [targets.configDir] : [targets.configFile, targets.dataDir];
  const existing = await Promise.all(
    paths.map((p) =>
      lstat(p).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (existing.some(Boolean) && !force)
    throw new ConfigError(
      `${paths.join(' and ')} already exist${paths.length === 1 ? 's' : ''}; restore over them with ` +
        `--force (they are kept aside), or pick another --to. Nothing was written.`,
    );
}

/** The secrets the backup left out (no --encrypt-to): each file where hook-server will look for it, inside DIR or DATA. */
function leftOutSecrets(from: string, manifest: Manifest, targets: Targets): MissingSecret[] {
  return manifest.left_out.map((name) => {
    const variable = /\(now env:(SHIPKIT_RESTORED_SECRET_\d+)\)$/.exec(name)?.[1];
    if (variable) return { variable, reason: 'left-out' as const };
    const file = path.resolve(targets.configDir, name);
    if (!isInside(targets.configDir, file) && !isInside(targets.dataDir, file))
      throw new ValidationError(
        `${path.join(from, MANIFEST)} names a left-out secret outside the restored folders: ` +
          `${JSON.stringify(name)}. The backup is damaged or was altered: use another one. Nothing was written.`,
      );
    return { file, reason: 'left-out' as const };
  });
}

/**
 * Every part checked and written into the staging folders: shipkit.yml, DATA's files, the secret
 * files decrypted (or, with no key, returned as missing). The database part is checked here and
 * copied when it is restored.
 */
async function stageParts(
  options: RestoreOptions,
  manifest: Manifest,
  targets: Targets,
  staged: { config: string; data: string },
): Promise<MissingSecret[]> {
  const missing: MissingSecret[] = [];
  await mkdir(staged.config, { recursive: true, mode: 0o700 });
  await mkdir(staged.data, { recursive: true, mode: 0o700 });
  for (const part of manifest.parts) {
    if (part.path === 'config/shipkit.yml')
      await checkPart(options.from, part, path.join(staged.config, 'shipkit.yml'));
    else if (part.path.startsWith('data/')) {
      const target = path.join(staged.data, part.path.slice(5));
      await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await checkPart(options.from, part, target);
    } else if (part.path === DATABASE_PART) await checkPart(options.from, part);
    else {
      const [, room, rel] = /^secrets\/(config|data)\/(.+)\.asc$/.exec(part.path) ?? [];
      if (!rel)
        throw new ValidationError(
          `${path.join(options.from, MANIFEST)} names a part restore does not know: ${part.path}.`,
        );
      const [stagedRoom, liveRoom] =
        room === 'config' ? [staged.config, targets.configDir] : [staged.data, targets.dataDir];
      const armored = (await checkPart(options.from, part, undefined, true))!;
      if (!options.decrypt) {
        missing.push({ file: path.join(liveRoom, rel), reason: 'encrypted' });
        continue;
      }
      const target = path.join(stagedRoom, rel);
      await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await writeFile(target, await options.decrypt(armored.toString('utf8')), { mode: 0o600, flag: 'wx' });
    }
  }
  return missing;
}

/**
 * The database part into the database the restored shipkit.yml's `queue:` names (read from the
 * staging folder, its env: and file: resolved here). A database that already holds shipkit's jobs
 * is refused without --force: it may be the one that survived the machine. pg_restore reads the
 * copy checked into the staging folder, never the backup's file again.
 */
async function restoreQueue(options: RestoreOptions, manifest: Manifest, staging: string): Promise<string> {
  const config = await loadShipkitConfig(path.join(staging, 'shipkit.yml'));
  if (!config.queue)
    throw new ConfigError(`The backup holds a queue database but its shipkit.yml has no queue:. Nothing was written.`);
  const db = await queueDatabase(config.queue, staging);
  const jobs = await jobsIn(db);
  if (jobs > 0 && !options.force)
    throw new ConfigError(
      `${db.where} already holds ${jobs} shipkit job${jobs === 1 ? '' : 's'}: pass --no-database to leave ` +
        `it as it is (when only hook-server's machine was lost), or --force to replace shipkit's schemas there ` +
        `with the backup's. Nothing was written.`,
    );
  const dump = path.join(staging, '.queue.dump');
  try {
    await checkPart(
      options.from,
      manifest.parts.find((p) => p.path === DATABASE_PART)!,
      dump,
    );
    await restoreDatabase(db, dump);
  } finally {
    await rm(dump, { force: true });
  }
  return db.where;
}

/** A missing secret as one sentence naming where it goes and how to supply it. */
export function describeMissing(secret: MissingSecret): string {
  if (secret.variable)
    return (
      `${secret.variable}: a literal secret of the old shipkit.yml, now read from this variable; set ` +
      `it in hook-server's environment to that value`
    );
  if (secret.reason === 'encrypted')
    return `${secret.file}: encrypted in the backup; restore again with --decrypt-key KEY.asc, or copy it from the old machine (mode 0600)`;
  return (
    `${secret.file}: left out of the backup (made without --encrypt-to); copy it from the old ` +
    `machine (mode 0600), or write a new secret there and give it to whoever uses it`
  );
}
