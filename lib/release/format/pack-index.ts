// The index of a release tarball's gzip members (docs/release.md "Delta updates"): where each
// member starts, how long it is and which entries it holds, so a host that lacks a few files
// fetches only their members, with HTTP Range requests on the tarball. It is not signed: what a
// host takes through it is checked file by file against the signed manifest, so a wrong index can
// only send the host on to the full download.
import { VerificationError } from '../../core/errors.ts';
import { MAX_MANIFEST_ENTRIES, manifestPathProblem } from './manifest.ts';

/** Every entry of a packed release has this mtime, so the same folder gives the same bytes. */
export const DEFAULT_MTIME = 946_684_800; // 2000-01-01T00:00:00Z

/**
 * One gzip member of a release tarball: where it starts in the file, its compressed length, and
 * the tar entries it holds whole (as `listSorted` names them). A host fetches a member with an
 * HTTP Range request and gunzips it alone (docs/release.md "Delta updates").
 */
export interface PackMember {
  at: number;
  bytes: number;
  paths: string[];
}

/** How a tarball was packed: its members, and the lone top-level folder extraction strips ('' if none). */
export interface PackLayout {
  members: PackMember[];
  root: string;
}

/** An index larger than this is refused while it is read. */
export const MAX_INDEX_BYTES = 32 * 1024 * 1024;
const FORMAT = 'shipkit-pack-index 1';

/** The index beside a release tarball at DEST: APP-PLATFORM-VERSION.index. */
export const indexFileName = (tarball: string) => `${tarball.slice(0, -'.tar.gz'.length)}.index`;

export interface PackIndex extends PackLayout {
  /** The tarball it indexes, and that tarball's size. */
  tarball: string;
  size: number;
}

export function formatPackIndex(index: PackIndex): string {
  const { tarball, size, root, members } = index;
  return `${JSON.stringify({ format: FORMAT, tarball, size, root, members })}\n`;
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/**
 * The index `text`, checked to describe `expect.tarball` of `expect.size` bytes: members that
 * follow one another from 0 to the end, each entry in one member only, no path a release may not
 * hold. Anything else throws VerificationError.
 */
export function parsePackIndex(text: string | Buffer, expect: { tarball: string; size: number }): PackIndex {
  const bad = (why: string) => new VerificationError(`the tarball's index ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text.toString());
  } catch {
    throw bad('is not JSON');
  }
  const o = raw as Record<string, unknown>;
  if (!o || typeof o !== 'object' || o.format !== FORMAT) throw bad(`is not a "${FORMAT}" index`);
  if (o.tarball !== expect.tarball) throw bad(`is for ${JSON.stringify(o.tarball)}, not ${expect.tarball}`);
  if (o.size !== expect.size) throw bad(`is for ${String(o.size)} bytes, not the ${expect.size} VERSION gives`);
  const root = o.root;
  if (typeof root !== 'string' || (root !== '' && (root.includes('/') || manifestPathProblem(root))))
    throw bad(`names a bad top-level folder ${JSON.stringify(root)}`);
  if (!Array.isArray(o.members) || o.members.length > MAX_MANIFEST_ENTRIES) throw bad('has no list of members');
  const members: PackMember[] = [];
  const seen = new Set<string>();
  let end = 0;
  for (const m of o.members as Array<Record<string, unknown>>) {
    if (!m || typeof m !== 'object' || !isCount(m.at) || !isCount(m.bytes) || !Array.isArray(m.paths))
      throw bad('has a member without at, bytes and paths');
    if (m.at !== end || m.bytes === 0) throw bad(`has a member at ${m.at} where one should start at ${end}`);
    for (const p of m.paths as unknown[]) {
      const problem = manifestPathProblem(p);
      if (problem) throw bad(`names a bad path ${JSON.stringify(p)}: it ${problem}`);
      if (seen.has(p as string)) throw bad(`names ${JSON.stringify(p)} twice`);
      seen.add(p as string);
    }
    members.push({ at: m.at, bytes: m.bytes, paths: m.paths as string[] });
    end = m.at + m.bytes;
  }
  if (end !== expect.size) throw bad(`covers ${end} bytes of the ${expect.size}`);
  return { tarball: expect.tarball, size: expect.size, root, members };
}
