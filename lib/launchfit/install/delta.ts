// The cheapest verified way to a release (docs/launchfit.md "Delta updates"): with a signed
// VERSION naming a manifest, a patch from a release this host holds is fetched, checked against
// its signed digest and the manifest, and applied (patch-apply.ts); anything wrong, or nothing to
// patch from, and the full tarball is downloaded as before. The log says which way was taken.
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { VerificationError, messageOf } from '../../core/errors.ts';
import { ensureDir } from '../../core/fs.ts';
import { downloadToFile, fetchSmall } from '../update-server/requests.ts';
import { manifestFileName } from '../../release/format/manifest.ts';
import {
  MAX_MANIFEST_BYTES,
  manifestSha256,
  parseManifest,
  type ManifestEntry,
} from '../../release/format/manifest.ts';
import {
  MAX_PATCH_HEADER_BYTES,
  manifestChangesOf,
  parsePatchHeader,
  patchHeaderJson,
  type PatchHeader,
} from '../../release/format/patch.ts';
import { indexFileName, MAX_INDEX_BYTES, parsePackIndex } from '../../release/format/pack-index.ts';
import { compareVersions, type PatchLine, type VersionInfo } from '../../release/format/version-file.ts';
import { haveZstd } from '../../core/zstd.ts';
import { newBooks, readBook, type Books } from '../deploy-folder/file-digests.ts';
import { keptManifestFile, readState } from '../deploy-folder/state.ts';
import { readCurrent } from '../deploy-folder/current-link.ts';
import type { TrustedKeys } from '../trust/pgp.ts';
import { checkProvenance } from '../trust/provenance.ts';
import { releaseNameOf, type UpdateContext } from './context.ts';
import { fetchAndUnpack, metadataTimeoutsOf, serverOf, timeoutsOf, type Unpacked } from './fetch-release.ts';
import { rebuiltManifest } from './kept-manifest.ts';
import { buildFromFiles, changedShare, MAX_FILES_SHARE } from './fetch-missing-files.ts';
import { buildFromPatch } from './patch-apply.ts';

const HEADER_STEP = 64 * 1024;

/** The key that signed the VERSION being installed (a delta release is vouched for by it alone). */
export interface VersionSigner {
  primary: string;
  subkey: string;
}

/**
 * The release VERSION names, the cheapest verified way: rebuilt from a patch, else from the
 * files the current release has and the tarball's members holding the others, else the full
 * tarball.
 */
export async function obtainRelease(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy: VersionSigner | undefined,
  work: string,
): Promise<Unpacked> {
  const rebuilt =
    (await rebuildFromDelta(ctx, info, trusted, signedBy, work)) ??
    (await rebuildFromFiles(ctx, info, trusted, signedBy, work));
  if (rebuilt) {
    // A download of the whole tarball an earlier check left unfinished (kept to resume) is no
    // longer needed: this release is built. Left, it would hold disk until the next full download.
    const part = path.join(ctx.paths.downloads, `${info.file}.part`);
    await Promise.all([rm(part, { force: true }), rm(`${part}.json`, { force: true })]);
    return rebuilt;
  }
  if (info.manifest) ctx.log.info('downloading the whole release', { way: 'full' });
  return fetchAndUnpack(ctx, info, trusted, work);
}

/** Why this update cannot be a delta at all (the host's settings, an unsigned VERSION), or undefined. */
function deltaOff(ctx: UpdateContext, info: VersionInfo, signedBy: VersionSigner | undefined): string | undefined {
  if (!info.manifest) return 'VERSION names no manifest';
  if (!ctx.config.updates.delta) return 'updates.delta is false';
  if (!signedBy || !info.sha256) return 'VERSION is not signed';
  if (info.manifest.file !== manifestFileName(info.file))
    return `the manifest ${info.manifest.file} is not ${info.file}'s`;
  return undefined;
}

/** Why this update cannot take a patch, or undefined. */
function patchOff(info: VersionInfo): string | undefined {
  if (!info.patches?.length) return 'VERSION offers no patch';
  if (!haveZstd()) return 'zstd is not installed on this host';
  return undefined;
}

/** A held release to patch from, and the patch VERSION offers from it. */
interface PickedPatch {
  patch: PatchLine;
  fromName: string;
  fromRoot: string;
}

/** The patch to take: from the current release if VERSION offers one, else the smallest from a release held here. */
async function pickPatch(ctx: UpdateContext, info: VersionInfo): Promise<PickedPatch | undefined> {
  const state = await readState(ctx.paths);
  const current = await readCurrent(ctx.paths);
  const held = Object.entries(state.installed);
  const options = (info.patches ?? [])
    .map((patch) => {
      const found = held.find(
        ([name, r]) => compareVersions(r.version, patch.from) === 0 && name !== releaseNameOf(info.file),
      );
      return found && { patch, name: found[0] };
    })
    .filter((o): o is { patch: PatchLine; name: string } => Boolean(o))
    .sort((a, b) => Number(b.name === current) - Number(a.name === current) || a.patch.size - b.patch.size);
  const best = options[0];
  return best && { patch: best.patch, fromName: best.name, fromRoot: path.join(ctx.paths.releases, best.name) };
}

/** The signed manifest: fetched, its digest checked against VERSION, every line checked. */
async function fetchManifest(
  ctx: UpdateContext,
  info: VersionInfo,
): Promise<{ entries: ManifestEntry[]; bytes: number }> {
  return parsedManifest(ctx, await fetchManifestBytes(ctx, info));
}

const parsedManifest = (ctx: UpdateContext, body: Buffer) => ({
  entries: parseManifest(body, ctx.config.updates.maxUnpackedSize),
  bytes: body.length,
});

/** The signed manifest's bytes: fetched, their digest checked against VERSION. */
async function fetchManifestBytes(ctx: UpdateContext, info: VersionInfo): Promise<Buffer> {
  const url = new URL(info.manifest!.file, serverOf(ctx.config)).href;
  const res = await fetchSmall(url, {
    maxBytes: MAX_MANIFEST_BYTES,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  });
  if (res.status !== 'ok') throw new VerificationError(`${url} is missing`);
  if (manifestSha256(res.body) !== info.manifest!.sha256)
    throw new VerificationError(`${info.manifest!.file} does not match the sha256 VERSION gives`);
  return res.body;
}

/**
 * The signed manifest rebuilt from the one kept for `fromName` and the changes the patch's
 * (verified) header carries, when its sha256 is the one VERSION gives; else undefined.
 */
async function manifestFromKept(
  ctx: UpdateContext,
  info: VersionInfo,
  fromName: string,
  parsed: PatchHeader,
): Promise<ManifestEntry[] | undefined> {
  const changes = manifestChangesOf(parsed);
  if (!changes) return undefined;
  try {
    const text = await rebuiltManifest(ctx.paths, fromName, changes);
    if (!text || manifestSha256(text) !== info.manifest!.sha256) {
      if (text) ctx.log.info(`the manifest kept for ${fromName} gives another one than VERSION signs; fetching it`);
      return undefined;
    }
    return parseManifest(text, ctx.config.updates.maxUnpackedSize);
  } catch (error) {
    ctx.log.info(`the manifest kept for ${fromName} cannot be used (${messageOf(error)}); fetching it`);
    return undefined;
  }
}

/**
 * The patch's header line (at most MAX_PATCH_HEADER_BYTES) and where its body starts: read 64 KiB
 * at a time until its newline, so a small header costs a small buffer.
 */
async function readHeaderLine(file: string): Promise<{ line: Buffer; bodyStart: number }> {
  const handle = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    while (length <= MAX_PATCH_HEADER_BYTES) {
      const chunk = Buffer.alloc(Math.min(HEADER_STEP, MAX_PATCH_HEADER_BYTES + 1 - length));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, length);
      if (bytesRead === 0) break;
      const end = chunk.subarray(0, bytesRead).indexOf(10);
      if (end >= 0) {
        const line = Buffer.concat([...chunks, chunk.subarray(0, end)]);
        return { line, bodyStart: line.length + 1 };
      }
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
    }
    throw new VerificationError('the patch has no header line');
  } finally {
    await handle.close();
  }
}

/**
 * Before a rebuild writes anything: the tarball's provenance checked, when configured, against
 * VERSION's SHA256 as for a full download; then an empty private `work/root`.
 */
async function prepareRebuild(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys, work: string) {
  await checkProvenance({
    updates: ctx.config.updates,
    url: new URL(info.file, serverOf(ctx.config)).href,
    file: info.file,
    sha256: info.sha256!,
    trusted,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
    log: ctx.log,
    now: ctx.now?.(),
  });
  await rm(work, { recursive: true, force: true });
  await ensureDir(path.join(work, 'root'), 0o700);
}

/** For the log: held files reused, and how many had to be read (not in the digest book as they are). */
const heldRead = (books: Books) => ({ reused: books.reused, read: books.read });

/** A rebuilt release, vouched for by the key that signed VERSION. */
const rebuiltRelease = (
  info: VersionInfo,
  signedBy: VersionSigner,
  made: Required<Pick<Unpacked, 'work' | 'root' | 'bytes' | 'way' | 'from' | 'manifest' | 'book'>>,
): Unpacked => ({ ...made, sha256: info.sha256!, signer: signedBy.primary, signingKey: signedBy.subkey });

/**
 * The release rebuilt in `work` from a held release and a verified patch, or undefined (with the
 * reason logged) when that cannot be done; nothing is left in `work` then.
 */
async function rebuildFromDelta(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy: VersionSigner | undefined,
  work: string,
): Promise<Unpacked | undefined> {
  const picked = await patchToTake(ctx, info, signedBy);
  if (!picked) return undefined;
  const patchFile = path.join(ctx.paths.downloads, picked.patch.file);
  try {
    const size = await downloadPatch(ctx, picked.patch, patchFile);
    return await rebuildWithPatch(ctx, info, trusted, signedBy!, work, picked, patchFile, size);
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    ctx.log.warn(`the delta update from ${picked.patch.from} failed (${messageOf(error)})`);
    return undefined;
  } finally {
    await rm(patchFile, { force: true });
    await rm(`${patchFile}.part`, { force: true });
    await rm(`${patchFile}.part.json`, { force: true });
  }
}

/** The patch this update can take, or undefined with the reason logged. */
async function patchToTake(
  ctx: UpdateContext,
  info: VersionInfo,
  signedBy: VersionSigner | undefined,
): Promise<PickedPatch | undefined> {
  const { log } = ctx;
  const off = deltaOff(ctx, info, signedBy);
  if (off) {
    if (info.manifest) log.info(`no delta update (${off})`);
    return undefined;
  }
  const noPatch = patchOff(info);
  if (noPatch) {
    log.info(`no patch (${noPatch})`);
    return undefined;
  }
  const picked = await pickPatch(ctx, info);
  if (!picked) log.info('no patch from a release this host holds');
  return picked;
}

/** The patch downloaded to `patchFile` and checked against the size and sha256 VERSION gives; its size. */
async function downloadPatch(ctx: UpdateContext, patch: PatchLine, patchFile: string): Promise<number> {
  await ensureDir(ctx.paths.downloads, 0o700);
  await ensureDir(ctx.paths.tmp, 0o700);
  const url = new URL(patch.file, serverOf(ctx.config)).href;
  const got = await downloadToFile(url, patchFile, {
    maxBytes: patch.size,
    expectedSize: patch.size,
    timeouts: timeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  });
  if (got.size !== patch.size || got.sha256 !== patch.sha256)
    throw new VerificationError(`${patch.file} does not match the sha256 and size VERSION gives`);
  return got.size;
}

/** The release built in `work` from the held release and the downloaded (verified) patch. */
async function rebuildWithPatch(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy: VersionSigner,
  work: string,
  picked: PickedPatch,
  patchFile: string,
  patchSize: number,
): Promise<Unpacked> {
  const { manifest, kept, header, bodyStart } = await readPatchHeader(ctx, info, picked, patchFile);
  await prepareRebuild(ctx, info, trusted, work);
  const root = path.join(work, 'root');
  const books = newBooks(await readBook(ctx.paths, picked.fromName));
  const carried = await buildFromPatch(
    manifest.entries,
    { fromRoot: picked.fromRoot, patchFile, header, bodyStart, books },
    work,
    root,
  );
  const way = carried > 0 ? 'patch' : 'reuse';
  const bytes = manifest.bytes + patchSize;
  ctx.log.info(`rebuilt ${info.file} from ${picked.patch.from} and a ${patchSize}-byte patch`, {
    way,
    bytes,
    from: picked.patch.from,
    manifest: kept ? `rebuilt from the one kept for ${picked.fromName}` : 'fetched',
    ...heldRead(books),
  });
  return rebuiltRelease(info, signedBy, {
    work,
    root,
    bytes,
    way,
    from: picked.patch.from,
    manifest: manifest.entries,
    book: books.made,
  });
}

/**
 * The patch's header, checked against the signed manifest: the one kept for the held release
 * rebuilt with the header's changes when that gives VERSION's sha256 (`kept`), else fetched.
 */
async function readPatchHeader(ctx: UpdateContext, info: VersionInfo, picked: PickedPatch, patchFile: string) {
  const { line, bodyStart } = await readHeaderLine(patchFile);
  const parsed = patchHeaderJson(line);
  const kept = await manifestFromKept(ctx, info, picked.fromName, parsed);
  const manifest = kept ? { entries: kept, bytes: 0 } : await fetchManifest(ctx, info);
  const { header } = parsePatchHeader(
    line,
    { from: picked.patch.from, to: info.version, size: picked.patch.size, manifest: manifest.entries },
    parsed,
  );
  return { manifest, kept: Boolean(kept), header, bodyStart };
}

/**
 * The release rebuilt in `work` from the current release's files and the tarball's members that
 * hold the others (fetch-missing-files.ts), or undefined (with the reason logged) when that cannot be done
 * or costs more than the tarball; nothing is left in `work` then.
 */
async function rebuildFromFiles(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy: VersionSigner | undefined,
  work: string,
): Promise<Unpacked | undefined> {
  const { log } = ctx;
  if (deltaOff(ctx, info, signedBy) || info.size === undefined) return undefined;
  const current = await readCurrent(ctx.paths);
  const held = current && (await readState(ctx.paths)).installed[current];
  if (!current || !held || current === releaseNameOf(info.file)) return undefined;
  try {
    const manifests = await manifestsIfFewChanged(ctx, info, current, held.version);
    if (!manifests) return undefined;
    const pack = await fetchPackIndex(ctx, info, info.size);
    if (!pack) return undefined;
    await prepareRebuild(ctx, info, trusted, work);
    const root = path.join(work, 'root');
    const books = newBooks(await readBook(ctx.paths, current));
    const { manifest, kept } = manifests;
    const fetched = await buildFromFiles(
      manifest.entries,
      {
        fromRoot: path.join(ctx.paths.releases, current),
        kept,
        index: pack.index,
        fetchRange: tarballRange(ctx, info),
        books,
      },
      root,
    );
    const bytes = pack.bytes + manifest.bytes + fetched;
    log.info(`rebuilt ${info.file} from ${held.version} and ${fetched} bytes of the tarball`, {
      way: 'files',
      bytes,
      from: held.version,
      ...heldRead(books),
    });
    return rebuiltRelease(info, signedBy!, {
      work,
      root,
      bytes,
      way: 'files',
      from: held.version,
      manifest: manifest.entries,
      book: books.made,
    });
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    log.warn(`fetching only the files ${current} lacks failed (${messageOf(error)})`);
    return undefined;
  }
}

/**
 * The signed manifest and the one kept for the current release, or undefined (logged) when too
 * large a share of the release's bytes changed since for fetching files alone to pay.
 */
async function manifestsIfFewChanged(ctx: UpdateContext, info: VersionInfo, current: string, heldVersion: string) {
  const body = await fetchManifestBytes(ctx, info);
  const keptBytes = await keptManifestBytes(ctx, current);
  const changed = keptBytes && changedShare(body, keptBytes);
  if (changed && changed > MAX_FILES_SHARE) {
    ctx.log.info(`${Math.round(changed * 100)} % of the release's bytes changed since ${heldVersion}`);
    return undefined;
  }
  return { manifest: parsedManifest(ctx, body), kept: keptBytes && parsedKept(keptBytes) };
}

/** The tarball's pack index (where each member lies) and its size, or undefined (logged) when the server has none. */
async function fetchPackIndex(ctx: UpdateContext, info: VersionInfo, size: number) {
  const indexFile = indexFileName(info.file);
  const got = await fetchSmall(new URL(indexFile, serverOf(ctx.config)).href, {
    maxBytes: MAX_INDEX_BYTES,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  });
  if (got.status !== 'ok') {
    ctx.log.info(`no ${indexFile} on the update server; the files this host lacks cannot be fetched alone`);
    return undefined;
  }
  return { index: parsePackIndex(got.body, { tarball: info.file, size }), bytes: got.body.length };
}

/** Reads bytes FROM..TO of the release's tarball on the update server. */
function tarballRange(ctx: UpdateContext, info: VersionInfo) {
  const tarballUrl = new URL(info.file, serverOf(ctx.config)).href;
  return async (from: number, to: number) => {
    const r = await fetchSmall(tarballUrl, {
      from,
      to,
      maxBytes: to - from + 1,
      timeouts: timeoutsOf(ctx.config),
      fetchImpl: ctx.fetchImpl,
    });
    if (r.status !== 'ok') throw new VerificationError(`${info.file} is missing`);
    return r.body;
  };
}

/** The manifest kept for releases/NAME at install (a hint of which files are unchanged), if there is one. */
async function keptManifestBytes(ctx: UpdateContext, name: string): Promise<Buffer | undefined> {
  const text = await readFile(keptManifestFile(ctx.paths, name)).catch(() => undefined);
  return text && text.length <= MAX_MANIFEST_BYTES ? text : undefined;
}

/** A kept manifest's entries, or undefined when it does not parse. */
function parsedKept(text: Buffer): ManifestEntry[] | undefined {
  try {
    return parseManifest(text);
  } catch {
    return undefined;
  }
}
