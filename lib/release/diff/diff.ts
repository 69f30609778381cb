// `release diff APP V1 V2 --from DEST` (docs/release.md "release diff"): what changed between two
// published releases, from what DEST holds and only after it verifies: the ledger (chain and
// signature), each release's publish entry, its tarball (sha256 and .sig) and provenance digest.
// Then the files (diff-files), the package-lock dependencies (diff-deps) and commits (diff-commits).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ValidationError, messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { nameProblem, validateName } from '../../core/names.ts';
import { commitsBetween, type Commit, type ReleaseSource } from './commits.ts';
import { compareDependencies, lockedPackages, type DependencyDiff } from './deps.ts';
import { compareManifests, type FileDiff, type Manifest } from './files.ts';
import { readVerifiedRelease, type VerifiedRelease } from './verify.ts';
import { openDestination, type Destination } from '../dest/destination.ts';
import { trustedLedger } from '../dest/history.ts';
import { publishEntryOf } from '../dest/ledger.ts';
import type { LedgerEntry } from '../format/ledger.ts';
import { compareVersions, validateVersion } from '../format/version-file.ts';

export interface DiffOptions {
  app: string;
  /** V1 and V2: the diff says what V2 has that V1 had not. */
  from: string;
  to: string;
  /** `--from DEST`: where both were published. */
  dest: string;
  /** The release certificate to trust; default DEST's keys.asc (its primary pinned in `state`). */
  keys?: string;
  /** The state folder remembering each DEST's pinned key and longest ledger (`--state`). */
  state?: string;
  /** Told the fingerprint trusted on first use. */
  say?: (line: string) => void;
  /** The primary shipkit.yml pins for DEST (the publish.key of the repo publishing APP there). */
  pinned?: { primary: string; by: string };
  /** Which platform's tarballs, when DEST holds the versions for several. */
  platform?: string;
  /** `--repo DIR`: the checkout to list commits in (else `cwd`, when it has both). */
  repoDir?: string;
  cwd: string;
  log: Logger;
}

/** One of the two releases, as the ledger and DEST show it. */
export interface DiffSide extends ReleaseSource {
  version: string;
  /** Its publish entry. */
  n: number;
  at: string;
  by: string;
  signer: string;
  /** The subkey that signed its entry is revoked in the certificate. */
  revoked: boolean;
  file: string;
  sha256: string;
  size: number;
  /** Where repo, commit and ref come from: its provenance, or the ledger entry when the provenance file is gone. */
  sourceFrom: VerifiedRelease['sourceFrom'];
}

export interface ReleaseDiff {
  app: string;
  dest: string;
  /** The primary key whose subkeys signed the ledger. */
  primary: string;
  from: DiffSide;
  to: DiffSide;
  commits: Commit[] | null;
  commitCount: number | null;
  commitsNote: string | null;
  files: FileDiff;
  dependencies: DependencyDiff | null;
  dependenciesNote: string | null;
}

/** What changed from `opts.from` to `opts.to`; throws ValidationError (exit 2) when anything does not verify. */
export async function releaseDiff(opts: DiffOptions): Promise<ReleaseDiff> {
  validateName(opts.app, 'app name');
  validateVersion(opts.from, 'V1');
  validateVersion(opts.to, 'V2');
  if (opts.platform !== undefined) validateName(opts.platform, 'platform (--platform)');
  if (compareVersions(opts.from, opts.to) === 0)
    throw new ValidationError(`V1 and V2 are the same version (${opts.from}); name two releases to compare.`);
  const dest = openDestination(opts.dest, opts.log);
  const { entries, primary, revoked, certificate } = await trustedLedger(dest, opts);
  if (!entries.length)
    throw new ValidationError(
      `${dest.where} has no ledger (ledger.jsonl): nothing was published there by a shipkit that keeps ` +
        `one, so there is nothing to compare.`,
    );
  const [fromEntry, toEntry] = [opts.from, opts.to].map((v) => publishedIn(entries, opts.app, v, dest.where));
  const names = await dest.list();
  const [fromFile, toFile] = tarballsOf(names, entries, opts, [fromEntry, toEntry], dest.where);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-diff-'));
  try {
    const before = await readVerifiedRelease(dest, scratch, certificate, fromEntry, fromFile);
    const after = await readVerifiedRelease(dest, scratch, certificate, toEntry, toFile);
    const side = (e: LedgerEntry, r: VerifiedRelease): DiffSide => ({
      version: e.version!,
      n: e.n,
      at: e.at,
      by: e.by,
      signer: e.signer,
      revoked: revoked.has(e.signer),
      file: r.file,
      sha256: r.sha256,
      size: r.size,
      ...r.source,
      sourceFrom: r.sourceFrom,
    });
    const commits = await commitsBetween(before.source, after.source, { repoDir: opts.repoDir, cwd: opts.cwd });
    const deps = dependencyDiffOf(before.manifest, after.manifest);
    return {
      app: opts.app,
      dest: dest.where,
      primary,
      from: side(fromEntry, before),
      to: side(toEntry, after),
      commits: commits.commits,
      commitCount: commits.count,
      commitsNote: commits.note,
      files: compareManifests(before.manifest.files, after.manifest.files),
      dependencies: deps.diff,
      dependenciesNote: deps.note,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The versions of `app` the ledger has publish entries for, in the order first published. */
function publishedVersions(entries: LedgerEntry[], app: string): string[] {
  const seen: string[] = [];
  for (const e of entries)
    if (
      (e.action === 'publish' || e.action === 'promote') &&
      e.app === app &&
      e.version &&
      !seen.some((v) => compareVersions(v, e.version!) === 0)
    )
      seen.push(e.version);
  return seen;
}

function publishedIn(entries: LedgerEntry[], app: string, version: string, where: string): LedgerEntry {
  const entry = publishEntryOf(entries, app, version);
  if (entry) return entry;
  const known = publishedVersions(entries, app);
  throw new ValidationError(
    `${app} ${version} is not in the ledger at ${where}: it was never published there. ` +
      `${known.length ? `The ledger has ${app} ${known.join(', ')}.` : `The ledger has no release of ${app}.`}`,
  );
}

/** APP-PLATFORM-V.tar.gz names at DEST for `version` (of `platform` when given). */
function candidates(names: string[], app: string, version: string, platform: string | undefined): string[] {
  const head = `${app}-`;
  const tail = `-${version}.tar.gz`;
  return names.filter((n) => {
    if (!n.startsWith(head) || !n.endsWith(tail) || n.length <= head.length + tail.length) return false;
    const middle = n.slice(head.length, -tail.length);
    return platform === undefined ? nameProblem(middle) === undefined : middle === platform;
  });
}

/** The tarball of each entry at DEST; a pruned one is refused with the versions that can still be compared. */
function tarballsOf(
  names: string[],
  entries: LedgerEntry[],
  opts: DiffOptions,
  wanted: LedgerEntry[],
  where: string,
): string[] {
  const found = wanted.map((e) => candidates(names, opts.app, e.version!, opts.platform));
  const gone = wanted.filter((_, i) => !found[i].length).map((e) => e.version!);
  if (gone.length) {
    const there = publishedVersions(entries, opts.app).filter(
      (v) => candidates(names, opts.app, v, opts.platform).length,
    );
    const pattern = `${opts.app}-${opts.platform ?? '*'}-V.tar.gz`;
    throw new ValidationError(
      `The tarball of ${opts.app} ${gone.join(' and ')} (${pattern}) is no longer at ${where}: pruned by ` +
        `\`release publish --keep\`, or removed. The ledger still records ${gone.length > 1 ? 'them' : 'it'} ` +
        `(\`release history\`). ${there.length ? `Versions that can be compared: ${there.join(', ')}.` : 'No release of it is left there to compare.'}`,
    );
  }
  const several = found.find((f) => f.length > 1);
  if (several)
    throw new ValidationError(`${where} holds ${several.join(' and ')}; choose the platform with --platform.`);
  return found.map((f) => f[0]);
}

/** The package-lock.json diff, or why there is none. */
function dependencyDiffOf(before: Manifest, after: Manifest): { diff: DependencyDiff | null; note: string | null } {
  const problem = before.packageLockProblem ?? after.packageLockProblem;
  if (problem) return { diff: null, note: `not compared: ${problem}` };
  if (!before.packageLock || !after.packageLock) {
    const which =
      !before.packageLock && !after.packageLock
        ? 'neither release has'
        : before.packageLock
          ? 'the V2 release has no'
          : 'the V1 release has no';
    return { diff: null, note: `${which} package-lock.json at its root` };
  }
  const maps = [];
  for (const [which, lock] of [
    ['V1', before.packageLock],
    ['V2', after.packageLock],
  ] as const) {
    try {
      maps.push(lockedPackages(JSON.parse(lock.toString('utf8'))));
    } catch (error) {
      const why = error instanceof SyntaxError ? 'it is not JSON' : messageOf(error);
      return { diff: null, note: `the ${which} release's package-lock.json is not compared: ${why}` };
    }
  }
  return { diff: compareDependencies(maps[0], maps[1]), note: null };
}
