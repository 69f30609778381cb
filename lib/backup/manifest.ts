// A backup's MANIFEST.json (docs/backup.md): what each part is, its size and sha256, written last
// so that a backup cut short never looks complete; read back and checked part by part.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../core/errors.ts';

/** The backup format this shipkit writes and the newest it reads. */
export const BACKUP_FORMAT = 1;
export const MANIFEST = 'MANIFEST.json';

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
}

/** The manifest of the backup in `dir`, checked for shape and format (a newer format is refused). */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path.join(dir, MANIFEST), 'utf8');
  } catch (error) {
    throw new ValidationError(
      `${dir} holds no ${MANIFEST}: not a backup, or one that did not finish (the manifest is written last).`,
      { cause: error },
    );
  }
  let value: Manifest;
  try {
    value = JSON.parse(text) as Manifest;
  } catch (error) {
    throw new ValidationError(`${path.join(dir, MANIFEST)} is not JSON: the backup is damaged.`, { cause: error });
  }
  if (!Number.isSafeInteger(value?.format) || !Array.isArray(value.parts))
    throw new ValidationError(`${path.join(dir, MANIFEST)} is not a backup manifest.`);
  if (value.format > BACKUP_FORMAT)
    throw new ValidationError(
      `The backup in ${dir} has format ${value.format}, made by shipkit ${value.shipkit}; this shipkit reads format ${BACKUP_FORMAT} and older. Restore it with that version or newer.`,
    );
  for (const part of value.parts) {
    const safe =
      typeof part?.path === 'string' &&
      !path.isAbsolute(part.path) &&
      !part.path.split('/').includes('..') &&
      /^(config|data|secrets|database)\//.test(part.path);
    if (!safe || !/^[0-9a-f]{64}$/.test(String(part.sha256)) || !Number.isSafeInteger(part.size))
      throw new ValidationError(`${path.join(dir, MANIFEST)} names a part it may not: ${JSON.stringify(part?.path)}.`);
  }
  return value;
}

/** Every part present at its size: a cut or missing part is named before a byte is read. */
export async function checkSizes(dir: string, manifest: Manifest): Promise<void> {
  for (const part of manifest.parts) {
    const size = await stat(path.join(dir, part.path)).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) throw new ValidationError(`${part.path} is missing from the backup in ${dir}.`);
    if (size !== part.size)
      throw new ValidationError(
        `${part.path} is ${size} bytes, the manifest says ${part.size}: the backup is damaged.`,
      );
  }
}

/**
 * One part read whole and checked against its sha256; with `target`, copied there on the way
 * (one read for the check and the copy: the caller removes the copy when this throws).
 */
export async function checkPart(dir: string, part: Part, target?: string): Promise<void> {
  const hash = createHash('sha256');
  const out = target ? await open(target, 'wx', 0o600) : undefined;
  try {
    for await (const chunk of createReadStream(path.join(dir, part.path), { highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      if (out) await out.write(chunk as Buffer);
    }
  } finally {
    await out?.close();
  }
  if (hash.digest('hex') !== part.sha256)
    throw new ValidationError(`${part.path} does not match its sha256 in the manifest: the backup is damaged.`);
}

/** Every part present with its size and sha256; the first that is not is named. */
export async function checkParts(dir: string, manifest: Manifest): Promise<void> {
  await checkSizes(dir, manifest);
  for (const part of manifest.parts) await checkPart(dir, part);
}
