// The job journal: an append-only file of job snapshots under DATA/journal/, fsynced before a
// caller is told a write is done. Writes that arrive while a flush is on disk wait for the next
// flush together (group commit), so one fsync covers many deliveries under load. Each line
// carries a checksum: a line torn by a crash is detected on replay and cut off, so a record is
// either whole or absent. Compaction rewrites the live state through temp file + rename.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir, syncDir } from '../core/fs.ts';
import type { JobKind } from './job-id.ts';

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'superseded', 'interrupted'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINISHED_STATES: readonly JobState[] = ['succeeded', 'failed', 'superseded', 'interrupted'];

export interface Job {
  id: string;
  /** Order of arrival; queued jobs run in this order. */
  seq: number;
  repo: string;
  kind: JobKind;
  sha: string | null;
  ref: string | null;
  branch: string | null;
  tag: string | null;
  cloneUrl: string | null;
  deliveryId: string | null;
  forge: string | null;
  state: JobState;
  exit: number | null;
  queued: string;
  started: string | null;
  finished: string | null;
  /** Why it ended the way it did (timeout, superseded by, interrupted, ...). */
  reason: string | null;
  attempts: number;
  interruptions: number;
  /** Process group of the running attempt, to clean up after a crash. */
  pgid: number | null;
  /** The build worker that runs (or ran) its last attempt, with a PostgreSQL `queue:` (DESIGN §8); absent in the local journal. */
  worker?: string;
  // Who and what triggered it (lib/jobs/commit-meta.ts); absent in records written before
  // they were kept, and when the payload had none.
  message?: string;
  author?: string;
  pusher?: string;
  commitUrl?: string;
}

export interface JournalOptions {
  /** Rewrite the file once it grows past this many bytes. */
  compactBytes?: number;
  /** Finished jobs kept by compaction (the newest ones). */
  keepFinished?: number;
  /** Told the ids of finished jobs dropped by compaction (to remove their output). */
  onPrune?: (ids: string[]) => void;
  /** Told of a compaction that failed (the file stays long; appends go on). */
  onCompactError?: (error: Error) => void;
  /** Told how long each flush took to reach the disk (its write and sync), in seconds (GET /metrics). */
  onSync?: (seconds: number) => void;
}

/** How a job ended, for `finish`. */
export interface JobEnd {
  state: 'succeeded' | 'failed';
  exit: number | null;
  reason: string | null;
  /** ISO time; default now. */
  at?: string;
}

/**
 * The journal owns its records: what it hands out is frozen, and it changes a job only through
 * the methods below, each of which resolves once the new record is on disk. A change that could
 * not be written changes nothing (not on disk, not in memory).
 */
export interface Journal {
  file: string;
  /** Every job the journal has on disk, by id, in its latest state. */
  readonly jobs: ReadonlyMap<string, Job>;
  /** Lines that failed their checksum on replay (a torn last line is cut off and counted too). */
  damaged: number;
  /** Highest seq seen; new jobs continue from here. */
  readonly lastSeq: number;
  /** Append whole records (new jobs, or a test's own snapshots). */
  write(jobs: Job[]): Promise<void>;
  /** Record a new queued job, and the queued jobs it supersedes, in one write. */
  add(job: Job, supersedes?: string[]): Promise<Job>;
  /** A queued job starts an attempt. */
  markRunning(id: string, at?: string): Promise<Job>;
  /** The process group of the running attempt (crash cleanup needs it). */
  recordGroup(id: string, pgid: number): Promise<Job>;
  finish(id: string, end: JobEnd): Promise<Job>;
  /**
   * A running attempt was cut short (shutdown, crash, no space to start it): an `interrupted`
   * record, then, with `requeue`, a `queued` one, in one write.
   */
  interrupt(id: string, { reason, requeue, at }: { reason: string; requeue: boolean; at?: string }): Promise<Job>;
  /** A job that could not start (no space for its files) waits in the queue again. */
  requeue(id: string, reason: string): Promise<Job>;
  stats(): { records: number; flushes: number; bytes: number; compactions: number };
  close(): Promise<void>;
}

const DEFAULTS = { compactBytes: 4 << 20, keepFinished: 1000 };

export function journalFile(dataDir: string): string {
  return path.join(dataDir, 'journal', 'jobs.journal');
}

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

export function encodeRecord(job: Job): string {
  const json = JSON.stringify(job);
  return `${checksum(json)} ${json}\n`;
}

/** Parse journal text: the jobs (last record wins), damaged line count, and where the good data ends. */
export function replayJournal(text: string): { jobs: Map<string, Job>; damaged: number; goodBytes: number; records: number } {
  const jobs = new Map<string, Job>();
  let damaged = 0;
  let records = 0;
  let offset = 0;
  let goodBytes = 0;
  while (offset < text.length) {
    const end = text.indexOf('\n', offset);
    if (end === -1) {
      damaged++; // torn last line: the write never completed, so it was never acknowledged
      break;
    }
    const line = text.slice(offset, end);
    offset = end + 1;
    const job = decodeLine(line);
    if (job) {
      jobs.set(job.id, job);
      records++;
    } else if (line.trim() !== '') damaged++;
    goodBytes = Buffer.byteLength(text.slice(0, offset));
  }
  return { jobs, damaged, goodBytes, records };
}

function decodeLine(line: string): Job | undefined {
  const space = line.indexOf(' ');
  if (space !== 8) return undefined;
  const json = line.slice(9);
  if (checksum(json) !== line.slice(0, 8)) return undefined;
  try {
    const job = JSON.parse(json) as Job;
    return job && typeof job.id === 'string' && typeof job.seq === 'number' ? job : undefined;
  } catch {
    return undefined;
  }
}

interface Batch {
  records: Job[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

async function readJournalText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return '';
  }
}

const now = () => new Date().toISOString();

// Under Node the file is opened O_DSYNC: each write returns once its data is on disk, as a write
// followed by fdatasync would, in one trip to the thread pool instead of two (one per group
// commit). Under Deno, whose node:fs is not relied on to pass O_DSYNC on, the flush calls datasync.
const DSYNC = !('Deno' in globalThis);
const APPEND_FLAGS = DSYNC ? constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC : 'a';

/** The journal's file, its jobs and its pending writes; openJournal hands out its methods. */
class JobJournal {
  readonly file: string;
  readonly jobs = new Map<string, Job>();
  readonly damaged: number;
  private readonly options: JournalOptions;
  private readonly compactBytes: number;
  private readonly keepFinished: number;
  private handle: FileHandle;
  /** Where the last whole, synced record ends: a failed write is cut back to here. */
  private bytes: number;
  private tornTail = false;
  private records: number;
  private flushes = 0;
  private compactions = 0;
  /** Highest seq on disk. */
  private seqOnDisk = 0;
  private pending: Batch[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  constructor(file: string, handle: FileHandle, replay: ReturnType<typeof replayJournal>, options: JournalOptions) {
    this.file = file;
    this.handle = handle;
    this.options = options;
    const settings = { ...DEFAULTS, ...options };
    this.compactBytes = settings.compactBytes;
    this.keepFinished = settings.keepFinished;
    for (const job of replay.jobs.values()) this.jobs.set(job.id, Object.freeze(job));
    this.damaged = replay.damaged;
    this.bytes = replay.goodBytes;
    this.records = replay.records;
    for (const job of this.jobs.values()) this.seqOnDisk = Math.max(this.seqOnDisk, job.seq);
  }

  /** Replay the file, cut off a torn tail, and open it for appending. */
  static async open(dataDir: string, options: JournalOptions): Promise<JobJournal> {
    const file = journalFile(dataDir);
    await ensureDir(path.dirname(file), 0o755);
    const text = await readJournalText(file);
    const replay = replayJournal(text);
    if (replay.goodBytes < Buffer.byteLength(text)) await truncate(file, replay.goodBytes);
    const handle = await open(file, APPEND_FLAGS, 0o644);
    await syncDir(path.dirname(file));
    const journal = new JobJournal(file, handle, replay, options);
    // A journal that is mostly superseded records is rewritten at start.
    if (replay.damaged > 0 || journal.records > 2 * journal.jobs.size + 100) await journal.compact();
    return journal;
  }

  get lastSeq(): number {
    return Math.max(this.seqOnDisk, ...this.pending.flatMap((b) => b.records.map((j) => j.seq)));
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      await this.flush(batch);
      // A failed compaction only means the file stays long: appends go on, and it is retried
      // after the next flush. Letting it throw would leave `flushing` set for good (every later
      // write waiting forever) and reject a promise nobody awaits.
      if (this.bytes > this.compactBytes && !this.tornTail) await this.compact().catch((error) => this.options.onCompactError?.(error as Error));
    }
    this.flushing = undefined;
  }

  /** One group commit: the batch's records written and fsynced, then in the map; or all rejected. */
  private async flush(batch: Batch[]): Promise<void> {
    const data = Buffer.from(batch.map((b) => b.records.map(encodeRecord).join('')).join(''));
    try {
      // A write that failed (ENOSPC, EIO) may have left part of a record, or records that
      // were never synced: cut back to the last good record first, or the next record would
      // be glued onto that part and dropped as damaged on replay, although it was acknowledged.
      if (this.tornTail) await this.cutBack();
      const syncStart = performance.now();
      let written = 0;
      while (written < data.length) written += (await this.handle.write(data, written)).bytesWritten;
      if (!DSYNC) await this.handle.datasync();
      this.options.onSync?.((performance.now() - syncStart) / 1000);
      this.bytes += data.length;
      this.records += batch.reduce((n, b) => n + b.records.length, 0);
      this.flushes++;
      for (const b of batch) {
        for (const job of b.records) {
          this.jobs.set(job.id, job);
          this.seqOnDisk = Math.max(this.seqOnDisk, job.seq);
        }
        b.resolve();
      }
    } catch (error) {
      this.tornTail = true;
      await this.cutBack().catch(() => { /* tried again before the next write */ });
      for (const b of batch) b.reject(error);
    }
  }

  private async cutBack(): Promise<void> {
    await this.handle.truncate(this.bytes);
    await this.handle.datasync();
    this.tornTail = false;
  }

  /** Keep every unfinished job and the newest finished ones; rewrite through temp + rename. */
  private async compact(): Promise<void> {
    const all = [...this.jobs.values()].sort((a, b) => a.seq - b.seq);
    const finished = all.filter((j) => FINISHED_STATES.includes(j.state));
    const dropped = finished.slice(0, Math.max(0, finished.length - this.keepFinished));
    // A Set: under a burst of deliveries thousands of superseded jobs go at once.
    const gone = new Set(dropped);
    const kept = all.filter((j) => !gone.has(j));
    const content = kept.map(encodeRecord).join('');
    await atomicWriteFile(this.file, content, { mode: 0o644 });
    for (const job of dropped) this.jobs.delete(job.id);
    await this.handle.close();
    this.handle = await open(this.file, APPEND_FLAGS, 0o644);
    this.bytes = Buffer.byteLength(content);
    this.records = kept.length;
    this.compactions++;
    if (dropped.length) this.options.onPrune?.(dropped.map((j) => j.id));
  }

  /** Append frozen copies; the map takes them once they are on disk. */
  write(list: Job[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal is closed'));
    if (list.length === 0) return Promise.resolve();
    const frozen = list.map((job) => Object.freeze({ ...job }));
    return new Promise((resolve, reject) => {
      this.pending.push({ records: frozen, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  private current(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`job ${id} is not in the journal`);
    return job;
  }

  private async change(id: string, ...steps: Array<Partial<Job>>): Promise<Job> {
    let job = this.current(id);
    const list = steps.map((fields) => (job = { ...job, ...fields }));
    await this.write(list);
    return this.jobs.get(id)!;
  }

  async add(job: Job, supersedes: string[] = []): Promise<Job> {
    const superseded = supersedes.map((id) => ({ ...this.current(id), state: 'superseded' as const, finished: job.queued, reason: `superseded by ${job.id}` }));
    await this.write([...superseded, job]);
    return this.jobs.get(job.id)!;
  }

  markRunning(id: string, at = now()): Promise<Job> {
    const job = this.current(id);
    return this.change(id, { state: 'running', started: at, attempts: job.attempts + 1, pgid: null, finished: null });
  }

  recordGroup(id: string, pgid: number): Promise<Job> {
    return this.change(id, { pgid });
  }

  finish(id: string, { state, exit, reason, at = now() }: JobEnd): Promise<Job> {
    return this.change(id, { state, exit, reason, finished: at, pgid: null });
  }

  interrupt(id: string, { reason, requeue, at = now() }: { reason: string; requeue: boolean; at?: string }): Promise<Job> {
    const interruptions = this.current(id).interruptions + 1;
    const interrupted: Partial<Job> = { state: 'interrupted', interruptions, finished: at, reason, pgid: null };
    return requeue
      ? this.change(id, interrupted, { state: 'queued', started: null, finished: null, reason: `queued again after interruption ${interruptions}` })
      : this.change(id, interrupted);
  }

  requeue(id: string, reason: string): Promise<Job> {
    return this.change(id, { state: 'queued', started: null, finished: null, reason, pgid: null });
  }

  stats(): ReturnType<Journal['stats']> {
    return { records: this.records, flushes: this.flushes, bytes: this.bytes, compactions: this.compactions };
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.handle.close();
  }
}

/**
 * Open (and create) DATA/journal/jobs.journal. What it hands out is a plain object of functions,
 * not the class: callers pass its methods around and take it apart (`{ ...journal, add }` wraps
 * one method in a test), which a class's prototype methods and getter would not survive.
 */
export async function openJournal(dataDir: string, options: JournalOptions = {}): Promise<Journal> {
  const journal = await JobJournal.open(dataDir, options);
  return {
    file: journal.file,
    jobs: journal.jobs,
    damaged: journal.damaged,
    get lastSeq() { return journal.lastSeq; },
    write: (jobs) => journal.write(jobs),
    add: (job, supersedes) => journal.add(job, supersedes),
    markRunning: (id, at) => journal.markRunning(id, at),
    recordGroup: (id, pgid) => journal.recordGroup(id, pgid),
    finish: (id, end) => journal.finish(id, end),
    interrupt: (id, how) => journal.interrupt(id, how),
    requeue: (id, reason) => journal.requeue(id, reason),
    stats: () => journal.stats(),
    close: () => journal.close(),
  };
}
