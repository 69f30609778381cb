// An append-only file of JSON records on disk before their writer is told (the job journal, the
// fleet registry): group commit (one sync per burst), a checksum per line so a torn line is cut on
// replay, and a linear replay.
// The whole story: docs/internals.md.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir, syncDir } from './fs.ts';

export interface AppendLogStats {
  /** Records in the file (superseded ones included). */
  records: number;
  bytes: number;
  flushes: number;
  compactions: number;
}

/** What the log asks of the one who keeps its state in memory. */
export interface AppendLogOwner<T> {
  /** Records now on disk: replayed at open, then each flush's, in order. */
  apply(records: readonly T[]): void;
  /** Should the file be rewritten with the live records (`atOpen`: just replayed)? */
  wantsCompaction(stats: AppendLogStats, atOpen: boolean): boolean;
  /** The live records to rewrite the file with; `done` runs once the rewrite is on disk. */
  live(): { records: T[]; done?: () => void };
}

export interface AppendLogOptions<T> {
  /** The parsed JSON of a line whose checksum holds, or undefined when it is not a record. */
  decode: (value: unknown) => T | undefined;
  mode: number;
  dirMode: number;
  /** Told how long each flush took to reach the disk (its write and sync), in seconds. */
  onSync?: (seconds: number) => void;
  /** Told of a rewrite that failed (the file stays long; appends go on, and it is tried again). */
  onCompactError?: (error: Error) => void;
}

interface Batch<T> {
  records: T[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

// Under Node the file is opened O_DSYNC: each write returns once its data is on disk, as a write
// followed by fdatasync would, in one trip to the thread pool instead of two (one per group
// commit). Under Deno, whose node:fs is not relied on to pass O_DSYNC on, the flush calls datasync.
const DSYNC = !('Deno' in globalThis);
const APPEND_FLAGS = DSYNC ? constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC : 'a';

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** One record as a line of the file: checksum, space, JSON, newline. */
export function encodeLine(record: unknown): string {
  const json = JSON.stringify(record);
  return `${checksum(json)} ${json}\n`;
}

/** The records of a file's text, the lines dropped (checksum or decode failed, or a torn last line) and where the good data ends. */
export function replayLines<T>(
  text: string,
  decode: (value: unknown) => T | undefined,
): { records: T[]; damaged: number; goodBytes: number } {
  const records: T[] = [];
  let damaged = 0;
  let offset = 0;
  let goodBytes = 0;
  while (offset < text.length) {
    const end = text.indexOf('\n', offset);
    if (end === -1) {
      damaged++; // torn last line: its write never completed, so it was never acknowledged
      break;
    }
    const line = text.slice(offset, end);
    offset = end + 1;
    const record = decodeLine(line, decode);
    if (record !== undefined) records.push(record);
    else if (line.trim() !== '') damaged++;
    // Counted line by line: measuring the text up to here each time made replay quadratic (F12).
    goodBytes += Buffer.byteLength(line) + 1;
  }
  return { records, damaged, goodBytes };
}

function decodeLine<T>(line: string, decode: (value: unknown) => T | undefined): T | undefined {
  if (line.indexOf(' ') !== 8) return undefined;
  const json = line.slice(9);
  if (checksum(json) !== line.slice(0, 8)) return undefined;
  try {
    return decode(JSON.parse(json));
  } catch {
    return undefined;
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return '';
  }
}

export class AppendLog<T> {
  readonly file: string;
  /** Lines dropped on replay. */
  readonly damaged: number;
  private handle: FileHandle;
  private readonly owner: AppendLogOwner<T>;
  private readonly options: AppendLogOptions<T>;
  /** Where the last whole, synced record ends: a failed write is cut back to here. */
  private bytes: number;
  private records: number;
  private flushes = 0;
  private compactions = 0;
  private tornTail = false;
  private pending: Array<Batch<T>> = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    file: string,
    handle: FileHandle,
    owner: AppendLogOwner<T>,
    options: AppendLogOptions<T>,
    replay: ReturnType<typeof replayLines<T>>,
  ) {
    this.file = file;
    this.handle = handle;
    this.owner = owner;
    this.options = options;
    this.damaged = replay.damaged;
    this.bytes = replay.goodBytes;
    this.records = replay.records.length;
  }

  /** Replay the file into `owner` (cutting off a torn tail), open it for appending, and rewrite it if it holds damage or the owner asks. */
  static async open<T>(file: string, owner: AppendLogOwner<T>, options: AppendLogOptions<T>): Promise<AppendLog<T>> {
    await ensureDir(path.dirname(file), options.dirMode);
    const text = await readText(file);
    const replay = replayLines(text, options.decode);
    if (replay.goodBytes < Buffer.byteLength(text)) await truncate(file, replay.goodBytes);
    const handle = await open(file, APPEND_FLAGS, options.mode);
    await syncDir(path.dirname(file));
    const log = new AppendLog(file, handle, owner, options, replay);
    owner.apply(replay.records);
    if (replay.damaged > 0 || owner.wantsCompaction(log.stats(), true)) await log.compact();
    return log;
  }

  /** Resolves once every record is on disk and applied; rejects (nothing applied) when the write failed. */
  append(records: T[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${path.basename(this.file)} is closed`));
    if (records.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.pending.push({ records, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  /** Records handed to `append` and not yet on disk. */
  pendingRecords(): T[] {
    return this.pending.flatMap((b) => b.records);
  }

  stats(): AppendLogStats {
    return { records: this.records, bytes: this.bytes, flushes: this.flushes, compactions: this.compactions };
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.handle.close();
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      await this.flush(batch);
      // A failed rewrite only means the file stays long: appends go on, and it is tried again
      // after the next flush. Letting it throw would leave `flushing` set for good (every later
      // write waiting forever) and reject a promise nobody awaits.
      if (!this.tornTail && this.owner.wantsCompaction(this.stats(), false))
        await this.compact().catch((error) => this.options.onCompactError?.(error as Error));
    }
    this.flushing = undefined;
  }

  /** One group commit: the batch's records written and synced, then applied; or all rejected. */
  private async flush(batch: Array<Batch<T>>): Promise<void> {
    const data = Buffer.from(batch.map((b) => b.records.map(encodeLine).join('')).join(''));
    try {
      // A write that failed (ENOSPC, EIO) may have left part of a record, or records that were
      // never synced: cut back to the last good record first, or the next record would be glued
      // onto that part and dropped as damaged on replay, although it was acknowledged.
      if (this.tornTail) await this.cutBack();
      const started = performance.now();
      let written = 0;
      while (written < data.length) written += (await this.handle.write(data, written)).bytesWritten;
      if (!DSYNC) await this.handle.datasync();
      this.options.onSync?.((performance.now() - started) / 1000);
      this.bytes += data.length;
      this.flushes++;
      for (const b of batch) {
        this.owner.apply(b.records);
        this.records += b.records.length;
        b.resolve();
      }
    } catch (error) {
      this.tornTail = true;
      await this.cutBack().catch(() => {
        /* tried again before the next write */
      });
      for (const b of batch) b.reject(error);
    }
  }

  private async cutBack(): Promise<void> {
    await this.handle.truncate(this.bytes);
    await this.handle.datasync();
    this.tornTail = false;
  }

  /** The owner's live records alone, through temp file + rename. */
  private async compact(): Promise<void> {
    const live = this.owner.live();
    const content = live.records.map(encodeLine).join('');
    await atomicWriteFile(this.file, content, { mode: this.options.mode });
    await this.handle.close();
    this.handle = await open(this.file, APPEND_FLAGS, this.options.mode);
    this.bytes = Buffer.byteLength(content);
    this.records = live.records.length;
    this.compactions++;
    live.done?.();
  }
}
