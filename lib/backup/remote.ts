// A backup whose DEST is s3://bucket/prefix or user@host:path (docs/backup.md): made in a local
// folder, then uploaded part by part with MANIFEST.json last, so a remote backup cut short never
// looks whole; read back into a local folder, the manifest first, to be checked and restored.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { pathExists } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import { isRemoteDestination, openDestination } from '../release/dest/destination.ts';
import { uploadFiles } from '../stages/upload/index.ts';
import { MANIFEST, readManifest } from './manifest.ts';

export const isRemote = isRemoteDestination;

/** Refuses a remote DEST that already holds a backup (a backup never mixes with another). */
export async function checkRemoteEmpty(to: string, log: Logger): Promise<void> {
  if (await openDestination(to, log).read(MANIFEST))
    throw new ConfigError(
      `${to} already holds a backup (${MANIFEST}); give a new prefix or folder. Nothing was written.`,
    );
}

/** Uploads the finished backup in `dir` to `to`: every part, then the signature, then the manifest. */
export async function uploadBackup(dir: string, to: string, log: Logger): Promise<void> {
  const manifest = await readManifest(dir);
  const signature = (await pathExists(path.join(dir, `${MANIFEST}.sig`))) ? [`${MANIFEST}.sig`] : [];
  const files = [...manifest.parts.map((p) => p.path), ...signature, MANIFEST];
  await uploadFiles({ from: dir, to, files, log });
}

/** Downloads the backup at `from` into the empty folder `dir`: the manifest (checked), then each part it names. */
export async function downloadBackup(from: string, dir: string, log: Logger): Promise<void> {
  const destination = openDestination(from, log);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!(await destination.localCopy(MANIFEST, dir)))
    throw new ConfigError(`${from} holds no ${MANIFEST}: not a backup, or one that did not finish uploading.`);
  await destination.localCopy(`${MANIFEST}.sig`, dir);
  // The part names are checked (inside the backup) before any becomes a path here.
  const manifest = await readManifest(dir);
  for (const part of manifest.parts) {
    await mkdir(path.dirname(path.join(dir, part.path)), { recursive: true, mode: 0o700 });
    await destination.localCopy(part.path, dir);
  }
}

/** Runs `work` on a local folder holding the backup at `from`: `from` itself, or a download of it (removed after). */
export async function withLocalBackup<T>(from: string, log: Logger, work: (dir: string) => Promise<T>): Promise<T> {
  if (!isRemote(from)) return work(from);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-restore-'));
  try {
    await downloadBackup(from, path.join(scratch, 'backup'), log);
    return await work(path.join(scratch, 'backup'));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Runs `take` into `to`, or, for a remote `to`, into a local folder that is then uploaded (and removed). */
export async function backupTo<T>(to: string, log: Logger, take: (dir: string) => Promise<T>): Promise<T> {
  if (!isRemote(to)) return take(to);
  await checkRemoteEmpty(to, log);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-backup-'));
  try {
    const result = await take(path.join(scratch, 'backup'));
    await uploadBackup(path.join(scratch, 'backup'), to, log);
    return result;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
