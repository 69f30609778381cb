// Who a preview's build and app run as (docs/previews.md): `previews.user`, or, when hook-server
// runs as root, the dedicated unprivileged user shipkit-preview; a preview runs a pull request's
// code, which must never run as root. The Debian package makes that user; elsewhere hook-server
// says how to make it.
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
  if (account.uid === 0)
    throw new ConfigError(
      `${where}: previews would run as ${name}, whose uid is 0: a preview runs a pull request's code; give an unprivileged user.`,
    );
  return account;
}
