// A delta update's third way (docs/launchfit.md "Delta updates"): no patch from a release this
// host holds, but the tarball's index (lib/release/format/pack-index.ts) says which gzip member holds each
// file. Files the current release still has with their signed digest are hard-linked from it; the
// members holding the others are fetched with HTTP Range requests, gunzipped with their output
// capped, and each file taken from them is checked against the signed manifest.
import { createHash } from 'node:crypto';
import { chmod, open, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../../core/errors.ts';
import { mapLimit } from '../../core/pool.ts';
import type { ManifestEntry } from '../../release/format/manifest.ts';
import type { Books } from '../deploy-folder/file-digests.ts';
import type { PackIndex } from '../../release/format/pack-index.ts';
import {
  gunzipMember,
  isRegularFile,
  memberOfPath,
  namedEntries,
  tarPathOf,
} from '../../release/format/pack-members.ts';
import { checkTree } from './extract.ts';
import { holdRelease, makeFolders, modeOf, reuseFile, settleWritten } from './patch-apply.ts';
import { workSlices } from '../../core/work-slices.ts';

/**
 * Members next to one another are fetched in one request, up to this many bytes (a larger member
 * alone): with RANGES_AT_ONCE in flight, each held whole while its files are cut out, the files
 * way's memory stays within a few MiB besides the largest file's member (bench:delta: 4 MiB × 4
 * peaked at 86 MB on the 200 MB app, over the 84 MB goal).
 */
const RANGE_BYTES = 1024 * 1024;
/** Range requests in flight at once. */
const RANGES_AT_ONCE = 3;
/** The files way is left for the tarball when its members come to more than this share of it. */
export const MAX_FILES_SHARE = 0.5;

/** Gets bytes [from, to] of the tarball; must return exactly those. */
export type FetchRange = (from: number, to: number) => Promise<Buffer>;

export interface FilesSource {
  /** The release this host runs, files are taken from (releases/NAME). */
  fromRoot: string;
  /** The manifest kept for it at install, when there is one: which of its files are unchanged, without reading them. */
  kept?: ManifestEntry[];
  index: PackIndex;
  fetchRange: FetchRange;
  /** The current release's digest book, and the new release's, filled as its files are checked. */
  books: Books;
}

/** The plan: files to take from the held release (from → entry) and the files to fetch. */
interface Plan {
  reuse: Array<[from: string, entry: ManifestEntry]>;
  fetch: ManifestEntry[];
}

/** A file's size and digest in a manifest line as formatManifest writes it (folders and links have none). */
const FILE_DIGEST = /"size":(\d+),"sha256":"([0-9a-f]{64})"/g;

/**
 * The share of the release's file bytes that `kept` (the current release's manifest) holds no
 * file for, by digest, read from both manifests' bytes before either is parsed (two parses cost a
 * cold process ~90 ms): above MAX_FILES_SHARE the tarball is cheaper. Only a cost estimate: what
 * the files way then takes is parsed, and every byte checked.
 */
export function changedShare(manifest: Buffer, kept: Buffer): number {
  const have = new Set<string>();
  for (const [, size, sha256] of kept.toString('latin1').matchAll(FILE_DIGEST)) have.add(`${sha256}:${size}`);
  let total = 0;
  let changed = 0;
  for (const [, size, sha256] of manifest.toString('latin1').matchAll(FILE_DIGEST)) {
    total += Number(size);
    if (!have.has(`${sha256}:${size}`)) changed += Number(size);
  }
  return total ? changed / total : 0;
}

/**
 * Which files come from the held release and which members must be fetched. With a kept manifest,
 * a file is reused from the same path or from any path holding its digest; without, from the same
 * path (its bytes are checked either way).
 */
function planFiles(manifest: ManifestEntry[], source: FilesSource): Plan {
  const kept = source.kept && new Map(source.kept.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  const byDigest = new Map<string, string>();
  for (const e of kept?.values() ?? []) byDigest.set(`${e.sha256}:${e.size}`, e.path);
  const plan: Plan = { reuse: [], fetch: [] };
  for (const e of manifest) {
    if (e.type !== 'file') continue;
    const same = kept?.get(e.path);
    const from = kept
      ? same?.sha256 === e.sha256 && same.size === e.size
        ? e.path
        : byDigest.get(`${e.sha256}:${e.size}`)
      : e.path;
    if (from !== undefined) plan.reuse.push([from, e]);
    else plan.fetch.push(e);
  }
  return plan;
}

function memberFor(e: ManifestEntry, index: PackIndex, memberOf: Map<string, number>): number {
  const m = memberOf.get(tarPathOf(index, e.path));
  if (m === undefined) throw new VerificationError(`the tarball's index does not say where ${e.path} is`);
  return m;
}

/** Runs of members next to one another, each at most RANGE_BYTES (a larger member alone). */
function rangesOf(index: PackIndex, members: number[]): number[][] {
  const runs: number[][] = [];
  for (const m of members.sort((a, b) => a - b)) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    const start = run && index.members[run[0]!]!.at;
    const end = index.members[m]!.at + index.members[m]!.bytes;
    if (run && last === m - 1 && end - start! <= RANGE_BYTES) run.push(m);
    else runs.push([m]);
  }
  return runs;
}

/** Writes `body` as `entry` at `dst`, checked against its signed size and digest. */
async function writeChecked(dst: string, entry: ManifestEntry, body: Buffer, books: Books): Promise<void> {
  if (body.length !== entry.size || createHash('sha256').update(body).digest('hex') !== entry.sha256)
    throw new VerificationError(`${entry.path} fetched from the tarball does not match its signed digest`);
  const out = await open(dst, 'wx', modeOf(entry));
  try {
    for (let at = 0; at < body.length;) at += (await out.write(body, at)).bytesWritten;
  } finally {
    await out.close();
  }
  await settleWritten(dst, entry, books);
}

/** One fetched member: gunzipped (capped at what its entries may hold) and its wanted files written. */
async function takeMember(
  gz: Buffer,
  paths: string[],
  wanted: Map<string, ManifestEntry>,
  root: string,
  byTarPath: Map<string, ManifestEntry>,
  books: Books,
): Promise<void> {
  const tar = await gunzipMember(gz, paths, (p) => byTarPath.get(p)?.size ?? 0);
  for (const { path: p, type, body } of namedEntries(tar, paths)) {
    const entry = wanted.get(p);
    if (!entry) continue;
    if (!isRegularFile(type)) throw new VerificationError(`${entry.path} is not a regular file in the tarball`);
    await writeChecked(path.join(root, entry.path), entry, body, books);
    wanted.delete(p);
  }
}

/**
 * Build the release `manifest` describes into `root` from the held release and the members of
 * the tarball it lacks. Every file is made once and checked; folders first, links last, then the
 * tree as an extracted tarball is (install/extract.ts). Returns the tarball bytes fetched; throws
 * VerificationError when the way does not pay (more than MAX_FILES_SHARE of the tarball) or
 * anything does not match, and the caller downloads the tarball.
 */
export async function buildFromFiles(manifest: ManifestEntry[], source: FilesSource, root: string): Promise<number> {
  const { index } = source;
  const memberOf = memberOfPath(index);
  const plan = planFiles(manifest, source);
  const membersOf = (files: ManifestEntry[]) => {
    const members = new Set(files.map((e) => memberFor(e, index, memberOf)));
    const bytes = [...members].reduce((n, m) => n + index.members[m]!.bytes, 0);
    if (bytes > index.size * MAX_FILES_SHARE)
      throw new VerificationError(
        `the files this host lacks are in ${bytes} bytes of the ${index.size}-byte tarball; the tarball is cheaper`,
      );
    return members;
  };
  membersOf(plan.fetch);
  const pause = workSlices();
  await makeFolders(manifest, root, pause);
  // A held file that no longer matches its digest (the app changed it) is fetched instead.
  const held = await holdRelease(source.fromRoot, source.books);
  for (const [from, entry] of plan.reuse) {
    const dst = path.join(root, entry.path);
    try {
      await reuseFile(held, from, dst, entry);
    } catch (error) {
      if (!(error instanceof VerificationError)) throw error;
      await rm(dst, { force: true });
      plan.fetch.push(entry);
    }
    await pause();
  }
  const members = membersOf(plan.fetch);
  const byTarPath = new Map(manifest.map((e) => [tarPathOf(index, e.path), e]));
  const wanted = new Map(plan.fetch.map((e) => [tarPathOf(index, e.path), e]));
  let fetched = 0;
  await mapLimit(rangesOf(index, [...members]), RANGES_AT_ONCE, async (run) => {
    const first = index.members[run[0]!]!;
    const last = index.members[run.at(-1)!]!;
    const bytes = await source.fetchRange(first.at, last.at + last.bytes - 1);
    if (bytes.length !== last.at + last.bytes - first.at)
      throw new VerificationError(
        `the update server sent ${bytes.length} bytes for a range of ${last.at + last.bytes - first.at}`,
      );
    fetched += bytes.length;
    for (const m of run) {
      const member = index.members[m]!;
      const gz = bytes.subarray(member.at - first.at, member.at - first.at + member.bytes);
      await takeMember(gz, member.paths, wanted, root, byTarPath, source.books);
    }
  });
  if (wanted.size)
    throw new VerificationError(`${[...wanted.values()][0]!.path} is not in the member the tarball's index gives`);
  for (const e of manifest) if (e.type === 'symlink') await symlink(e.target!, path.join(root, e.path));
  await checkTree(root, root);
  await chmod(root, 0o755);
  return fetched;
}
