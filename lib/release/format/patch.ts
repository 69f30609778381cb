// A patch between two releases (docs/release.md "Delta updates"): one JSON header line, then the
// groups' zstd bytes back to back. The header is checked against the signed manifest of the new
// release before any byte reaches zstd: each file the patch makes is a file of that manifest,
// with its size and sha256, once; the lengths add up to the signed size of the patch.
import { ValidationError } from '../../core/errors.ts';
import { manifestPathProblem, type ManifestEntry } from './manifest.ts';
import { compareVersions } from './version-file.ts';

export const PATCH_FORMAT = 'shipkit-patch/1';
/** The header line is refused past this many bytes. */
export const MAX_PATCH_HEADER_BYTES = 16 * 1024 * 1024;

/** A file a group makes; in a `delta` group, with the old file its bytes are patched from. */
export interface PatchFile {
  path: string;
  size: number;
  sha256: string;
  from?: string;
  from_size?: number;
  from_sha256?: string;
}

/** `delta`: zstd --patch-from the concatenated old files; `whole`: zstd of the new files alone. */
export interface PatchGroup {
  kind: 'delta' | 'whole';
  /** Compressed bytes of this group in the patch. */
  bytes: number;
  files: PatchFile[];
}

/**
 * The new release's manifest as changes to the `from` release's: the paths it no longer has and
 * the entries it adds or changes. A host holding the old manifest rebuilds the new one from it
 * and checks the result against the signed digest; else it fetches the manifest whole.
 */
export interface ManifestChanges {
  removed: string[];
  changed: ManifestEntry[];
}

export interface PatchHeader {
  format: typeof PATCH_FORMAT;
  from: string;
  to: string;
  manifest?: ManifestChanges;
  /** Files of the new release found in the old one at another path (same bytes). */
  copies: Array<{ path: string; from: string; sha256: string }>;
  groups: PatchGroup[];
}

/** The patch file's name at DEST. */
export const patchFileName = (app: string, platform: string, version: string, from: string) =>
  `${app}-${platform}-${version}.from-${from}.patch`;

const HEX64 = /^[0-9a-f]{64}$/;

function checkOldFile(f: PatchFile, where: string): void {
  const problem = manifestPathProblem(f.from);
  if (problem) throw new ValidationError(`${where}: its old path ${problem}.`);
  if (!Number.isSafeInteger(f.from_size) || (f.from_size as number) < 0 || !HEX64.test(String(f.from_sha256)))
    throw new ValidationError(`${where}: a delta file needs from_size and from_sha256.`);
}

/** Each made path once, a file of `manifest` with its size and digest; returns the total output bytes. */
function checkMade(header: PatchHeader, files: Map<string, ManifestEntry>): number {
  const made = new Set<string>();
  const claim = (p: string, sha256: string, size: number | undefined, where: string) => {
    const entry = files.get(p);
    if (!entry) throw new ValidationError(`${where}: ${JSON.stringify(p)} is not a file of the new release.`);
    if (made.has(p)) throw new ValidationError(`${where}: ${JSON.stringify(p)} is made twice.`);
    if (entry.sha256 !== sha256 || (size !== undefined && entry.size !== size))
      throw new ValidationError(`${where}: ${JSON.stringify(p)} does not match the signed manifest.`);
    made.add(p);
  };
  if (!Array.isArray(header.copies) || !Array.isArray(header.groups))
    throw new ValidationError('The patch header has no copies or groups list.');
  for (const c of header.copies) {
    const problem = manifestPathProblem(c?.from);
    if (problem) throw new ValidationError(`patch copy ${JSON.stringify(c?.path)}: its old path ${problem}.`);
    claim(c.path, c.sha256, undefined, 'patch copy');
  }
  let out = 0;
  header.groups.forEach((g, i) => {
    const where = `patch group ${i + 1}`;
    if ((g?.kind !== 'delta' && g?.kind !== 'whole') || !Number.isSafeInteger(g.bytes) || g.bytes <= 0)
      throw new ValidationError(`${where}: kind must be delta or whole, with a length in bytes.`);
    if (!Array.isArray(g.files) || !g.files.length) throw new ValidationError(`${where} makes no files.`);
    for (const f of g.files) {
      if (!Number.isSafeInteger(f?.size) || f.size < 0)
        throw new ValidationError(`${where}: ${JSON.stringify(f?.path)} has no size in bytes.`);
      claim(f.path, f.sha256, f.size, where);
      if (g.kind === 'delta') checkOldFile(f, `${where} (${JSON.stringify(f.path)})`);
      out += f.size;
    }
  });
  return out;
}

/**
 * Parse and check a patch's header line against what signed metadata says: its versions, the new
 * manifest, and the patch's signed size (`bytes` after the header must add up to it).
 */
export function parsePatchHeader(
  line: Buffer,
  expect: { from: string; to: string; size: number; manifest: ManifestEntry[] },
  header: PatchHeader = patchHeaderJson(line),
): { header: PatchHeader; outputBytes: number } {
  if (header?.format !== PATCH_FORMAT) throw new ValidationError(`The patch is not in the ${PATCH_FORMAT} format.`);
  if (
    typeof header.from !== 'string' ||
    typeof header.to !== 'string' ||
    compareVersions(header.from, expect.from) !== 0 ||
    compareVersions(header.to, expect.to) !== 0
  )
    throw new ValidationError(`The patch is from ${header.from} to ${header.to}, not ${expect.from} to ${expect.to}.`);
  const files = new Map(expect.manifest.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  const outputBytes = checkMade(header, files);
  const body = header.groups.reduce((sum, g) => sum + g.bytes, 0);
  if (line.length + 1 + body !== expect.size)
    throw new ValidationError(
      `The patch's header gives ${line.length + 1 + body} bytes, but its signed size is ${expect.size}.`,
    );
  return { header, outputBytes };
}

/** The header line's bytes, newline included. */
export const formatPatchHeader = (header: PatchHeader) => Buffer.from(`${JSON.stringify(header)}\n`);

/** A patch's header line as JSON, nothing in it checked yet (parsePatchHeader checks it). */
export function patchHeaderJson(line: Buffer): PatchHeader {
  if (line.length > MAX_PATCH_HEADER_BYTES)
    throw new ValidationError(`The patch header is longer than ${MAX_PATCH_HEADER_BYTES} bytes.`);
  try {
    return JSON.parse(line.toString('utf8')) as PatchHeader;
  } catch {
    throw new ValidationError('The patch header is not JSON.');
  }
}

/**
 * The manifest changes a patch's header carries, when it carries them in the expected shape
 * (nothing in them is trusted: the manifest they give is checked against its signed digest).
 */
export function manifestChangesOf(header: Partial<PatchHeader>): ManifestChanges | undefined {
  const changes = header?.manifest;
  if (!changes || !Array.isArray(changes.removed) || !Array.isArray(changes.changed)) return undefined;
  if (!changes.removed.every((p) => typeof p === 'string')) return undefined;
  if (!changes.changed.every((e) => typeof e === 'object' && e !== null && typeof e.path === 'string'))
    return undefined;
  return changes;
}
