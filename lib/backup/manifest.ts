// A backup's MANIFEST.json (docs/backup.md): what each part is, its size and sha256, written last
// so that a backup cut short never looks complete; read back and checked part by part, each part
// opened only as a regular file of the backup's own (core/regular-file.ts).
import { createHash } from 'node:crypto';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../core/errors.ts';
import { openRegularFile, readRegularFile, type RegularFile } from '../core/regular-file.ts';

/** The backup format this shipkit writes and the newest it reads. */
export const BACKUP_FORMAT = 1;
export const MANIFEST = 'MANIFEST.json';
/** A manifest or signature larger than this is not one shipkit wrote. */
const MAX_MANIFEST_BYTES = 64 << 20;
const DAMAGED = 'The backup is damaged or was altered: use another one.';

export type PartKind = 'config' | 'data' | 'log' | 'secret' | 'database';

/** With queue:, the database part: shipkit's schemas as pg_dump wrote them (database.ts). */
export const DATABASE_PART = 'database/queue.dump';

export interface Part {
  /** Relative to the backup folder: config/…, data/…, secrets/….asc, database/queue.dump. */
  path: string;
  kind: PartKind;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: number;
  shipkit: string;
  created: string;
  /** Where DATA was, relative to the config file's folder (or absolute when outside it). */
  data: string;
  parts: Part[];
  /** With queue:, the database the schemas came from, as messages name it (no password). */
  database?: string;
  /** Secret files not in the backup (no --encrypt-to), relative to the config file's folder. */
  left_out: string[];
  /** With --sign-key: the fingerprint of the key that signed MANIFEST.json (its primary, lower case). */
  signed_by?: string;
}

/** MANIFEST.json's bytes, read as a regular file (a FIFO or a link there is refused, never waited on). */
export async function readManifestBytes(dir: string): Promise<Buffer> {
  return readRegularFile(path.join(dir, MANIFEST), MAX_MANIFEST_BYTES, { advice: DAMAGED }).catch((error) => {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(
      `${dir} holds no ${MANIFEST}: not a backup, or one that did not finish (the manifest is written last).`,
      { cause: error },
    );
  });
}

/** MANIFEST.json.sig's bytes, or undefined when there is none; anything but a small regular file is refused. */
export async function readSignatureBytes(dir: string): Promise<Buffer | undefined> {
  return readRegularFile(path.join(dir, `${MANIFEST}.sig`), 1 << 20, { advice: DAMAGED }).catch((error) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(`Cannot read ${path.join(dir, `${MANIFEST}.sig`)} (${String(error.code)}).`, {
      cause: error,
    });
  });
}

/** The manifest of the backup in `dir`, checked for shape and format (a newer format is refused). */
export async function readManifest(dir: string, bytes?: Buffer): Promise<Manifest> {
  const text = (bytes ?? (await readManifestBytes(dir))).toString('utf8');
  const file = path.join(dir, MANIFEST);
  let value: Manifest;
  try {
    value = JSON.parse(text) as Manifest;
  } catch (error) {
    throw new ValidationError(`${file} is not JSON: the backup is damaged.`, { cause: error });
  }
  if (!Number.isSafeInteger(value?.format) || !Array.isArray(value.parts))
    throw new ValidationError(`${file} is not a backup manifest.`);
  if (value.format > BACKUP_FORMAT)
    throw new ValidationError(
      `The backup in ${dir} has format ${value.format}, made by shipkit ${value.shipkit}; this shipkit ` +
        `reads format ${BACKUP_FORMAT} and older. Restore it with that version or newer.`,
    );
  const leftOut = value.left_out ?? [];
  // A relative DATA is below the config folder (an outside one is recorded absolute): `..` never is.
  const dataSteps = typeof value.data === 'string' ? value.data.split(/[\\/]/) : [];
  if (
    typeof value.data !== 'string' ||
    value.data === '' ||
    value.data.includes('\0') ||
    (!path.isAbsolute(value.data) && dataSteps.includes('..'))
  )
    throw new ValidationError(`${file} puts DATA where it may not: ${JSON.stringify(value.data)}. ${DAMAGED}`);
  if (!Array.isArray(leftOut) || leftOut.some((name) => typeof name !== 'string'))
    throw new ValidationError(`${file} has a left_out that is not a list of names. ${DAMAGED}`);
  if (value.signed_by !== undefined && !/^[0-9a-f]{40,64}$/.test(String(value.signed_by)))
    throw new ValidationError(`${file} has a signed_by that is not a key fingerprint. ${DAMAGED}`);
  for (const part of value.parts) {
    const safe =
      typeof part?.path === 'string' &&
      !path.isAbsolute(part.path) &&
      !part.path.split('/').some((step) => step === '..' || step === '.' || step === '') &&
      /^(config|data|secrets|database)\//.test(part.path);
    if (!safe || !/^[0-9a-f]{64}$/.test(String(part.sha256)) || !Number.isSafeInteger(part.size) || part.size < 0)
      throw new ValidationError(`${file} names a part it may not: ${JSON.stringify(part?.path)}.`);
  }
  return { ...value, left_out: leftOut };
}

/**
 * A part opened for reading: a regular file with one link, in a folder of the backup itself (no
 * symbolic link on the way), at the size the manifest says. Missing, cut or grown parts are named.
 */
export async function openPart(dir: string, part: Part): Promise<RegularFile> {
  const file = path.join(dir, part.path);
  const root = await realpath(dir);
  const parent = await realpath(path.dirname(file)).catch(() => undefined);
  if (parent === undefined) throw new ValidationError(`${part.path} is missing from the backup in ${dir}.`);
  if (parent !== path.join(root, path.dirname(part.path)))
    throw new ValidationError(
      `${part.path} in ${dir} is reached through a symbolic link (to ${parent}): refused, nothing was read. ${DAMAGED}`,
    );
  let opened: RegularFile;
  try {
    opened = await openRegularFile(file, { what: `The part ${part.path} in ${dir}`, advice: DAMAGED });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new ValidationError(`${part.path} is missing from the backup in ${dir}.`, { cause: error });
    throw error;
  }
  if (opened.size !== part.size) {
    await opened.handle.close();
    throw new ValidationError(
      `${part.path} is ${opened.size} bytes, the manifest says ${part.size}: the backup is damaged.`,
    );
  }
  return opened;
}

/** Every part present at its size, each a regular file: a cut, missing or strange part is named before a byte is read. */
export async function checkSizes(dir: string, manifest: Manifest): Promise<void> {
  for (const part of manifest.parts) await (await openPart(dir, part)).handle.close();
}

const CHUNK = 1 << 20;

/**
 * One part read whole and checked against its sha256; with `target`, copied there on the way
 * (one read for the check and the copy: the caller removes the copy when this throws). With
 * `keep`, the bytes are returned too (a secret, to decrypt what was checked).
 */
export async function checkPart(dir: string, part: Part, target?: string, keep = false): Promise<Buffer | undefined> {
  const { handle } = await openPart(dir, part);
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  const out = target ? await open(target, 'wx', 0o600) : undefined;
  try {
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, part.size + 1)));
    for (let position = 0; ;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      if (position > part.size)
        throw new ValidationError(
          `${part.path} grew past ${part.size} bytes while it was read: the backup is damaged.`,
        );
      const chunk = buffer.subarray(0, bytesRead);
      hash.update(chunk);
      if (keep) kept.push(Buffer.from(chunk));
      for (let done = 0; out && done < bytesRead;)
        done += (await out.write(chunk, done, bytesRead - done)).bytesWritten;
    }
  } finally {
    await Promise.all([handle.close(), out?.close()]);
  }
  if (hash.digest('hex') !== part.sha256)
    throw new ValidationError(`${part.path} does not match its sha256 in the manifest: the backup is damaged.`);
  return keep ? Buffer.concat(kept) : undefined;
}

/** Every part present with its size and sha256; the first that is not is named. */
export async function checkParts(dir: string, manifest: Manifest): Promise<void> {
  await checkSizes(dir, manifest);
  for (const part of manifest.parts) await checkPart(dir, part);
}
