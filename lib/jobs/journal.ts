// The job journal: an append-only file of job snapshots under DATA/journal/, fsynced before a
// caller is told a write is done. Writes that arrive while a flush is on disk wait for the next
// flush together (group commit), so one fsync covers many deliveries under load. Each line
// carries a checksum: a line torn by a crash is detected on replay and cut off, so a record is
// either whole or absent. Compaction rewrites the live state through temp file + rename.
import { createHash } from 'node:crypto';
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
  /** Told how long each flush's fsync took, in seconds (GET /metrics). */
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

export async function openJournal(dataDir: string, options: JournalOptions = {}): Promise<Journal> {
  const { compactBytes, keepFinished } = { ...DEFAULTS, ...options };
  const file = journalFile(dataDir);
  await ensureDir(path.dirname(file), 0o755);
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const replay = replayJournal(text);
  const jobs = new Map<string, Job>();
  for (const job of replay.jobs.values()) jobs.set(job.id, Object.freeze(job));
  if (replay.goodBytes < Buffer.byteLength(text)) await truncate(file, replay.goodBytes);
  let handle: FileHandle = await open(file, 'a', 0o644);
  await syncDir(path.dirname(file));
  /** Where the last whole, synced record ends: a failed write is cut back to here. */
  let bytes = replay.goodBytes;
  let tornTail = false;
  let records = replay.records;
  let flushes = 0;
  let compactions = 0;
  let lastSeq = 0;
  for (const job of jobs.values()) lastSeq = Math.max(lastSeq, job.seq);

  let pending: Array<{ records: Job[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  let flushing: Promise<void> | undefined;
  let closed = false;

  async function flushLoop(): Promise<void> {
    while (pending.length) {
      const batch = pending;
      pending = [];
      const data = Buffer.from(batch.map((b) => b.records.map(encodeRecord).join('')).join(''));
      try {
        // A write that failed (ENOSPC, EIO) may have left part of a record, or records that
        // were never synced: cut back to the last good record first, or the next record would
        // be glued onto that part and dropped as damaged on replay, although it was acknowledged.
        if (tornTail) await cutBack();
        let written = 0;
        while (written < data.length) written += (await handle.write(data, written)).bytesWritten;
        const syncStart = performance.now();
        await handle.datasync();
        options.onSync?.((performance.now() - syncStart) / 1000);
        bytes += data.length;
        records += batch.reduce((n, b) => n + b.records.length, 0);
        flushes++;
        for (const b of batch) {
          for (const job of b.records) {
            jobs.set(job.id, job);
            lastSeq = Math.max(lastSeq, job.seq);
          }
          b.resolve();
        }
      } catch (error) {
        tornTail = true;
        await cutBack().catch(() => { /* tried again before the next write */ });
        for (const b of batch) b.reject(error);
      }
      // A failed compaction only means the file stays long: appends go on, and it is retried
      // after the next flush. Letting it throw would leave `flushing` set for good (every later
      // write waiting forever) and reject a promise nobody awaits.
      if (bytes > compactBytes && !tornTail) await compact().catch((error) => options.onCompactError?.(error as Error));
    }
    flushing = undefined;
  }

  async function cutBack(): Promise<void> {
    await handle.truncate(bytes);
    await handle.datasync();
    tornTail = false;
  }

  /** Keep every unfinished job and the newest finished ones; rewrite through temp + rename. */
  async function compact(): Promise<void> {
    const all = [...jobs.values()].sort((a, b) => a.seq - b.seq);
    const finished = all.filter((j) => FINISHED_STATES.includes(j.state));
    const dropped = finished.slice(0, Math.max(0, finished.length - keepFinished));
    const kept = all.filter((j) => !dropped.includes(j));
    const content = kept.map(encodeRecord).join('');
    await atomicWriteFile(file, content, { mode: 0o644 });
    for (const job of dropped) jobs.delete(job.id);
    await handle.close();
    handle = await open(file, 'a', 0o644);
    bytes = Buffer.byteLength(content);
    records = kept.length;
    compactions++;
    if (dropped.length) options.onPrune?.(dropped.map((j) => j.id));
  }

  // A journal that is mostly superseded records is rewritten at start.
  if (replay.damaged > 0 || records > 2 * jobs.size + 100) await compact();

  /** Append frozen copies; the map takes them once they are on disk. */
  function commit(list: Job[]): Promise<void> {
    if (closed) return Promise.reject(new Error('journal is closed'));
    if (list.length === 0) return Promise.resolve();
    const frozen = list.map((job) => Object.freeze({ ...job }));
    return new Promise((resolve, reject) => {
      pending.push({ records: frozen, resolve, reject });
      flushing ??= flushLoop();
    });
  }

  function current(id: string): Job {
    const job = jobs.get(id);
    if (!job) throw new Error(`job ${id} is not in the journal`);
    return job;
  }

  async function change(id: string, ...steps: Array<Partial<Job>>): Promise<Job> {
    let job = current(id);
    const list = steps.map((fields) => (job = { ...job, ...fields }));
    await commit(list);
    return jobs.get(id)!;
  }

  const now = () => new Date().toISOString();

  return {
    file,
    jobs,
    damaged: replay.damaged,
    get lastSeq() { return Math.max(lastSeq, ...pending.flatMap((b) => b.records.map((j) => j.seq))); },
    write: commit,
    async add(job, supersedes = []) {
      const superseded = supersedes.map((id) => ({ ...current(id), state: 'superseded' as const, finished: job.queued, reason: `superseded by ${job.id}` }));
      await commit([...superseded, job]);
      return jobs.get(job.id)!;
    },
    markRunning: (id, at = now()) => {
      const job = current(id);
      return change(id, { state: 'running', started: at, attempts: job.attempts + 1, pgid: null, finished: null });
    },
    recordGroup: (id, pgid) => change(id, { pgid }),
    finish: (id, { state, exit, reason, at = now() }) => change(id, { state, exit, reason, finished: at, pgid: null }),
    interrupt(id, { reason, requeue, at = now() }) {
      const interruptions = current(id).interruptions + 1;
      const interrupted: Partial<Job> = { state: 'interrupted', interruptions, finished: at, reason, pgid: null };
      return requeue
        ? change(id, interrupted, { state: 'queued', started: null, finished: null, reason: `queued again after interruption ${interruptions}` })
        : change(id, interrupted);
    },
    requeue: (id, reason) => change(id, { state: 'queued', started: null, finished: null, reason, pgid: null }),
    stats: () => ({ records, flushes, bytes, compactions }),
    async close() {
      closed = true;
      while (flushing) await flushing;
      await handle.close();
    },
  };
}
