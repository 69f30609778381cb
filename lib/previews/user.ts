// Who a preview's build and app run as (docs/previews.md): `previews.user`, or, when hook-server
// runs as root, the dedicated unprivileged user shipkit-preview; a preview runs a pull request's
// code, which must never run as root. The Debian package makes that user; elsewhere hook-server
// says how to make it.
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PreviewsConfig } from '../config/previews.ts';
import { ConfigError } from '../core/errors.ts';
import { findUser, type UnixAccount } from '../core/unix-user.ts';

export const DEFAULT_PREVIEW_USER = 'shipkit-preview';

/** The user a preview runs as; undefined = hook-server's own (it is not root then). */
export function previewUser(
  previews: Pick<PreviewsConfig, 'user'>,
  uid: number | undefined = process.getuid?.(),
): string | undefined {
  return previews.user ?? (uid === 0 ? DEFAULT_PREVIEW_USER : undefined);
}

/**
 * The account previews run as, checked: it exists and is not root. A ConfigError saying how to
 * make it, with `where` (the config's FILE:LINE of `previews`), when it does not.
 */
export async function checkPreviewUser(
  previews: Pick<PreviewsConfig, 'user'>,
  where: string,
  uid: number | undefined = process.getuid?.(),
): Promise<UnixAccount | undefined> {
  const name = previewUser(previews, uid);
  if (name === undefined) return undefined;
  const account = await findUser(name);
  if (!account) {
    const which = previews.user
      ? `${where}: previews.user ${name} does not exist on this machine`
      : `${where}: hook-server runs as root, so previews run as the dedicated user ${name}, which this machine does not have`;
    throw new ConfigError(
      `${which}; create it (adduser --system --group --no-create-home ${name}; the Debian package makes ` +
        `${DEFAULT_PREVIEW_USER}) or name another unprivileged user in previews.user.`,
    );
  }
  if (uid !== 0 && account.uid !== uid)
    throw new ConfigError(
      `${where}: previews.user ${name}: running previews as another user needs hook-server to run as root; ` +
        `run it as root, or as ${name}, or remove previews.user.`,
    );
  if (account.uid === 0)
    throw new ConfigError(
      `${where}: previews would run as ${name}, whose uid is 0: a preview runs a pull request's code; give an unprivileged user.`,
    );
  return account;
}

/** Whether `account` may pass through `dir` (search permission), by its mode bits. */
function searchableBy(info: { mode: number; uid: number; gid: number }, account: UnixAccount): boolean {
  if (info.uid === account.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === account.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

/**
 * Lets `account` reach the previews' folders: DATA/previews is made searchable but not listable
 * by others (the preview key in it stays 0700). A ConfigError naming the folder above it that is
 * closed to the account, and the chmod that opens it.
 */
export async function openPreviewsFolder(previewsDir: string, account: UnixAccount): Promise<void> {
  for (let dir = path.dirname(path.resolve(previewsDir)); ; dir = path.dirname(dir)) {
    const info = await stat(dir);
    if (!searchableBy(info, account))
      throw new ConfigError(
        `previews run as ${account.name}, who cannot pass through ${dir} (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}): ` +
          `give others search permission (chmod o+x ${dir}) or put data: where ${account.name} can reach it.`,
      );
    if (dir === '/') break;
  }
  await chmod(previewsDir, 0o711);
}
