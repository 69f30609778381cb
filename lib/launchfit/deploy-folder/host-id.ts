// This host's id for pull rollouts (docs/fleet.md): 32 lowercase hex characters in
// DIR/.launchfit/host-id, made on first need from 16 random bytes, mode 0600. It is written to a
// temp file and linked into place, so two launchfit processes starting at once agree on one id
// (the second link fails and it reads the first). A malformed file is an error naming it: a host
// that silently took a new id would change its buckets and could take a version out of turn.
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { ensureDir, syncDir, tempSibling } from '../../core/fs.ts';
import { HOST_ID_PATTERN } from '../../release/format/bucket.ts';
import type { DeployPaths } from './state.ts';

export function hostIdFile(paths: Pick<DeployPaths, 'meta'>): string {
  return path.join(paths.meta, 'host-id');
}

async function readHostId(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const id = text.trim();
  if (!HOST_ID_PATTERN.test(id)) {
    throw new ConfigError(
      `${file} is not a host id (32 lowercase hexadecimal characters); fix or remove it (a new id moves ` +
        `this host to other rollout buckets).`,
    );
  }
  return id;
}

/** The host id, made (0600, atomically) if there is none yet. */
export async function ensureHostId(paths: Pick<DeployPaths, 'meta'>): Promise<string> {
  const file = hostIdFile(paths);
  const existing = await readHostId(file);
  if (existing) return existing;
  await ensureDir(paths.meta);
  const temp = tempSibling(file);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(`${randomBytes(16).toString('hex')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(paths.meta);
  const id = await readHostId(file);
  if (!id) throw new ConfigError(`${file} vanished right after it was written.`);
  return id;
}
