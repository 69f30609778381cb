// Strict extraction of a verified release tarball into a private folder. Anything unusual is
// an error for the whole release, not a skipped entry: paths leaving the folder, absolute
// paths, links pointing out, device files, FIFOs, setuid bits, owners, and archives that
// inflate far beyond their compressed size (decompression bombs).
import { chmod, lstat, mkdir, open, readdir, readlink, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';
import { VerificationError, messageOf } from '../../core/errors.ts';
import { READ_STEP } from '../../core/read-buffer.ts';
import { gcNudger } from '../../core/v8-flags.ts';
import type { UnpackSync } from 'tar';

export interface ExtractLimits {
  /** Largest total of unpacked bytes. */
  maxUnpackedBytes: number;
  /** Largest unpacked/compressed ratio, checked once `ratioGraceBytes` have been unpacked. */
  maxRatio: number;
  ratioGraceBytes: number;
  maxEntries: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = {
  maxUnpackedBytes: 8 * 1024 ** 3,
  maxRatio: 200,
  ratioGraceBytes: 32 * 1024 ** 2,
  maxEntries: 200_000,
};

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);
const IGNORED_TYPES = new Set([
  'GlobalExtendedHeader',
  'ExtendedHeader',
  'NextFileHasLongPath',
  'NextFileHasLongLinkpath',
  'OldGnuLongPath',
]);

/** Why an entry may not be extracted under the root, or undefined. Pure, for tests. */
export function entryProblem(entry: { path: string; type: string; linkpath?: string }): string | undefined {
  const p = entry.path;
  if (!ALLOWED_TYPES.has(entry.type))
    return `${JSON.stringify(p)} is a ${entry.type} entry; only files, folders and links inside the release are allowed`;
  if (p.includes('\0')) return `${JSON.stringify(p)} contains a NUL byte`;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p) || p.startsWith('\\'))
    return `${JSON.stringify(p)} is an absolute path`;
  const parts = p.split(/[\\/]/);
  if (parts.includes('..')) return `${JSON.stringify(p)} contains ".."`;
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const target = entry.linkpath ?? '';
    if (target === '' || target.includes('\0')) return `${JSON.stringify(p)} is a link without a valid target`;
    if (path.posix.isAbsolute(target) || /^[A-Za-z]:/.test(target))
      return `${JSON.stringify(p)} links to the absolute path ${JSON.stringify(target)}`;
    // Symlink targets are relative to the link's folder, hard link targets to the root.
    const base = entry.type === 'SymbolicLink' ? path.posix.dirname(p.replace(/\\/g, '/')) : '.';
    const resolved = path.posix.normalize(path.posix.join(base, target.replace(/\\/g, '/')));
    if (resolved === '..' || resolved.startsWith('../'))
      return `${JSON.stringify(p)} links to ${JSON.stringify(target)}, outside the release`;
    if (entry.type === 'Link' && target.split(/[\\/]/).includes('..'))
      return `${JSON.stringify(p)} hard-links through ".."`;
  }
  return undefined;
}

/**
 * Extract `tarball` (gzip) into `workDir/root`, then return the release's root: `root` itself,
 * or its one top-level folder when the archive holds nothing else (which is then stripped).
 * On any problem the whole work folder is removed and VerificationError is thrown.
 */
export async function extractRelease(
  tarball: string,
  workDir: string,
  limits: ExtractLimits = DEFAULT_EXTRACT_LIMITS,
): Promise<string> {
  const tar = await import('tar');
  const root = path.join(workDir, 'root');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(root, { recursive: true, mode: 0o700 });
  try {
    await unpackStrict(tar, tarball, root, limits);
    const top = await readdir(root);
    let releaseRoot = root;
    if (top.length === 1 && (await lstat(path.join(root, top[0]))).isDirectory()) releaseRoot = path.join(root, top[0]);
    await checkTree(releaseRoot, releaseRoot);
    // The work folder is 0700 while the archive is unpacked; the release itself is readable (not
    // writable) by the app's user when that is another one (app.user), like its files.
    await chmod(releaseRoot, 0o755);
    return releaseRoot;
  } catch (error) {
    await rm(workDir, { recursive: true, force: true });
    if (error instanceof VerificationError) throw error;
    throw new VerificationError(
      `The release archive could not be unpacked: ${messageOf(error)}. Nothing was installed.`,
      { cause: error },
    );
  }
}

/**
 * node-tar's filter for a release: an entry past `limits.maxEntries` or one entryProblem refuses
 * is skipped and `refuse` told why; the others lose setuid, setgid and sticky bits and others'
 * write bit.
 */
function strictFilter(limits: ExtractLimits, refuse: (why: string) => void) {
  let entries = 0;
  return (_p: string, entry: unknown): boolean => {
    const e = entry as { path: string; type: string; linkpath?: string; mode?: number; size?: number };
    if (IGNORED_TYPES.has(e.type)) return true;
    entries++;
    const why =
      entries > limits.maxEntries ? `the archive holds more than ${limits.maxEntries} entries` : entryProblem(e);
    if (why) {
      refuse(why);
      return false;
    }
    if (typeof e.mode === 'number') e.mode &= 0o755;
    return true;
  };
}

/** One unpack as its streams' handlers share it: the first problem found, bytes in and out, and whether it stopped. */
interface UnpackRun {
  problem: string | undefined;
  compressed: number;
  unpacked: number;
  stopped: boolean;
}

type Finish = (error?: unknown) => void;

async function unpackStrict(
  tar: typeof import('tar'),
  tarball: string,
  root: string,
  limits: ExtractLimits,
): Promise<void> {
  const run: UnpackRun = { problem: undefined, compressed: 0, unpacked: 0, stopped: false };
  const input = await open(tarball, 'r');
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  // node-tar's sync unpacker, fed chunk by chunk: each entry's mkdir, open, write, utimes and close
  // as sync calls, where the async one sent each through libuv's threads (a round trip each): on
  // 2 cores, 2,805 small files unpacked in 1.9 s instead of 3.5 s (GNU tar: 2.1 s). The event
  // loop waits for one 256 kB chunk's entries at a time.
  const unpack = new tar.UnpackSync({
    cwd: root,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    noMtime: false,
    unlink: false,
    filter: strictFilter(limits, (why) => (run.problem ??= why)),
  });
  await new Promise<void>((resolve, reject) => {
    const finish = finisherOf(run, resolve, reject);
    watchUnpack(unpack, run, root, finish);
    pipeGunzip(gunzip, unpack, run, limits, finish);
    feedGunzip(
      input,
      gunzip,
      () => run.stopped,
      (bytes) => (run.compressed += bytes),
    ).then(
      () => {
        if (!run.stopped) gunzip.end();
      },
      (error) => {
        run.stopped = true;
        gunzip.destroy();
        finish(error);
      },
    );
  }).finally(() => input.close());
}

/** Settles the unpack once: refused with the first problem found, else failed with `error`, else done. */
function finisherOf(run: UnpackRun, resolve: () => void, reject: (error: unknown) => void): Finish {
  let finished = false;
  return (error) => {
    if (finished) return;
    finished = true;
    run.stopped = true;
    if (run.problem)
      reject(new VerificationError(`Refusing the release archive: ${run.problem}. Nothing was installed.`));
    else if (error) reject(error);
    else resolve();
  };
}

/** node-tar's side: a warning is a problem for the whole release; its error or close ends the unpack. */
function watchUnpack(unpack: UnpackSync, run: UnpackRun, root: string, finish: Finish): void {
  unpack.on('warn', (code: string, message: string | Error) => {
    if (code === 'TAR_ENTRY_INFO') return;
    run.problem ??= `${code}: ${typeof message === 'string' ? message : message.message}`;
  });
  unpack.on('error', (error: Error & { code?: string; symlink?: string; entry?: { path?: string } }) => {
    // node-tar refuses a link whose target, read as text, passes an existing symlink.
    if (error.code === 'TAR_SYMLINK_ERROR' && error.entry?.path) {
      run.problem ??= `${JSON.stringify(error.entry.path)} links through the symlink ${JSON.stringify(path.relative(root, error.symlink ?? ''))}`;
    }
    finish(error);
  });
  unpack.on('close', () => finish());
}

/**
 * gunzip's output into node-tar, its pace kept, each chunk counted against the limits on unpacked
 * bytes and on the inflation ratio (a decompression bomb stops it).
 */
function pipeGunzip(gunzip: Gunzip, unpack: UnpackSync, run: UnpackRun, limits: ExtractLimits, finish: Finish): void {
  const fail = (why: string) => {
    run.problem ??= why;
    run.stopped = true;
    gunzip.destroy();
  };
  gunzip.on('error', (error) =>
    finish(
      run.problem
        ? undefined
        : new VerificationError(`The release archive is not valid gzip: ${error.message}. Nothing was installed.`),
    ),
  );
  const nudge = gcNudger();
  gunzip.on('data', (chunk: Buffer) => {
    run.unpacked += chunk.length;
    nudge(chunk.length);
    const { unpacked, compressed } = run;
    if (unpacked > limits.maxUnpackedBytes) return fail(`it unpacks to more than ${limits.maxUnpackedBytes} bytes`);
    if (unpacked > limits.ratioGraceBytes && unpacked / Math.max(compressed, 1) > limits.maxRatio) {
      return fail(`it inflates more than ${limits.maxRatio} times its compressed size (a decompression bomb?)`);
    }
    if (!unpack.write(chunk)) {
      gunzip.pause();
      unpack.once('drain', () => gunzip.resume());
    }
  });
  gunzip.on('end', () => unpack.end());
  gunzip.on('close', () => {
    if (run.problem) finish();
  });
}

/**
 * The file `input` into `gunzip` through two buffers, one read into while gunzip takes the other
 * (`took` is told each read's size): a read stream leaves a new buffer behind for every read,
 * which the collector finds late, and the full update of a 200 MB app peaked 15–25 MB higher for
 * it (docs/internals.md). Ends at the file's end or once `stopped()`; gunzip is not ended here.
 */
async function feedGunzip(
  input: FileHandle,
  gunzip: Gunzip,
  stopped: () => boolean,
  took: (bytes: number) => void,
): Promise<void> {
  const buffers = [Buffer.allocUnsafeSlow(READ_STEP), Buffer.allocUnsafeSlow(READ_STEP)];
  let taken: Promise<void> | undefined;
  for (let i = 0; !stopped(); i ^= 1) {
    const { bytesRead } = await input.read(buffers[i]!, 0, READ_STEP, null);
    // The other buffer is gunzip's until it has taken all of it in.
    await taken;
    if (bytesRead === 0 || stopped()) return;
    took(bytesRead);
    taken = new Promise((resolve) => gunzip.write(buffers[i]!.subarray(0, bytesRead), () => resolve()));
  }
}

/** Most links one path may pass through; the kernel's own limit (Linux MAXSYMLINKS) is 40. */
export const MAX_LINK_HOPS = 40;

/**
 * Why the symlink `link` (inside `root`) may not stay, or undefined. It is followed the way the
 * kernel will follow it, one component at a time with lstat: a link met on the way is replaced
 * by its target, so `l/..` climbs from where `l` points, not from where its text suggests.
 * Every step must stay inside `root` (a path that leaves and comes back is refused too: the
 * folder is renamed after this check), and at most MAX_LINK_HOPS links may be passed (loops).
 */
export async function linkProblem(root: string, link: string): Promise<string | undefined> {
  const at = path
    .relative(root, path.dirname(link))
    .split(path.sep)
    .filter((p) => p !== '');
  let todo = (await readlink(link)).split('/');
  if (todo[0] === '') return 'links to an absolute path';
  let hops = 1;
  let via: string | undefined;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!at.length)
        return via ? `links outside the release (through ${JSON.stringify(via)})` : 'links outside the release';
      at.pop();
      continue;
    }
    at.push(part);
    const here = path.join(root, ...at);
    let isLink: boolean;
    try {
      isLink = (await lstat(here)).isSymbolicLink();
    } catch (error) {
      // Not there (yet): nothing on disk redirects this step, so it is taken as written.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw error;
    }
    if (!isLink) continue;
    if (++hops > MAX_LINK_HOPS) return `is a symlink loop or a chain of more than ${MAX_LINK_HOPS} links`;
    via = at.join('/');
    const target = await readlink(here);
    if (target.startsWith('/')) return `links through ${JSON.stringify(via)} to an absolute path`;
    at.pop();
    todo = [...target.split('/'), ...todo];
  }
  return undefined;
}

/** After extraction (and stripping), every symlink must resolve inside the release on disk. */
export async function checkTree(dir: string, releaseRoot: string): Promise<void> {
  // Sorted, so the entry named in an error is the same on every file system. The types come with
  // the listing (node lstats an entry only where the file system does not give its type).
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    const shown = JSON.stringify(path.relative(releaseRoot, full));
    if (entry.isSymbolicLink()) {
      const why = await linkProblem(releaseRoot, full);
      if (why) throw new VerificationError(`Refusing the release archive: ${shown} ${why}. Nothing was installed.`);
    } else if (entry.isDirectory()) {
      await checkTree(full, releaseRoot);
    } else if (!entry.isFile()) {
      throw new VerificationError(
        `Refusing the release archive: ${shown} is not a regular file. Nothing was installed.`,
      );
    }
  }
}
