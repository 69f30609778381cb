// Who a preview's build and app run as (docs/previews.md, "Never as root"): under root without
// previews.user, each preview a uid of its own from previews.uids, its folder root:that group 0750,
// so no preview reads another's; with previews.user, that one user for all; not root, hook-server's
// own. A preview runs a pull request's code: never as root.
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PreviewsConfig } from '../config/previews.ts';
import { ConfigError, WorkError } from '../core/errors.ts';
import { $ } from '../core/shell.ts';
import { findUser, numericAccount, type UnixAccount } from '../core/unix-user.ts';

/** A range of uids: both ends included. */
export interface UidRange {
  from: number;
  to: number;
}

/**
 * 65,536 uids from 0x70000000: above the container ranges systemd documents (524288–1879048191)
 * and below its foreign range (from 2147352576), a span it leaves to local use.
 */
export const DEFAULT_PREVIEW_UIDS: UidRange = { from: 0x7000_0000, to: 0x7000_ffff };

/** How a repo's previews run: as hook-server's user, as previews.user, or each as a uid of its own. */
export type PreviewRunAs = { kind: 'self' } | { kind: 'user'; account: UnixAccount } | { kind: 'own'; uids: UidRange };

/** Which of the three, from the config and hook-server's uid; nothing looked up. */
export function previewRunAsKind(
  previews: Pick<PreviewsConfig, 'user'>,
  uid: number | undefined = process.getuid?.(),
): PreviewRunAs['kind'] {
  if (previews.user !== undefined) return 'user';
  return uid === 0 ? 'own' : 'self';
}

/**
 * How the repo's previews run, checked: previews.user exists and is not root; a uid range no
 * account or group holds. A ConfigError with `where` (the config's FILE:LINE) saying what to do.
 */
export async function checkPreviewRunAs(
  previews: Pick<PreviewsConfig, 'user' | 'uids'>,
  where: string,
  uid: number | undefined = process.getuid?.(),
): Promise<PreviewRunAs> {
  const kind = previewRunAsKind(previews, uid);
  if (kind === 'self') return { kind };
  if (kind === 'own') {
    const uids = previews.uids ?? DEFAULT_PREVIEW_UIDS;
    await checkUidsUnused(uids, where);
    return { kind, uids };
  }
  const name = previews.user!;
  const account = await findUser(name);
  if (!account)
    throw new ConfigError(
      `${where}: previews.user ${name} does not exist on this machine; create it (adduser --system --group ` +
        `--no-create-home ${name}) or remove previews.user (as root, each preview then runs as a uid of its own).`,
    );
  if (uid !== 0 && account.uid !== uid)
    throw new ConfigError(
      `${where}: previews.user ${name}: running previews as another user needs hook-server to run as root; ` +
        `run it as root, or as ${name}, or remove previews.user.`,
    );
  if (account.uid === 0)
    throw new ConfigError(
      `${where}: previews would run as ${name}, whose uid is 0: a preview runs a pull request's code; give an unprivileged user.`,
    );
  return { kind, account };
}

/** Every account and group of the system's databases (NSS) whose id falls in `uids`: none may. */
async function checkUidsUnused(uids: UidRange, where: string): Promise<void> {
  for (const database of ['passwd', 'group'] as const) {
    const listed = await $({ quiet: true, nothrow: true })`getent ${database}`;
    for (const line of listed.stdout.split('\n')) {
      const [name, , id] = line.split(':');
      if (/^\d+$/.test(id ?? '') && Number(id) >= uids.from && Number(id) <= uids.to)
        throw new ConfigError(
          `${where}: previews.uids ${uids.from}-${uids.to} holds the ${database === 'passwd' ? 'user' : 'group'} ` +
            `${name} (${id}): a preview would share its files; give previews.uids a range no account uses.`,
        );
    }
  }
}

/** The account one preview runs as: undefined = hook-server's own. */
export function previewAccount(runAs: PreviewRunAs, uid: number | undefined): UnixAccount | undefined {
  if (runAs.kind === 'self') return undefined;
  if (runAs.kind === 'user') return runAs.account;
  if (uid === undefined || uid < runAs.uids.from || uid > runAs.uids.to)
    throw new WorkError(`a preview's uid ${uid} is not in previews.uids ${runAs.uids.from}-${runAs.uids.to}`);
  return numericAccount(uid);
}

/**
 * A uid of `uids` for a preview: the one it holds when no other open preview does, else the
 * lowest free one. A WorkError when every uid is taken.
 */
export function pickPreviewUid(uids: UidRange, taken: ReadonlySet<number>, held?: number): number {
  if (held !== undefined && held >= uids.from && held <= uids.to && !taken.has(held)) return held;
  for (let uid = uids.from; uid <= uids.to; uid++) if (!taken.has(uid)) return uid;
  throw new WorkError(
    `every uid of previews.uids ${uids.from}-${uids.to} is held by an open preview: widen the range or lower max.`,
  );
}

/**
 * A preview's folder, made if missing, entered only by its own account: root:its group, 0750
 * (the build's and launchfit's files inside are handed to it as they are made). Without an
 * account of its own (previews.user, or not root) it is left as it is.
 */
export async function closePreviewFolder(folder: string, account: UnixAccount | undefined): Promise<void> {
  // The repo's folder above is searchable by every preview (each passes through it to its own).
  await mkdir(path.dirname(folder), { recursive: true, mode: 0o711 });
  await mkdir(folder, { recursive: true, mode: 0o750 });
  if (!account || process.getuid?.() !== 0) return;
  const info = await stat(folder);
  if (info.uid !== 0 || info.gid !== account.gid) await chown(folder, 0, account.gid);
  if ((info.mode & 0o777) !== 0o750) await chmod(folder, 0o750);
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
