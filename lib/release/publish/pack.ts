// Reproducible release tarballs: entries sorted byte-wise, fixed mtime, no owners, normalised
// modes, so the same folder gives the same bytes on any machine (node-tar, loaded on use).
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { ValidationError } from '../../core/errors.ts';
import { HardLinksAsFiles } from '../../core/tar-links.ts';
import { workSlices } from '../../core/work-slices.ts';
import { listSorted } from '../format/manifest.ts';
import { DEFAULT_MTIME, type PackLayout, type PackMember } from '../format/pack-index.ts';

const gzipAsync = promisify(gzip);

/** A file of this many bytes or more gets a gzip member of its own. */
const OWN_MEMBER_BYTES = 32 * 1024;
/** Smaller entries share a member until it holds this many uncompressed bytes. */
const MEMBER_BYTES = 64 * 1024;
/** Members compressed at once (zlib's thread pool), in order on disk. */
const COMPRESSING_AT_ONCE = 4;

const TAR_BLOCK = 512;
/** Typeflags of the headers that only describe the next entry (pax, GNU long names). */
const PREFIX_TYPES = new Set([0x78, 0x67, 0x4c, 0x4b]); // x g L K

/** The size field of a tar header: octal text, or base-256 when its first byte has the high bit. */
function tarSize(header: Buffer): number {
  const field = header.subarray(124, 136);
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  return text ? Number.parseInt(text, 8) : 0;
}

/**
 * Cuts the tar stream node-tar writes into gzip members at entry boundaries: a member per file of
 * OWN_MEMBER_BYTES or more, smaller entries together up to MEMBER_BYTES. Deflate looks back only
 * 32 KiB, so members of this size compress as well as one stream, and gzip readers (gunzip, tar,
 * node's zlib, node-tar) read the members one after another as one archive.
 */
class MemberWriter {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private paths: string[] = [];
  private header = Buffer.alloc(TAR_BLOCK);
  private headerFill = 0;
  private bodyLeft = 0;
  private inPrefix = false;
  private lastWasLarge = false;
  private entry = 0;
  private at = 0;
  private readonly compressing: Array<Promise<{ gz: Buffer; paths: string[] }>> = [];
  readonly members: PackMember[] = [];

  private readonly out: FileHandle;
  private readonly names: string[];
  private readonly sizes: number[];

  constructor(out: FileHandle, names: string[], sizes: number[]) {
    this.out = out;
    this.names = names;
    this.sizes = sizes;
  }

  async write(chunk: Buffer): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - i);
        this.take(chunk.subarray(i, i + n));
        this.bodyLeft -= n;
        i += n;
        continue;
      }
      const n = Math.min(TAR_BLOCK - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      if (this.headerFill === TAR_BLOCK) {
        this.headerFill = 0;
        await this.onHeader(Buffer.from(this.header));
      }
    }
  }

  private async onHeader(header: Buffer): Promise<void> {
    if (header.every((b) => b === 0)) {
      this.take(header); // the end of the archive
      return;
    }
    const size = tarSize(header);
    if (!this.inPrefix) {
      const large = (this.sizes[this.entry] ?? 0) >= OWN_MEMBER_BYTES;
      if (this.bytes > 0 && (this.bytes >= MEMBER_BYTES || large || this.lastWasLarge)) await this.cut();
      this.lastWasLarge = large;
    }
    this.take(header);
    this.bodyLeft = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    this.inPrefix = PREFIX_TYPES.has(header[156]!);
    if (!this.inPrefix) {
      const name = this.names[this.entry++];
      if (name === undefined) throw new Error('the tar stream holds more entries than were packed');
      this.paths.push(name);
    }
  }

  private take(bytes: Buffer): void {
    this.chunks.push(Buffer.from(bytes));
    this.bytes += bytes.length;
  }

  /** Ends the current member: compressed beside the others, written in order. */
  private async cut(): Promise<void> {
    if (!this.bytes) return;
    const data = Buffer.concat(this.chunks, this.bytes);
    const paths = this.paths;
    this.chunks = [];
    this.bytes = 0;
    this.paths = [];
    this.compressing.push(gzipAsync(data, { level: 9 }).then((gz) => ({ gz, paths })));
    if (this.compressing.length >= COMPRESSING_AT_ONCE) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const { gz, paths } = await this.compressing.shift()!;
    for (let done = 0; done < gz.length;) done += (await this.out.write(gz, done)).bytesWritten;
    this.members.push({ at: this.at, bytes: gz.length, paths });
    this.at += gz.length;
  }

  async end(): Promise<PackMember[]> {
    if (this.bodyLeft > 0 || this.headerFill > 0) throw new Error('the tar stream ended inside an entry');
    if (this.entry !== this.names.length)
      throw new Error(`the tar stream holds ${this.entry} entries, not the ${this.names.length} packed`);
    await this.cut();
    while (this.compressing.length) await this.writeOldest();
    return this.members;
  }
}

/** What went into a tarball: its layout (for the index), and the files and their bytes unpacked. */
export type Packed = PackLayout & { files: number; bytes: number };

/**
 * Pack `dir` into `out` so that the same input always gives the same bytes: a gzip'd tar in
 * members cut at entry boundaries (MemberWriter), without the entries `skip` leaves out (pack-filter.ts).
 * Returns its layout, for the index a host fetches single files by (pack-index.ts), and its counts.
 */
export async function packReproducible(
  dir: string,
  out: string,
  mtimeSec = DEFAULT_MTIME,
  skip?: (rel: string) => boolean,
): Promise<Packed> {
  const tar = await import('tar');
  const entries = await listSorted(dir, skip);
  if (!entries.length)
    throw new ValidationError(
      `${dir} is empty; nothing to publish${skip ? ' (.git and what --exclude names are left out; --include puts them back)' : ''}.`,
    );
  const stats = entries.map((e) => lstatSync(path.join(dir, e)));
  const sizes = stats.map((st) => (st.isFile() ? st.size : 0));
  const tops = entries.flatMap((e, i) => (e.includes('/') ? [] : [i]));
  const root = tops.length === 1 && stats[tops[0]!]!.isDirectory() ? entries[tops[0]!]! : '';
  const pack = tar.c(
    {
      cwd: dir,
      portable: true,
      noDirRecurse: true,
      follow: false,
      // A hard link is a file of its own: the members are cut by each file's size.
      linkCache: new HardLinksAsFiles(),
      mtime: new Date(mtimeSec * 1000),
      onWriteEntry: (entry) => {
        // Owner and umask must not leak into the bytes: 755 for folders and executables, else 644.
        const st = (entry as unknown as { stat: { mode: number } }).stat;
        const isDir = (entry as unknown as { type: string }).type === 'Directory';
        st.mode = (st.mode & ~0o7777) | (isDir || st.mode & 0o111 ? 0o755 : 0o644);
      },
    },
    entries,
  );
  const handle = await open(out, 'w');
  try {
    const writer = new MemberWriter(handle, entries, sizes);
    for await (const chunk of pack as unknown as AsyncIterable<Buffer>) await writer.write(chunk);
    const files = stats.filter((st) => !st.isDirectory()).length;
    return { members: await writer.end(), root, files, bytes: sizes.reduce((sum, n) => sum + n, 0) };
  } finally {
    await handle.close();
  }
}
