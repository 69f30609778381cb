// The job journal: job snapshots in DATA/journal/jobs.journal, an append-only log
// (lib/core/append-log.ts: group commit, each record on disk before its caller is told, a torn
// line cut off on replay). The journal keeps every job's latest record in memory and has the file
// rewritten with the unfinished jobs and the newest finished ones when it grows long.
import path from 'node:path';
import { AppendLog, encodeLine, replayLines, type AppendLogOwner, type AppendLogStats } from '../../core/append-log.ts';
import { FINISHED_STATES, type Job } from '../job.ts';

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

export function encodeRecord(job: Job): string {
  return encodeLine(job);
}

function decodeJob(value: unknown): Job | undefined {
  const job = value as Job;
  return job && typeof job.id === 'string' && typeof job.seq === 'number' ? job : undefined;
}

/** Parse journal text: the jobs (last record wins), damaged line count, and where the good data ends. */
export function replayJournal(text: string): {
  jobs: Map<string, Job>;
  damaged: number;
  goodBytes: number;
  records: number;
} {
  const { records, damaged, goodBytes } = replayLines(text, decodeJob);
  return { jobs: new Map(records.map((job) => [job.id, job])), damaged, goodBytes, records: records.length };
}

const now = () => new Date().toISOString();

/** The journal's jobs in memory, kept by its append-only log; openJournal hands out its methods. */
class JobJournal implements AppendLogOwner<Job> {
  readonly jobs = new Map<string, Job>();
  private readonly options: JournalOptions;
  private readonly compactBytes: number;
  private readonly keepFinished: number;
  /** Highest seq on disk. */
  private seqOnDisk = 0;
  // Set by open() before the journal is handed out.
  log!: AppendLog<Job>;

  private constructor(options: JournalOptions) {
    this.options = options;
    const settings = { ...DEFAULTS, ...options };
    this.compactBytes = settings.compactBytes;
    this.keepFinished = settings.keepFinished;
  }

  /** Replay the file, cut off a torn tail, and open it for appending. */
  static async open(dataDir: string, options: JournalOptions): Promise<JobJournal> {
    const journal = new JobJournal(options);
    journal.log = await AppendLog.open(journalFile(dataDir), journal, {
      decode: decodeJob,
      mode: 0o644,
      dirMode: 0o755,
      onSync: options.onSync,
      onCompactError: options.onCompactError,
    });
    return journal;
  }

  apply(records: readonly Job[]): void {
    for (const job of records) {
      this.jobs.set(job.id, Object.isFrozen(job) ? job : Object.freeze(job));
      this.seqOnDisk = Math.max(this.seqOnDisk, job.seq);
    }
  }

  /** At start, a journal that is mostly superseded records; then, one that grew past compactBytes. */
  wantsCompaction(stats: AppendLogStats, atOpen: boolean): boolean {
    return atOpen ? stats.records > 2 * this.jobs.size + 100 : stats.bytes > this.compactBytes;
  }

  /** Every unfinished job and the newest finished ones. */
  live(): { records: Job[]; done: () => void } {
    const all = [...this.jobs.values()].sort((a, b) => a.seq - b.seq);
    const finished = all.filter((j) => FINISHED_STATES.includes(j.state));
    const dropped = finished.slice(0, Math.max(0, finished.length - this.keepFinished));
    // A Set: under a burst of deliveries thousands of superseded jobs go at once.
    const gone = new Set(dropped);
    const done = () => {
      for (const job of dropped) this.jobs.delete(job.id);
      if (dropped.length) this.options.onPrune?.(dropped.map((j) => j.id));
    };
    return { records: all.filter((j) => !gone.has(j)), done };
  }

  get lastSeq(): number {
    return Math.max(this.seqOnDisk, ...this.log.pendingRecords().map((j) => j.seq));
  }

  /** Append frozen copies; the map takes them once they are on disk. */
  write(list: Job[]): Promise<void> {
    return this.log.append(list.map((job) => Object.freeze({ ...job })));
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
    const superseded = supersedes.map((id) => ({
      ...this.current(id),
      state: 'superseded' as const,
      finished: job.queued,
      reason: `superseded by ${job.id}`,
    }));
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

  interrupt(
    id: string,
    { reason, requeue, at = now() }: { reason: string; requeue: boolean; at?: string },
  ): Promise<Job> {
    const interruptions = this.current(id).interruptions + 1;
    const interrupted: Partial<Job> = { state: 'interrupted', interruptions, finished: at, reason, pgid: null };
    return requeue
      ? this.change(id, interrupted, {
          state: 'queued',
          started: null,
          finished: null,
          reason: `queued again after interruption ${interruptions}`,
        })
      : this.change(id, interrupted);
  }

  requeue(id: string, reason: string): Promise<Job> {
    return this.change(id, { state: 'queued', started: null, finished: null, reason, pgid: null });
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
    file: journal.log.file,
    jobs: journal.jobs,
    damaged: journal.log.damaged,
    get lastSeq() {
      return journal.lastSeq;
    },
    write: (jobs) => journal.write(jobs),
    add: (job, supersedes) => journal.add(job, supersedes),
    markRunning: (id, at) => journal.markRunning(id, at),
    recordGroup: (id, pgid) => journal.recordGroup(id, pgid),
    finish: (id, end) => journal.finish(id, end),
    interrupt: (id, how) => journal.interrupt(id, how),
    requeue: (id, reason) => journal.requeue(id, reason),
    stats: () => journal.log.stats(),
    close: () => journal.log.close(),
  };
}
