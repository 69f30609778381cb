// `release publish` (docs/release.md): pack a folder reproducibly into APP-PLATFORM-VERSION.tar.gz,
// sign it, write VERSION and VERSION.sig, and put them on the update server in an order that never
// shows a VERSION whose files are not there yet.
// The whole story: docs/internals.md.
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError, ValidationError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir, pathExists, replaceViaTemp, sha256File, syncDir } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { nameProblem, validateName } from '../../core/names.ts';
import { DEFAULT_PATCHES, isPatchOf, releasesIn, stageDelta, withoutLargePatches, type DeltaFiles } from './delta.ts';
import { packReproducible } from './pack.ts';
import { packFilter, type PackFilter } from './pack-filter.ts';
import { manifestFileName } from '../format/manifest.ts';
import { DEFAULT_MTIME, formatPackIndex, indexFileName, type PackLayout } from '../format/pack-index.ts';
import { openDestination, type Destination } from '../dest/destination.ts';
import { appendLedger, ledgerActor, lockDestination, readLedgerAt, type EntryFacts } from '../dest/ledger.ts';
import { nextSeq, placeVersionPair, readPublishedVersion } from '../dest/seq.ts';
import { provenanceEnvelope, provenanceStatement, sourceFacts, type SourceFacts } from '../format/provenance.ts';
import { loadSigningKey, publicCertificateFor, signDetached, type SigningKey } from '../format/signature.ts';
import {
  compareVersions,
  formatVersionFile,
  parseRolloutPercent,
  parseVersionFile,
  validateVersion,
  versionProblem,
  type VersionInfo,
} from '../format/version-file.ts';

export interface PublishOptions {
  dir: string;
  name: string;
  platform: string;
  version: string;
  /** Armored OpenPGP secret key file. */
  key: string;
  passphraseFile?: string;
  /** The public certificate to publish as keys.asc (`release keys`); default keys.asc beside `key`, else the key's own public part. */
  keys?: string;
  /** A local folder, `s3://bucket/prefix` or `user@host:path`. */
  to: string;
  /** Releases kept on the server (the current one always). Default 5. */
  keep?: number;
  codename?: string;
  /** Days until VERSION expires; 0 = no EXPIRES line. Default 30. */
  expiresDays?: number;
  log: Logger;
  now?: () => Date;
  /** Fixed mtime of every entry (seconds); default $SOURCE_DATE_EPOCH or 2000-01-01. */
  mtime?: number;
  /** SEQ to write (`--seq`); default one more than the VERSION at `to`. */
  seq?: number;
  /** Source facts for the provenance (`--source-repo` …); default SHIPKIT_REPO, SHIPKIT_TAG/REF, SHIPKIT_SHA. */
  source?: { repo?: string; ref?: string; commit?: string; builderId?: string };
  /** Environment the source facts default from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** ROLLOUT to write in VERSION (`--rollout`): percent of hosts that take it now; absent = all. */
  rollout?: number;
  /** Write the manifest and patches for delta updates (default true; `--no-delta`). */
  delta?: boolean;
  /** Patches from this many of the last releases at DEST (default 3; `--patches`). */
  patches?: number;
  /** Entries of `dir` left out besides .git (`--exclude`, names or paths from `dir`, globs). */
  exclude?: string[];
  /** Entries put back although .git or `exclude` names them (`--include .git`). */
  include?: string[];
  /** The state folder where the longest ledger read at each DEST is kept (`release history --state`); none: not checked. */
  state?: string;
}

export interface PublishResult {
  file: string;
  version: string;
  sha256: string;
  size: number;
  to: string;
  signer: string;
  pruned: string[];
  unchanged: boolean;
  seq: number;
  /** APP-PLATFORM-V.intoto.jsonl, when a source repo was known. */
  provenance?: string;
  /** The manifest and patches written for delta updates (absent with --no-delta). */
  delta?: DeltaFiles;
  /** What the tarball holds: files (and links), their bytes unpacked, and the entries left out. */
  packed: { files: number; bytes: number; leftOut: string[] };
}

/** Copy into `destDir` under a temp name, then rename: readers see the old or the new file. */
async function placeFile(from: string, destDir: string, name: string): Promise<void> {
  await replaceViaTemp(path.join(destDir, name), (temp) => copyFile(from, temp), { tag: 'upload' });
}

/** Refuses bad names, version, codename, rollout and a missing folder before anything is packed; returns the tarball's name. */
async function checkPublishOptions(opts: PublishOptions): Promise<string> {
  validateName(opts.name, 'app name');
  validateName(opts.platform, 'platform');
  validateVersion(opts.version, '--version');
  if (opts.codename !== undefined && nameProblem(opts.codename))
    throw new ValidationError(
      `Invalid codename ${JSON.stringify(opts.codename)}: use letters, digits, "-", "_" and ".".`,
    );
  const file = `${opts.name}-${opts.platform}-${opts.version}.tar.gz`;
  if (nameProblem(file))
    throw new ValidationError(`The release file name ${file} would be invalid (${nameProblem(file)}).`);
  // A percent hosts would refuse is refused before anything is packed or written.
  if (opts.rollout !== undefined) parseRolloutPercent(String(opts.rollout), '--rollout');
  const srcStat = await stat(opts.dir).catch(() => undefined);
  if (!srcStat?.isDirectory()) throw new UsageError(`${opts.dir} is not a folder; give the folder to publish.`);
  return file;
}

/** Packs `opts.dir` into `tarball` reproducibly and signs it into `tarball`.sig. */
async function packAndSign(
  opts: PublishOptions,
  key: SigningKey,
  tarball: string,
  file: string,
  filter: PackFilter,
): Promise<{ size: number; sha256: string; layout: PackLayout; files: number; bytes: number }> {
  const mtime = opts.mtime ?? (process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : DEFAULT_MTIME);
  const { members, root, files, bytes } = await packReproducible(opts.dir, tarball, mtime, filter.skip);
  const size = (await stat(tarball)).size;
  const sha256 = await sha256File(tarball);
  opts.log.info('packed release', { file, size, sha256, files, bytes, leftOut: filter.leftOut() });
  await atomicWriteFile(`${tarball}.sig`, await signDetached(key, { file: tarball }));
  return { size, sha256, layout: { members, root }, files, bytes };
}

/** What VERSION says of this release; EXPIRES counts from now. */
function versionInfoFor(
  opts: PublishOptions,
  file: string,
  { size, sha256 }: { size: number; sha256: string },
  seq: number,
  delta: DeltaFiles | undefined,
): VersionInfo {
  const now = opts.now?.() ?? new Date();
  const expiresDays = opts.expiresDays ?? 30;
  return {
    version: opts.version,
    file,
    release: opts.codename,
    sha256,
    size,
    expires: expiresDays > 0 ? new Date(now.getTime() + expiresDays * 86_400_000) : undefined,
    app: opts.name,
    platform: opts.platform,
    seq,
    rollout: opts.rollout,
    manifest: delta?.manifest,
    patches: delta?.patches.length ? delta.patches : undefined,
  };
}

/** Writes the signed provenance into `stage` when the source is known: its file name and digest, and the source. */
async function writeProvenance(
  opts: PublishOptions,
  key: SigningKey,
  signer: string,
  stage: string,
  file: string,
  sha256: string,
  started: Date,
): Promise<{ name?: string; sha256?: string; facts?: SourceFacts }> {
  const facts = sourceFacts(opts.source ?? {}, opts.env ?? process.env, started, opts.now?.() ?? new Date());
  if (!facts) return {};
  const name = `${opts.name}-${opts.platform}-${opts.version}.intoto.jsonl`;
  const line = await provenanceEnvelope(provenanceStatement(file, sha256, facts), signer, (data) =>
    signDetached(key, { data }),
  );
  await atomicWriteFile(path.join(stage, name), line);
  return { name, sha256: createHash('sha256').update(line).digest('hex'), facts };
}

/** The delta files staged for this release: its manifest, the tarball's index and the patches. */
const deltaNames = (delta: DeltaFiles | undefined) =>
  delta ? [delta.manifest.file, ...(delta.index ? [delta.index] : []), ...delta.patches.map((p) => p.file)] : [];

/** Copies the staged payload and keys into the local folder `dest`, VERSION files excepted. */
async function placeLocally(stage: string, dest: string, file: string, extra: string[]): Promise<void> {
  const tarball = path.join(stage, file);
  await placeFile(tarball, dest, file);
  await placeFile(`${tarball}.sig`, dest, `${file}.sig`);
  for (const name of extra) await placeFile(path.join(stage, name), dest, name);
  await placeFile(path.join(stage, 'pubkey.asc'), dest, 'pubkey.asc');
  await placeFile(path.join(stage, 'keys.asc'), dest, 'keys.asc');
  await syncDir(dest);
}

/** Removes all but the newest `keep` releases of this app/platform from `dest` (never `file`); their names. */
async function pruneOldReleases(dest: string, opts: PublishOptions, file: string, keep: number): Promise<string[]> {
  const pruned: string[] = [];
  const names = await readdir(dest);
  for (const old of releasesIn(names, opts.name, opts.platform)
    .filter((r) => r.file !== file)
    .slice(Math.max(keep, 1) - 1)) {
    await rm(path.join(dest, old.file), { force: true });
    await rm(path.join(dest, `${old.file}.sig`), { force: true });
    await rm(path.join(dest, `${old.file.slice(0, -'.tar.gz'.length)}.intoto.jsonl`), { force: true });
    await rm(path.join(dest, manifestFileName(old.file)), { force: true });
    await rm(path.join(dest, indexFileName(old.file)), { force: true });
    for (const patch of names.filter((n) => isPatchOf(old.file, n))) await rm(path.join(dest, patch), { force: true });
    pruned.push(old.file);
  }
  if (pruned.length) opts.log.info('pruned old releases', { pruned });
  return pruned;
}

/**
 * Packs, signs and publishes `opts.dir` as a release at `opts.to`: payload and keys first, then
 * VERSION.sig and VERSION; in a local folder it then prunes old releases.
 */
export async function publishRelease(opts: PublishOptions): Promise<PublishResult> {
  const { log } = opts;
  const file = await checkPublishOptions(opts);
  const filter = packFilter({ exclude: opts.exclude, include: opts.include });
  const key = await loadSigningKey(opts.key, opts.passphraseFile);
  const certificate = await publicCertificateFor(key, opts.key, opts.keys, opts.now?.() ?? new Date());
  const destination = openDestination(opts.to, log);
  const lock = await lockDestination(destination);
  const stage = await mkdtemp(path.join(os.tmpdir(), 'shipkit-publish-'));
  try {
    return await publishLocked(opts, { file, key, certificate, destination, stage, filter });
  } finally {
    await rm(stage, { recursive: true, force: true });
    await lock?.release();
  }
}

/** What publishRelease hands the publish once DEST is locked. */
interface LockedPublish {
  file: string;
  key: SigningKey;
  certificate: string;
  destination: Destination;
  stage: string;
  filter: PackFilter;
}

/** The publish once DEST is locked: read DEST, pack and sign, then write the payload, the ledger entry and VERSION. */
async function publishLocked(opts: PublishOptions, locked: LockedPublish): Promise<PublishResult> {
  const { file, key, certificate, destination, stage, filter } = locked;
  const signer = key.getFingerprint().toLowerCase();
  const published = await readPublishedVersion(destination, certificate);
  const seq = nextSeq(published, opts.seq, destination.where);
  const memory = opts.state ? { state: opts.state, app: opts.name, primary: signer, log: opts.log } : undefined;
  const ledger = await readLedgerAt(destination, certificate, { memory });
  const started = opts.now?.() ?? new Date();
  // Packing (gzip) and the delta files (hashing, reading old tarballs, zstd in child processes)
  // run side by side: each waits on what the other is not using. Both finish before either's
  // failure is thrown, so nothing still writes into the stage as it is removed.
  const [packing, staging] = await Promise.allSettled([
    packAndSign(opts, key, path.join(stage, file), file, filter),
    opts.delta === false
      ? undefined
      : stageDelta({
          destination,
          app: opts.name,
          platform: opts.platform,
          version: opts.version,
          file,
          dir: opts.dir,
          stage,
          count: opts.patches ?? DEFAULT_PATCHES,
          log: opts.log,
          skip: filter.skip,
        }),
  ]);
  if (packing.status === 'rejected') throw packing.reason;
  if (staging.status === 'rejected') throw staging.reason;
  const packed = packing.value;
  const { size, sha256 } = packed;
  const delta = staging.value && (await withoutLargePatches(staging.value, size, stage, opts.log));
  if (delta) {
    // Where each file is in the tarball, for hosts that fetch only the files they lack.
    delta.index = indexFileName(file);
    await atomicWriteFile(path.join(stage, delta.index), formatPackIndex({ tarball: file, size, ...packed.layout }));
  }
  const versionText = formatVersionFile(versionInfoFor(opts, file, packed, seq, delta));
  const versionSig = await signDetached(key, { data: Buffer.from(versionText) });
  await atomicWriteFile(path.join(stage, 'keys.asc'), certificate);
  await atomicWriteFile(path.join(stage, 'pubkey.asc'), certificate);
  const provenance = await writeProvenance(opts, key, signer, stage, file, sha256, started);
  const entry = publishEntry(opts, { seq, sha256, versionText, delta, provenance });
  const contents = { files: packed.files, bytes: packed.bytes, leftOut: filter.leftOut() };
  const result = {
    file,
    version: opts.version,
    sha256,
    size,
    signer,
    seq,
    provenance: provenance.name,
    delta,
    packed: contents,
  };
  if (!destination.local) {
    await publishRemote(opts, stage, file, [...(provenance.name ? [provenance.name] : []), ...deltaNames(delta)]);
    await appendLedger(destination, key, ledger, entry);
    await placeVersionPair(destination, versionText, versionSig, published.published);
    return { ...result, to: opts.to, pruned: [], unchanged: false };
  }
  const dest = destination.where;
  await ensureDir(dest);
  const unchanged = await checkAgainstServer(dest, opts, file, sha256);
  await placeLocally(stage, dest, file, [...(provenance.name ? [provenance.name] : []), ...deltaNames(delta)]);
  await appendLedger(destination, key, ledger, entry);
  await placeVersionPair(destination, versionText, versionSig, published.published);
  const pruned = await pruneOldReleases(dest, opts, file, opts.keep ?? 5);
  return { ...result, to: dest, pruned, unchanged };
}

/** The ledger entry of this publish: what VERSION, the tarball, the manifest and the provenance say. */
function publishEntry(
  opts: PublishOptions,
  {
    seq,
    sha256,
    versionText,
    delta,
    provenance,
  }: {
    seq: number;
    sha256: string;
    versionText: string;
    delta: DeltaFiles | undefined;
    provenance: { sha256?: string; facts?: SourceFacts };
  },
): EntryFacts {
  return {
    at: (opts.now?.() ?? new Date()).toISOString(),
    by: ledgerActor(opts.env),
    action: 'publish',
    app: opts.name,
    version: opts.version,
    seq,
    rollout: opts.rollout ?? null,
    sha256,
    versionText,
    manifest_sha256: delta?.manifest.sha256 ?? null,
    provenance_sha256: provenance.sha256 ?? null,
    source: {
      repo: provenance.facts?.repo ?? null,
      commit: provenance.facts?.commit ?? null,
      ref: provenance.facts?.ref ?? null,
    },
    note: opts.codename ?? null,
  };
}

/** Refuse a lower version than the server's, and a changed tarball under the same version. */
async function checkAgainstServer(dest: string, opts: PublishOptions, file: string, sha256: string): Promise<boolean> {
  let current: VersionInfo | undefined;
  try {
    current = parseVersionFile(await readFile(path.join(dest, 'VERSION'), 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    opts.log.warn(`the existing VERSION in ${dest} is unreadable (${messageOf(error)}); replacing it`);
    return false;
  }
  const order = compareVersions(opts.version, current.version);
  if (order < 0)
    throw new ValidationError(
      `${dest} already offers version ${current.version}; refusing to publish the lower ${opts.version} ` +
        `(launchfit hosts would refuse it too).`,
    );
  if (order === 0 && current.file === file && (await pathExists(path.join(dest, file)))) {
    const existing = await sha256File(path.join(dest, file));
    if (existing !== sha256)
      throw new ValidationError(`${dest}/${file} exists with other content; publish the change under a new version.`);
    return true;
  }
  return false;
}

/**
 * s3:// and user@host:path go through the upload library: the same files, the same order
 * (payload and keys first, then VERSION.sig and VERSION by placeVersionPair). Pruning and the
 * downgrade check need a listing of DEST and are done for local folders only.
 */
async function publishRemote(opts: PublishOptions, stage: string, file: string, extra: string[]): Promise<void> {
  const { uploadFiles } = await import('../../stages/upload/index.ts');
  const files = [file, `${file}.sig`, ...extra, 'pubkey.asc', 'keys.asc'];
  await uploadFiles({ from: stage, to: opts.to, files, log: opts.log });
}
