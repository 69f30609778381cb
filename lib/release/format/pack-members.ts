// Reading single gzip members of a release tarball through its index (pack-index.ts): which member
// holds a path, and the entries of one member, gunzipped with its output capped. Used by a host
// fetching the files it lacks (launchfit's files way) and by `release publish` reading the old
// bytes of the files a patch changes (patch-make.ts).
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { VerificationError, messageOf } from '../../core/errors.ts';
import type { PackIndex } from './pack-index.ts';

const gunzipAsync = promisify(gunzip);

const TAR_BLOCK = 512;
const padded = (n: number) => Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;
/** What a member may hold besides its entries' bodies: each entry's headers (pax, long names). */
const HEADERS_PER_ENTRY = 4 * TAR_BLOCK + 8192;

/** The path a manifest path has in the tarball: under the top-level folder that extraction strips. */
export const tarPathOf = (index: PackIndex, p: string) => (index.root ? `${index.root}/${p}` : p);

/** Each tar path of the index to the number of the member holding it. */
export function memberOfPath(index: PackIndex): Map<string, number> {
  const of = new Map<string, number>();
  index.members.forEach((m, i) => {
    for (const p of m.paths) of.set(p, i);
  });
  return of;
}

/**
 * The entries of one member's tar bytes, each with its body, in order: the headers that only
 * describe the next entry (pax, GNU long names) are skipped, since the index names the entries.
 */
function* tarEntries(tar: Buffer): Generator<{ type: number; body: Buffer }> {
  let at = 0;
  while (at + TAR_BLOCK <= tar.length) {
    const header = tar.subarray(at, at + TAR_BLOCK);
    if (header.every((b) => b === 0)) return;
    const sizeText = header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim();
    if (!/^[0-7]*$/.test(sizeText)) throw new VerificationError('a member of the tarball has a bad tar header');
    const size = sizeText ? Number.parseInt(sizeText, 8) : 0;
    const bodyAt = at + TAR_BLOCK;
    if (bodyAt + size > tar.length) throw new VerificationError('a member of the tarball ends inside an entry');
    at = bodyAt + padded(size);
    const type = header[156]!;
    if ([0x78, 0x67, 0x4c, 0x4b].includes(type)) continue; // x g L K
    yield { type, body: tar.subarray(bodyAt, bodyAt + size) };
  }
}

/** Whether a tar entry type is a regular file ('0', or NUL from old tars). */
export const isRegularFile = (type: number) => type === 0x30 || type === 0;

/**
 * The member `gz` holding the entries `paths` (in order), gunzipped: at most what those entries
 * may take (`sizeOf` gives a path's body size, 0 when unknown), or VerificationError.
 */
export async function gunzipMember(gz: Buffer, paths: string[], sizeOf: (p: string) => number): Promise<Buffer> {
  const cap = paths.reduce((n, p) => n + HEADERS_PER_ENTRY + padded(sizeOf(p)), 2 * TAR_BLOCK);
  try {
    return await gunzipAsync(gz, { maxOutputLength: cap });
  } catch (error) {
    throw new VerificationError(
      `a member of the tarball does not gunzip to at most the ${cap} bytes its files may take (${messageOf(error)})`,
    );
  }
}

/** The entries of a gunzipped member, each named by the path the index gives it at that place. */
export function* namedEntries(tar: Buffer, paths: string[]): Generator<{ path: string; type: number; body: Buffer }> {
  let i = 0;
  for (const entry of tarEntries(tar)) {
    const p = paths[i++];
    if (p === undefined) throw new VerificationError('a member of the tarball holds more entries than its index says');
    yield { path: p, ...entry };
  }
}
