// The downloads stage (docs/downloads.md): fetch every manifest entry into downloads/DEST,
// in parallel, through a temp file + rename, remembering what was fetched in
// downloads/.downloads.json so unchanged entries cost nothing (or one conditional request with
// --refresh). The HTTP side of one file (retries, timeouts, redirects) is lib/stages/download-fetch.ts.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RemoteError, ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import { atomicWriteFile, sha256File } from '../core/fs.ts';
import { fetchToFile, type FetchOptions } from './download-fetch.ts';
import { acquireLock } from '../core/lock.ts';
import { formatBytes, type Logger } from '../core/log.ts';
import { checkEntries, parseCloudinary, parseManifest, type ManifestEntry } from './manifest.ts';
import { redactUrls } from '../core/redact.ts';
import { resolveInside } from '../core/names.ts';

/** The part of lib/core/log.ts's Logger this module uses. */
export type StageLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/** A stream the progress line is drawn on (only when it is a TTY). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Retries, timeouts, redirects and the fetch function are lib/stages/download-fetch.ts's FetchOptions. */
export interface DownloadOptions extends FetchOptions {
  /** The downloads folder; every DEST lands inside it. */
  dir: string;
  entries: ManifestEntry[];
  log: StageLog;
  /** Revalidate unchanged entries with conditional requests. */
  refresh?: boolean;
  concurrency?: number;
  progress?: ProgressStream;
  now?: () => Date;
}

export type FileStatus = 'fetched' | 'unchanged' | 'failed';

export interface FileResult {
  dest: string;
  url: string;
  status: FileStatus;
  bytes?: number;
  /** Where the previous file went when the tag changed (relative to the downloads folder). */
  movedTo?: string;
  error?: string;
}

export interface DownloadsSummary {
  fetched: number;
  unchanged: number;
  failed: number;
  files: FileResult[];
}

export interface RecordEntry {
  url: string;
  tag: string;
  size: number;
  sha256: string;
  etag?: string;
  lastModified?: string;
  fetchedAt: string;
}

export interface DownloadsRecord {
  version: 1;
  files: Record<string, RecordEntry>;
}

const RECORD_FILE = '.downloads.json';
const LOCK_FILE = '.downloads.lock';
const PARTIAL_DIR = '.downloads.partial';

/**
 * Fetch every entry and return what happened to each. Failures are reported per file (the
 * others are still saved); only a problem with the downloads folder itself throws.
 */
export async function downloadAll(options: DownloadOptions): Promise<DownloadsSummary> {
  const dir = path.resolve(options.dir);
  const entries = checkEntries(options.entries);
  await fs.mkdir(dir, { recursive: true });
  const lock = await acquireLock(path.join(dir, LOCK_FILE));
  try {
    const partial = path.join(dir, PARTIAL_DIR);
    await fs.rm(partial, { recursive: true, force: true });
    await fs.mkdir(partial);
    const record = await loadRecord(dir, options.log);
    const saver = recordSaver(dir, record, options.log);
    const progress = createProgress(options.progress, entries.length);
    const folders = new Set<string>([dir]);
    let results: FileResult[];
    try {
      // downloadEntry reports a failed entry in its result; it does not throw.
      results = await mapLimit(entries, options.concurrency ?? 4, async (entry) => {
        progress.start();
        const result = await downloadEntry(entry, dir, partial, record, folders, options);
        progress.done(result);
        saver.maybeSave();
        return result;
      });
    } finally {
      progress.clear();
      await saver.save();
      await fs.rm(partial, { recursive: true, force: true });
    }
    return summarise(results);
  } finally {
    await lock.release();
  }
}

function summarise(files: FileResult[]): DownloadsSummary {
  const count = (status: FileStatus) => files.filter((f) => f.status === status).length;
  return { fetched: count('fetched'), unchanged: count('unchanged'), failed: count('failed'), files };
}

async function downloadEntry(
  entry: ManifestEntry,
  dir: string,
  partial: string,
  record: DownloadsRecord,
  folders: Set<string>,
  options: DownloadOptions,
): Promise<FileResult> {
  const { log } = options;
  const base = { dest: entry.dest, url: redactUrls(entry.url) };
  let temp: string | undefined;
  try {
    const target = resolveInside(dir, entry.dest, 'destination');
    await refuseSymlinkedFolders(dir, entry.dest, folders);
    const previous = record.files[entry.dest];
    const onDisk = await statFile(target);
    const sameSource = previous !== undefined && previous.url === entry.url && previous.tag === entry.tag;
    const intact = sameSource && onDisk !== undefined && onDisk.size === previous.size;
    if (intact && !options.refresh) return { ...base, status: 'unchanged' };

    const conditional: Record<string, string> = {};
    if (intact && (await sha256File(target)) === previous.sha256) {
      if (previous.etag) conditional['if-none-match'] = previous.etag;
      if (previous.lastModified) conditional['if-modified-since'] = previous.lastModified;
    }
    temp = path.join(partial, `${randomBytes(8).toString('hex')}.part`);
    const got = await fetchToFile(entry.url, conditional, temp, options);
    const now = (options.now ?? (() => new Date()))().toISOString();
    if (got.notModified) {
      if (!intact) throw new RemoteError(`The server answered 304 Not Modified to a request that was not conditional.`);
      return { ...base, status: 'unchanged' };
    }
    const fresh: RecordEntry = {
      url: entry.url,
      tag: entry.tag,
      size: got.size,
      sha256: got.sha256,
      ...(got.etag ? { etag: got.etag } : {}),
      ...(got.lastModified ? { lastModified: got.lastModified } : {}),
      fetchedAt: now,
    };
    if (intact && got.sha256 === previous.sha256) {
      await fs.rm(temp, { force: true });
      record.files[entry.dest] = { ...fresh, fetchedAt: previous.fetchedAt };
      return { ...base, status: 'unchanged' };
    }
    if (onDisk?.isDirectory)
      throw new WorkError(`${entry.dest} is a folder on disk; remove it or choose another destination.`);
    let movedTo: string | undefined;
    if (previous && onDisk && previous.tag !== entry.tag)
      movedTo = await moveToOld(dir, entry.dest, previous.tag, folders);
    if (!folders.has(path.dirname(target))) {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await refuseSymlinkedFolders(dir, entry.dest, folders);
    }
    await fs.rename(temp, target);
    temp = undefined;
    record.files[entry.dest] = fresh;
    if (movedTo)
      log.info(
        `${entry.dest}: tag changed (${previous?.tag || 'none'} → ${entry.tag || 'none'}); previous file kept as ${movedTo}`,
      );
    log.debug(`fetched ${entry.dest}`, { bytes: got.size });
    return { ...base, status: 'fetched', bytes: got.size, ...(movedTo ? { movedTo } : {}) };
  } catch (error) {
    if (temp) await fs.rm(temp, { force: true }).catch(() => {});
    const message = messageOf(error);
    log.error(`${entry.where}: ${entry.dest}: ${message}`, { url: base.url });
    return { ...base, status: 'failed', error: message };
  }
}

// A symlinked folder inside downloads/ (say, committed by a repo) would carry writes outside it.
// Folders found to be real are remembered for the run (thousands of entries share a few).
async function refuseSymlinkedFolders(dir: string, dest: string, realFolders: Set<string>): Promise<void> {
  const parts = dest.split('/');
  let current = dir;
  for (const part of parts.slice(0, -1)) {
    current = path.join(current, part);
    if (realFolders.has(current)) continue;
    const st = await fs.lstat(current).catch(() => undefined);
    if (!st) break;
    if (st.isSymbolicLink())
      throw new ValidationError(
        `${path.relative(dir, current)} is a symbolic link inside the downloads folder; remove it (downloads never write through links).`,
      );
    if (st.isDirectory()) realFolders.add(current);
  }
}

async function statFile(file: string): Promise<{ size: number; isDirectory: boolean } | undefined> {
  const st = await fs.lstat(file).catch(() => undefined);
  if (st?.isSymbolicLink())
    throw new ValidationError(
      `${path.basename(file)} is a symbolic link; remove it (downloads never write through links).`,
    );
  return st ? { size: st.size, isDirectory: st.isDirectory() } : undefined;
}

/** `img/logo.png` with tag `2` → `old/img/logo@2.png` (a free name: `logo@2-2.png` if taken). */
export function oldName(dest: string, tag: string): string {
  const dirname = path.posix.dirname(dest);
  const name = path.posix.basename(dest);
  const dot = name.indexOf('.', 1);
  const stem = dot === -1 ? name : name.slice(0, dot);
  const ext = dot === -1 ? '' : name.slice(dot);
  const safeTag = tag.replace(/[^A-Za-z0-9._-]/g, '_') || 'untagged';
  return path.posix.join('old', dirname === '.' ? '' : dirname, `${stem}@${safeTag}${ext}`);
}

async function moveToOld(dir: string, dest: string, tag: string, folders: Set<string>): Promise<string> {
  const wanted = oldName(dest, tag);
  // old/ is checked like any destination: a link there would carry the file out of downloads/.
  await refuseSymlinkedFolders(dir, wanted, folders);
  let name = wanted;
  for (let n = 2; await statFile(path.join(dir, name)); n++) {
    const ext = path.posix.extname(wanted);
    name = `${wanted.slice(0, wanted.length - ext.length)}-${n}${ext}`;
  }
  const target = path.join(dir, name);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await refuseSymlinkedFolders(dir, name, folders);
  await fs.rename(path.join(dir, dest), target);
  return name;
}

async function loadRecord(dir: string, log?: StageLog): Promise<DownloadsRecord> {
  const file = path.join(dir, RECORD_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return { version: 1, files: {} };
  }
  try {
    const data = JSON.parse(text) as DownloadsRecord;
    if (data && typeof data.files === 'object' && data.files !== null) return { version: 1, files: data.files };
  } catch {
    /* fall through */
  }
  log?.warn(`${file} is not a valid record; every entry will be fetched again.`);
  return { version: 1, files: {} };
}

// The record is saved at the end and every few seconds on the way, so a killed run keeps most
// of what it learned. Saves are chained so two never overlap; each starts once the one before
// has settled, failed or not (its caller was told), so one failed save does not stop the rest.
export function recordSaver(dir: string, record: DownloadsRecord, log?: StageLog) {
  let chain: Promise<void> = Promise.resolve();
  let last = Date.now();
  const save = () => {
    last = Date.now();
    const next = chain
      .catch(() => undefined)
      .then(() => atomicWriteFile(path.join(dir, RECORD_FILE), `${JSON.stringify(sortRecord(record), null, 1)}\n`));
    chain = next;
    return next;
  };
  return {
    save,
    maybeSave: () => {
      if (Date.now() - last > 5000)
        save().catch((error) =>
          log?.warn(`could not save ${RECORD_FILE} on the way (${messageOf(error)}); it is saved again at the end`),
        );
    },
  };
}

function sortRecord(record: DownloadsRecord): DownloadsRecord {
  const files: Record<string, RecordEntry> = {};
  for (const key of Object.keys(record.files).sort()) files[key] = record.files[key];
  return { version: 1, files };
}

function createProgress(stream: ProgressStream | undefined, total: number) {
  const tty = stream?.isTTY ? stream : undefined;
  let active = 0,
    done = 0,
    failed = 0,
    bytes = 0,
    lastDraw = 0;
  const draw = (force = false) => {
    if (!tty || (!force && Date.now() - lastDraw < 100)) return;
    lastDraw = Date.now();
    tty.write(
      `\r\x1b[Kdownloads: ${done}/${total} done, ${active} active${failed ? `, ${failed} failed` : ''}, ${formatBytes(bytes)}`,
    );
  };
  return {
    start() {
      active++;
      draw();
    },
    done(result: FileResult) {
      active--;
      done++;
      if (result.status === 'failed') failed++;
      bytes += result.bytes ?? 0;
      draw(done === total);
    },
    clear() {
      if (tty && lastDraw) tty.write('\r\x1b[K');
    },
  };
}

export interface ManifestSources {
  /** manifest.txt path; ignored when `manifestText` is given. */
  manifestFile?: string;
  /** The manifest itself (for `--manifest -`). */
  manifestText?: string;
  manifestSource?: string;
  cloudinaryFile?: string;
}

/** Read and parse manifest.txt and cloudinary.txt (each optional); undefined when neither exists. */
export async function loadEntries(sources: ManifestSources): Promise<ManifestEntry[] | undefined> {
  const entries: ManifestEntry[] = [];
  let found = false;
  const manifestText =
    sources.manifestText ?? (sources.manifestFile ? await readIfExists(sources.manifestFile) : undefined);
  if (manifestText !== undefined) {
    found = true;
    entries.push(
      ...parseManifest(manifestText, {
        source: sources.manifestSource ?? (sources.manifestFile ? path.basename(sources.manifestFile) : 'stdin'),
      }),
    );
  }
  const cloudinaryText = sources.cloudinaryFile ? await readIfExists(sources.cloudinaryFile) : undefined;
  if (cloudinaryText !== undefined) {
    found = true;
    entries.push(...parseCloudinary(cloudinaryText, { source: path.basename(sources.cloudinaryFile!) }));
  }
  return found ? checkEntries(entries) : undefined;
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WorkError(`Could not read ${file}: ${messageOf(error)}`, { cause: error });
  }
}

/**
 * The build pipeline's `downloads` step: WORKDIR/manifest.txt and WORKDIR/cloudinary.txt (each
 * optional) into WORKDIR/downloads/. Returns the counts; the caller decides what a failure means.
 */
export async function runDownloadsStage(opts: {
  workDir: string;
  log: StageLog;
  refresh?: boolean;
  concurrency?: number;
  progress?: ProgressStream;
}): Promise<{ fetched: number; unchanged: number; failed: number; skipped?: string }> {
  const entries = await loadEntries({
    manifestFile: path.join(opts.workDir, 'manifest.txt'),
    cloudinaryFile: path.join(opts.workDir, 'cloudinary.txt'),
  });
  if (!entries) {
    opts.log.info('downloads: no manifest.txt or cloudinary.txt; nothing to fetch');
    return { fetched: 0, unchanged: 0, failed: 0, skipped: 'no manifest.txt or cloudinary.txt' };
  }
  const dir = path.join(opts.workDir, 'downloads');
  const st = await fs.lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory())
    throw new ValidationError(
      `${dir} is not a folder (a symbolic link or file in the repo?); remove it so downloads can create it.`,
    );
  const summary = await downloadAll({
    dir,
    entries,
    log: opts.log,
    refresh: opts.refresh,
    concurrency: opts.concurrency,
    progress: opts.progress,
  });
  opts.log.info(`downloads: ${summary.fetched} fetched, ${summary.unchanged} unchanged, ${summary.failed} failed`);
  return { fetched: summary.fetched, unchanged: summary.unchanged, failed: summary.failed };
}
