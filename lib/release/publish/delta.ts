// What `release publish` adds for delta updates (docs/release.md "Delta updates"): the release's
// manifest, and a patch from each of the last releases at DEST, staged beside the tarball and
// named by digest in the VERSION it signs. A patch that cannot be made is skipped with a warning:
// hosts then download the tarball, as they did before.
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { messageOf } from '../../core/errors.ts';
import { nameProblem } from '../../core/names.ts';
import { atomicWriteFile } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import type { Destination } from '../dest/destination.ts';
import {
  formatManifest,
  manifestFileName,
  manifestOf,
  manifestSha256,
  type ManifestEntry,
} from '../format/manifest.ts';
import { patchFileName } from '../format/patch.ts';
import { indexFileName, parsePackIndex } from '../format/pack-index.ts';
import {
  makePatch,
  mostChangedSince,
  oldManifestOf,
  readOldRelease,
  readOldReleaseByIndex,
  type OldRelease,
} from './patch.ts';
import { compareVersions, versionProblem, type PatchLine } from '../format/version-file.ts';
import { haveZstd } from '../../core/zstd.ts';

/** Patches made by default: from each of the last three releases at DEST. */
export const DEFAULT_PATCHES = 3;
/** A patch as large as this share of the tarball is not worth a host's trouble; it is dropped. */
const MAX_PATCH_SHARE = 0.5;

/** Releases of this app/platform among DEST's file names, newest first. */
export function releasesIn(names: string[], app: string, platform: string): Array<{ file: string; version: string }> {
  const prefix = `${app}-${platform}-`;
  return names
    .filter((n) => n.startsWith(prefix) && n.endsWith('.tar.gz'))
    .map((file) => ({ file, version: file.slice(prefix.length, -'.tar.gz'.length) }))
    .filter((r) => !versionProblem(r.version))
    .sort((a, b) => compareVersions(b.version, a.version));
}

/** A patch of a release at DEST, by the tarball's name (its manifest: format/manifest.ts's manifestFileName). */
export const isPatchOf = (tarball: string, name: string) =>
  name.startsWith(`${tarball.slice(0, -'.tar.gz'.length)}.from-`) && name.endsWith('.patch');

export interface DeltaFiles {
  manifest: { file: string; sha256: string };
  /** The tarball's index of gzip members (pack-index.ts), once the tarball is packed. */
  index?: string;
  patches: PatchLine[];
}

/**
 * Stage the manifest of `dir` and the patches from up to `count` older releases at DEST into
 * `stage`; the names and digests VERSION lists.
 */
export async function stageDelta(opts: {
  destination: Destination;
  app: string;
  platform: string;
  version: string;
  file: string;
  dir: string;
  stage: string;
  count: number;
  log: Logger;
  /** Entries left out of the tarball (pack-filter.ts), so also of the manifest. */
  skip?: (rel: string) => boolean;
}): Promise<DeltaFiles | undefined> {
  const { log, stage } = opts;
  const manifestFile = manifestFileName(opts.file);
  if (nameProblem(manifestFile)) {
    log.warn(`no delta updates: the manifest's name ${manifestFile} would be ${nameProblem(manifestFile)}`);
    return undefined;
  }
  const manifest = await manifestOf(opts.dir, opts.skip);
  const text = formatManifest(manifest);
  await atomicWriteFile(path.join(stage, manifestFile), text);
  const files: DeltaFiles = { manifest: { file: manifestFile, sha256: manifestSha256(text) }, patches: [] };
  if (opts.count <= 0) return files;
  if (!haveZstd()) {
    log.warn('no patches: zstd is not installed (apt-get install zstd); hosts will download the whole release');
    return files;
  }
  // One patch per version: "1.1" and "1.1.0" at DEST are the same version to a host.
  const olds = releasesIn(await opts.destination.list(), opts.app, opts.platform)
    .filter((r) => compareVersions(r.version, opts.version) < 0)
    .filter((r, i, all) => i === 0 || compareVersions(all[i - 1].version, r.version) !== 0)
    .slice(0, opts.count);
  const newFiles = new Map(manifest.filter((e) => e.type === 'file').map((e) => [e.path, e.sha256]));
  const changed = (p: string, sha256: string) => newFiles.has(p) && newFiles.get(p) !== sha256;
  for (const old of olds) {
    const scratch = path.join(stage, `delta-${old.version}`);
    try {
      const known = oldManifestOf(await opts.destination.read(manifestFileName(old.file)).catch(() => undefined));
      if (known && mostChangedSince(known, manifest, old.version, log)) continue;
      await mkdir(scratch, { recursive: true });
      const tarball = await opts.destination.localCopy(old.file, scratch);
      if (!tarball) continue;
      const name = patchFileName(opts.app, opts.platform, opts.version, old.version);
      if (nameProblem(name)) continue;
      const made = await makePatch({
        old: await readOld(opts.destination, old.file, tarball, path.join(scratch, 'old'), changed, known, log),
        from: old.version,
        to: opts.version,
        newDir: opts.dir,
        manifest,
        scratch,
        out: path.join(stage, name),
        log,
      });
      if (!made) continue;
      // Said once it is kept (withoutLargePatches): a patch made here may still be dropped there.
      files.patches.push({ from: old.version, file: name, ...made });
    } catch (error) {
      log.warn(`no patch from ${old.version}: ${messageOf(error)}`);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  return files;
}

/**
 * The old release's entries and the old bytes of the files that changed: through its index when
 * it has one and its manifest is known (only the members holding those files are read), else, or
 * when that fails, from its whole tarball.
 */
async function readOld(
  destination: Destination,
  file: string,
  tarball: string,
  scratch: string,
  changed: (path: string, sha256: string) => boolean,
  known: ManifestEntry[] | undefined,
  log: Logger,
): Promise<OldRelease> {
  const text = known && (await destination.read(indexFileName(file)).catch(() => undefined));
  if (known && text) {
    try {
      const index = parsePackIndex(text, { tarball: file, size: (await stat(tarball)).size });
      return await readOldReleaseByIndex(tarball, index, scratch, changed, known);
    } catch (error) {
      log.info('reading the whole old tarball: its index did not serve', { file, why: messageOf(error) });
      await rm(scratch, { recursive: true, force: true });
    }
  }
  return readOldRelease(tarball, scratch, changed, known);
}

/**
 * `files` without the patches larger than MAX_PATCH_SHARE of the tarball (known once it is packed,
 * which runs beside stageDelta): a host is better off downloading the tarball.
 */
export async function withoutLargePatches(
  files: DeltaFiles,
  tarballSize: number,
  stage: string,
  log: Logger,
): Promise<DeltaFiles> {
  const patches: PatchLine[] = [];
  for (const patch of files.patches) {
    if (patch.size <= tarballSize * MAX_PATCH_SHARE) {
      patches.push(patch);
      log.info('patch made', { from: patch.from, file: patch.file, size: patch.size });
    } else {
      log.info('no patch: it would be more than half the tarball, so hosts on it download the tarball', {
        from: patch.from,
        size: patch.size,
        tarball: tarballSize,
      });
      await rm(path.join(stage, patch.file), { force: true });
    }
  }
  return { ...files, patches };
}
