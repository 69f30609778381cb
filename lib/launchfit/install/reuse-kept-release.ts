// Going back to a release the host still keeps in releases/ (docs/launchfit.md "Going back to a
// release the host still has"): the folder's digest, recorded at install, is computed again; only
// an exact match under a still-trusted signer and the same VERSION SHA256 is switched to as is.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { withReadBuffer } from '../../core/read-buffer.ts';
import { workSlices } from '../../core/work-slices.ts';
import path from 'node:path';
import { messageOf } from '../../core/errors.ts';
import type { TrustedKeys } from '../trust/pgp.ts';
import { bookDigest, type DigestBook } from '../deploy-folder/file-digests.ts';
import { readState } from '../deploy-folder/state.ts';
import {
  byPathBytes,
  fileDigest,
  fileDigestSync,
  manifestLine,
  SYNC_DIGEST_MAX,
  type ManifestEntry,
} from '../../release/format/manifest.ts';
import type { VersionInfo } from '../../release/format/version-file.ts';
import { compareVersions } from '../../release/format/version-file.ts';
import { releaseNameOf, type UpdateContext } from './context.ts';
import { stagingPolicy } from './staging.ts';

const digestOfLines = (lines: string[]) => createHash('sha256').update(lines.sort().join('\n')).digest('hex');

/**
 * The folder `dir` walked: its digest, sha256 over one JSON line per entry sorted, {path, type,
 * mode, size, sha256, target}, symlinks not followed, so any file added, removed or changed, a
 * mode or a link target changed, gives another digest; and its entries as a manifest's, unless
 * it holds what a manifest cannot (a socket, a fifo). Each file's digest goes in `book` if given.
 */
export async function folderTree(
  dir: string,
  book?: DigestBook,
): Promise<{ digest: string; entries?: ManifestEntry[] }> {
  const entries: ManifestEntry[] = [];
  let other = false;
  // The sync calls in slices (core/work-slices.ts); a large file with the async ones.
  const pause = workSlices();
  const walk = async (rel: string, buffer: Buffer): Promise<void> => {
    const names = readdirSync(path.join(dir, rel)).sort();
    for (const name of names) {
      const entry = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, entry);
      const st = lstatSync(full);
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      other ||= type === 'other';
      const sha256 =
        type !== 'file'
          ? null
          : st.size > SYNC_DIGEST_MAX
            ? (await fileDigest(full)).sha256
            : fileDigestSync(full, buffer).sha256;
      if (book && sha256) bookDigest(book, entry, st, sha256);
      entries.push({
        path: entry,
        type: type as ManifestEntry['type'],
        mode: (st.mode & 0o7777).toString(8),
        size: type === 'file' ? st.size : 0,
        sha256,
        target: type === 'symlink' ? readlinkSync(full) : null,
      });
      if (type === 'dir') await walk(entry, buffer);
      await pause();
    }
  };
  await withReadBuffer((buffer) => walk('', buffer));
  return { digest: digestOfLines(entries.map(manifestLine)), entries: other ? undefined : entries.sort(byPathBytes) };
}

/** folderTree's digest alone. */
export async function folderDigest(dir: string): Promise<string> {
  return (await folderTree(dir)).digest;
}

/**
 * folderDigest of a folder built from `entries` and checked against them (a release rebuilt from
 * a patch), without walking and hashing it again: the manifest's lines are the folder's lines.
 */
export function manifestTreeDigest(entries: ManifestEntry[]): string {
  return digestOfLines(entries.map(manifestLine));
}

/**
 * The release VERSION names, when releases/NAME holds it as installed: the same file, the SHA256
 * VERSION gives, verified under the same policy by a subkey still trusted and not revoked, and a
 * folder whose digest is the one recorded at install. Its name, or undefined (with the reason
 * logged when a kept folder was there but is not taken): then the release is downloaded.
 */
export async function keptRelease(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
): Promise<string | undefined> {
  const name = releaseNameOf(info.file);
  const kept = (await readState(ctx.paths)).installed[name];
  if (!kept || !info.sha256) return undefined;
  const doubt = (why: string) => {
    ctx.log.warn(`releases/${name} is kept here, but ${why}; downloading it in full`, { release: name, way: 'full' });
    return undefined;
  };
  if (kept.file !== info.file || kept.sha256 !== info.sha256 || compareVersions(kept.version, info.version) !== 0)
    return doubt(`VERSION names another tarball (sha256 ${info.sha256}) than the one installed then`);
  if (!kept.tree || !kept.signingKey) return doubt('its digest was not recorded when it was installed');
  if (kept.policy !== stagingPolicy(ctx.config))
    return doubt('the verification settings (provenance, limits) changed since it was installed');
  if (!stillTrusted(trusted, kept.signingKey, kept.signer))
    return doubt(`the key that signed it (${kept.signingKey}) is no longer trusted or was revoked`);
  let digest: string;
  try {
    digest = await folderDigest(path.join(ctx.paths.releases, name));
  } catch (error) {
    return doubt(`its folder cannot be read (${messageOf(error)})`);
  }
  if (digest !== kept.tree)
    return doubt('its files were changed since it was installed (the folder digest differs from the one recorded)');
  return name;
}

/** The subkey is trusted now: in a trusted key (the pinned subkey, if one is), neither it nor its primary revoked. */
function stillTrusted(trusted: TrustedKeys, signingKey: string, primary: string | undefined): boolean {
  const remembered = Object.keys(trusted.revoked ?? {});
  if (remembered.includes(signingKey) || (primary !== undefined && remembered.includes(primary))) return false;
  return trusted.keys.some(({ key, onlySubkey }) => {
    if (onlySubkey !== undefined && onlySubkey.toLowerCase() !== signingKey) return false;
    if (key.revocationSignatures.length > 0) return false;
    const subkey = key.subkeys.find((k) => k.getFingerprint().toLowerCase() === signingKey);
    if (subkey) return subkey.revocationSignatures.length === 0;
    return key.getFingerprint().toLowerCase() === signingKey;
  });
}
