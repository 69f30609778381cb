// hook-server's copy of a PostgreSQL queue's job records (pg/records.ts): the queued, running and
// newest finished jobs in memory, so get/list/counts stay synchronous; it follows LISTEN
// shipkit_jobs (changes nobody here acts on are read when a page asks: settle) and reads
// everything again after a reconnect.
// The whole story: docs/internals.md.
import type pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { describeDbError, type QueueDatabase } from '../../db/connect.ts';
import { markTold, readJobs, readLiveJobs, readUntold } from './records.ts';
import { NOTIFY_CHANNEL } from '../../db/migrations.ts';
import { FINISHED_STATES, type Job } from '../job.ts';
import { messageOf } from '../../core/errors.ts';

export interface MirrorOptions {
  db: QueueDatabase;
  pool: pg.Pool;
  newClient(applicationName: string): pg.Client;
  log: Logger;
  onStart?: (job: Job) => void;
  /** A job's end told (statuses, notifications); what it returns settles once those are sent or given up. */
  onEnd?: (job: Job) => void | Promise<void>;
  /** A job's end seen by this node, leader or not (each node writes its copy of the job's output). */
  onSeenEnd?: (job: Job) => void;
  /**
   * The leader's fencing term while this node leads (pg/leader.ts), else undefined: only the
   * leader tells starts and ends, so that several hook-servers send each status once.
   */
  leading: () => number | undefined;
  /** Finished jobs kept (default 1000, as the journal keeps). */
  keepFinished?: number;
  refreshMs?: number;
}

/** How long other nodes' changes wait to be read together: what another node's view may lag. */
const FOLLOW_MS = 25;

const finished = (job: Job | undefined) => job !== undefined && FINISHED_STATES.includes(job.state);

/** A build superseded before it started: the node whose batch superseded it tells it (pg/queue.ts). */
export const supersededUnstarted = (job: Job): boolean =>
  job.state === 'superseded' && job.started === null && !job.attempts;

/**
 * A change's kind, as the wake-up's letters say it (migration 16): q (queued), s (superseded before
 * it started, told by its writer), x (another end without a start), e (the rest). Nobody acts on
 * q or s, nor a follower on x (no start, no output), so those are read when a page asks or at the
 * next refresh. (s stands for the letter the database gives only when its writer told it.)
 */
const kindOf = (job: Job): string =>
  job.state === 'queued'
    ? 'q'
    : job.started === null && !job.attempts && finished(job)
      ? supersededUnstarted(job)
        ? 's'
        : 'x'
      : 'e';

/** Deferred ids beyond this are not read one by one: the next settle reads everything again. */
const DEFERRED_MAX = 1_000;

export class JobMirror {
  readonly jobs = new Map<string, Job>();
  private readonly options: MirrorOptions;
  private listener: pg.Client | undefined;
  private readonly pending = new Set<string>();
  /** Ids changed in a way nobody here acts on (kind q, or x while following): read on settle. */
  private readonly deferred = new Set<string>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Jobs above this seq are news: their end is told even when the mirror never saw them queued. */
  private loadedSeq = 0;
  /** Ends told here, to be marked told in the database (batched), with the term they were told under. */
  private readonly told = new Map<string, number>();
  private marking: Promise<void> | undefined;
  /** Ends told here whose messages are still being sent: marked told once those settle. */
  private readonly sending = new Set<Promise<void>>();
  /**
   * Reads of the database, one after another: a slow read of everything (refresh) answered after a
   * quick read of one changed job (flush) would set that job back to an older state, and its end
   * would then be told twice. Serialised, each read sees at least what the one before it saw.
   */
  private reads: Promise<unknown> = Promise.resolve();
  /**
   * The transactions of this node's own batches (pg/enqueue.ts), newest last: it applies their
   * rows itself, so their notifications need no read. Bounded; one forgotten costs a read.
   */
  private readonly own = new Set<string>();

  constructor(options: MirrorOptions) {
    this.options = options;
  }

  /** The first read (nothing told) and LISTEN. */
  async open(): Promise<void> {
    for (const job of await readLiveJobs(this.options.pool, this.options.keepFinished ?? 1000)) {
      this.jobs.set(job.id, job);
      this.loadedSeq = Math.max(this.loadedSeq, job.seq);
    }
    await this.listen();
    this.schedule();
  }

  /**
   * The ends no leader told (they ended while no hook-server led, or the leader before this one
   * died between telling and marking), told now: when this node starts leading.
   */
  async tellUntold(): Promise<void> {
    if (this.options.leading() === undefined) return;
    for (const job of await this.read(() => readUntold(this.options.pool))) {
      this.jobs.set(job.id, job);
      this.tell(this.options.onSeenEnd, job);
      this.tellEnd(job);
    }
  }

  /**
   * A job's end to the listeners, then marked told in the database under the leader's term once
   * its messages are sent or given up: a leader that loses the lead before (its marks are fenced)
   * leaves the end to the next leader, which tells it again (at least once). A node that does not
   * lead tells none.
   */
  private tellEnd(job: Job): void {
    const term = this.options.leading();
    if (term === undefined) return;
    const sent = Promise.resolve(this.tell(this.options.onEnd, job))
      .catch(() => undefined)
      .then(() => this.markTold(job.id, term));
    this.sending.add(sent);
    void sent.finally(() => this.sending.delete(sent));
  }

  /** Marks in batches, each under the term its end was told in. */
  private markTold(id: string, term: number): void {
    if (this.closed) return;
    this.told.set(id, term);
    this.marking ??= (async () => {
      while (this.told.size) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const batch = [...this.told];
        this.told.clear();
        // Under the term each was told in, which holds until another node takes the lead (a
        // handover at SIGTERM does not stop the marks of what this node told): fenced.
        for (const term of new Set(batch.map(([, t]) => t))) {
          const ids = batch.filter(([, t]) => t === term).map(([id]) => id);
          await markTold(this.options.pool, ids, term).catch((error) =>
            this.options.log.warn(
              `could not mark ${ids.length} job end(s) as told; the leader tells them again: ${describeDbError(error, this.options.db)}`,
            ),
          );
        }
      }
      this.marking = undefined;
    })();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.refresh()
        .catch((error) =>
          this.options.log.warn(
            `could not read the jobs from ${describeDbError(error, this.options.db)}; the status page shows what it knew`,
          ),
        )
        .finally(() => this.schedule());
    }, this.options.refreshMs ?? 5_000);
    this.timer.unref?.();
  }

  private async listen(): Promise<void> {
    const client = this.options.newClient('shipkit hook-server (LISTEN)');
    client.on('error', () => {
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => undefined);
    });
    client.on('notification', (message) => {
      // "XID ID ID ...": the writing transaction and the jobs it changed (pg/records.ts).
      const [head, ...ids] = (message.payload ?? '').split(' ');
      const [xid, kinds = ''] = head.split('/');
      if (this.own.has(xid)) return;
      const leads = this.options.leading() !== undefined;
      ids.forEach((id, i) => {
        if (!id) return;
        const later = kinds[i] === 'q' || kinds[i] === 's' || (kinds[i] === 'x' && !leads);
        (later ? this.deferred : this.pending).add(id);
      });
      // Other nodes' changes are read a moment later, together: per notification, a read's round
      // trip cost each node more per ack than the records themselves (bench:scale).
      if (this.pending.size)
        this.flushing ??= new Promise((resolve) => setTimeout(resolve, FOLLOW_MS)).then(() => this.flush());
    });
    await client.connect();
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    this.listener = client;
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.size) {
        const ids = [...this.pending];
        this.pending.clear();
        for (const job of await this.read(() => readJobs(this.options.pool, ids))) this.apply(job);
      }
    } catch (error) {
      this.options.log.warn(
        `could not read changed jobs from ${describeDbError(error, this.options.db)}; read again at the next refresh`,
      );
    } finally {
      this.flushing = undefined;
    }
  }

  /**
   * Transaction `xid` of this node changed jobs whose rows it applies itself: its notification
   * is not read back. Called before the commit, so before the notification can arrive.
   */
  wrote(xid: string): void {
    this.own.add(xid);
    if (this.own.size > 1_000) this.own.delete(this.own.values().next().value!);
  }

  /**
   * The deferred changes read (before a page or the API answers from this copy): each applied
   * while it is still of its kind, without telling anything (a later change of another kind is
   * the prompt read's, which tells it).
   */
  async settle(): Promise<void> {
    if (!this.deferred.size) return;
    if (this.deferred.size > DEFERRED_MAX) return this.refresh();
    const ids = [...this.deferred];
    this.deferred.clear();
    for (const job of await this.read(() => readJobs(this.options.pool, ids))) {
      const before = this.jobs.get(job.id);
      if (kindOf(job) === 'e' || (before && before.seq === job.seq && sameRecord(before, job))) continue;
      this.jobs.set(job.id, job);
    }
  }

  /** Everything again; and LISTEN again if its connection was lost. */
  async refresh(): Promise<void> {
    this.deferred.clear();
    if (!this.listener && !this.closed) await this.listen();
    const live = await this.read(() => readLiveJobs(this.options.pool, this.options.keepFinished ?? 1000));
    const kept = new Set<string>();
    for (const job of live) {
      this.apply(job);
      kept.add(job.id);
    }
    for (const [id, job] of this.jobs) if (!kept.has(id) && finished(job)) this.jobs.delete(id);
  }

  /** `query` once the reads before it are answered (see `reads`). */
  private read<T>(query: () => Promise<T>): Promise<T> {
    const next = this.reads.then(query, query);
    this.reads = next.catch(() => undefined);
    return next;
  }

  /** A record as the database has it now; its start or end told when it is news. */
  apply(job: Job): void {
    const before = this.jobs.get(job.id);
    if (before && job.seq === before.seq && sameRecord(before, job)) return;
    this.jobs.set(job.id, job);
    const isNew = before !== undefined || job.seq > this.loadedSeq;
    if (!isNew) return;
    const leads = this.options.leading() !== undefined;
    if (leads && job.state === 'running' && (before?.state !== 'running' || before.attempts !== job.attempts))
      this.tell(this.options.onStart, job);
    if (finished(job) && !finished(before)) {
      this.tell(this.options.onSeenEnd, job);
      // Told by the node whose batch superseded it (pg/queue.ts), or by tellUntold if it was not.
      if (!supersededUnstarted(job)) this.tellEnd(job);
    }
  }

  private tell<R>(listener: ((job: Job) => R) | undefined, job: Job): R | undefined {
    try {
      return listener?.(job);
    } catch (error) {
      this.options.log.error('a job listener failed', { job: job.id, error: messageOf(error) });
      return undefined;
    }
  }

  list({ limit = 100, repo, state }: { limit?: number; repo?: string; state?: string } = {}): Job[] {
    return [...this.jobs.values()]
      .filter((j) => (!repo || j.repo === repo) && (!state || j.state === state))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit);
  }

  counts(): { queued: number; running: number } {
    let queued = 0;
    let running = 0;
    for (const job of this.jobs.values()) {
      if (job.state === 'queued') queued++;
      else if (job.state === 'running') running++;
    }
    return { queued, running };
  }

  /**
   * Once the ends told so far are marked told (a handover waits for it): their messages are given
   * up to `waitMs` to settle; the ends of those still being sent are left to the next leader.
   */
  async marked(waitMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((resolve) => (timer = setTimeout(resolve, waitMs)));
    await Promise.race([Promise.all(this.sending), late]);
    clearTimeout(timer);
    while (this.marking) await this.marking;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.flushing;
    await this.marking;
    await this.listener?.end().catch(() => undefined);
  }
}

function sameRecord(a: Job, b: Job): boolean {
  return (
    a.state === b.state &&
    a.attempts === b.attempts &&
    a.pgid === b.pgid &&
    a.finished === b.finished &&
    a.reason === b.reason &&
    a.worker === b.worker
  );
}
