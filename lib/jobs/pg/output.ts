// A running job's output, live on hook-server wherever the job runs (docs/workers.md): a worker
// sends what its job prints as chunks into shipkit.job_output with a NOTIFY; hook-server appends
// them in order to its own DATA/jobs/ID/output.log and deletes them once the job has ended.
// The whole story: docs/internals.md.
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { describeDbError, type QueueDatabase } from '../../db/connect.ts';
import type { Queryable } from '../../db/connect.ts';
import { isStoredJobId } from '../job-id.ts';
import { sentSectionFile } from '../job-log.ts';
import { atomicWriteFile } from '../../core/fs.ts';

export const OUTPUT_CHANNEL = 'shipkit_output';
const CHUNK_BYTES = 256 * 1024;
/**
 * The output of one attempt a worker sends, and hook-server writes, at most: the 8 MB
 * process/runner.ts keeps of a finished job's output (docs/workers.md).
 */
export const OUTPUT_CAP_BYTES = 8 * 1024 * 1024;
/** Chunks read from the database at once: at most 32 x 256 KB in memory. */
const ROWS_AT_ONCE = 32;

/**
 * Send the bytes of `file` after `base + from` (`base`: where this attempt began in the file, which
 * on a worker's machine may hold earlier attempts); gives the new `from`. Chunks are numbered from
 * the attempt's start, so hook-server can tell a gap, and capped at OUTPUT_CAP_BYTES per attempt.
 */
export async function sendOutput(
  db: Queryable,
  job: { id: string; attempts: number },
  file: string,
  { base, from }: { base: number; from: number },
): Promise<number> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return from;
  }
  try {
    let at = from;
    while (at < OUTPUT_CAP_BYTES) {
      const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, OUTPUT_CAP_BYTES - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, base + at);
      if (bytesRead === 0) break;
      await db.query(
        `WITH sent AS (INSERT INTO shipkit.job_output (job_id, attempt, start_at, chunk) VALUES ($1, $2, ` +
          `$3, $4) ON CONFLICT DO NOTHING RETURNING 1)
         SELECT pg_notify('${OUTPUT_CHANNEL}', $1) FROM sent`,
        [job.id, job.attempts, at, buffer.subarray(0, bytesRead)],
      );
      at += bytesRead;
    }
    return at;
  } finally {
    await handle.close();
  }
}

/**
 * A finished attempt's section of the worker's logs.txt, for hook-server's job page (its steps
 * and its commands' output). Its last OUTPUT_CAP_BYTES at most, from a line's start.
 */
export async function sendSection(db: Queryable, job: { id: string; attempts: number }, text: string): Promise<void> {
  let section = Buffer.from(text);
  if (section.length > OUTPUT_CAP_BYTES) {
    const tail = section.subarray(section.length - OUTPUT_CAP_BYTES);
    section = tail.subarray(tail.indexOf(10) + 1);
  }
  await db.query(
    `INSERT INTO shipkit.job_sections (job_id, attempt, section) VALUES ($1, $2, $3)
     ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, section = excluded.section WHERE ` +
      `job_sections.attempt <= excluded.attempt`,
    [job.id, job.attempts, section],
  );
}

/** A worker's sender for one running attempt: every `everyMs`, and once more at its end. */
export class OutputSender {
  /** Where this attempt began in the file, and what of it was sent. */
  private base = 0;
  private sent = 0;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private readonly args: {
    pool: Queryable;
    job: { id: string; attempts: number };
    file: string;
    log: Logger;
    db: QueueDatabase;
    everyMs?: number;
  };
  private warned = false;

  constructor(args: OutputSender['args']) {
    this.args = args;
  }

  /** From the file's end now: on this machine the file may hold an earlier attempt (process/runner.ts appends). */
  async start(): Promise<void> {
    this.base = await stat(this.args.file).then(
      (info) => info.size,
      () => 0,
    );
    this.timer = setInterval(() => void this.tick(), this.args.everyMs ?? 500);
  }

  private tick(): Promise<void> {
    this.sending = this.sending.then(async () => {
      try {
        this.sent = await sendOutput(this.args.pool, this.args.job, this.args.file, {
          base: this.base,
          from: this.sent,
        });
      } catch (error) {
        if (!this.warned)
          this.args.log.warn(
            `could not send the job's output to ${describeDbError(error, this.args.db)}; its page on hook-server lags`,
            { job: this.args.job.id },
          );
        this.warned = true;
      }
    });
    return this.sending;
  }

  /** The rest of the output, before the job's end is written. */
  async finish(): Promise<void> {
    clearInterval(this.timer);
    await this.tick();
  }
}

interface Chunk {
  start_at: string;
  chunk: Buffer;
}

/** hook-server's side: chunks appended to DATA/jobs/ID/output.log as they come. */
export class OutputReceiver {
  private readonly args: {
    pool: pg.Pool;
    newClient(name: string): pg.Client;
    jobsDir: string;
    log: Logger;
    db: QueueDatabase;
    /**
     * Whether this hook-server deletes a finished job's chunks (the leader, of several on one
     * database), and how long after the end: the others write the rest of theirs meanwhile.
     */
    deletes?: () => boolean;
    deleteAfterMs?: number;
  };
  private readonly deleting = new Set<NodeJS.Timeout>();
  /** job id → the attempt being written, the offset after its last chunk, and whether the file was begun afresh. */
  private readonly written = new Map<string, { attempt: number; next: number; begun: boolean }>();
  private readonly pending = new Set<string>();
  private readonly refused = new Set<string>();
  private listener: pg.Client | undefined;
  private running: Promise<void> | undefined;

  constructor(args: OutputReceiver['args']) {
    this.args = args;
  }

  async open(): Promise<void> {
    const client = this.args.newClient('shipkit hook-server (output)');
    client.on('error', () => {
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => undefined);
    });
    client.on('notification', (message) => {
      if (message.payload) this.want(message.payload);
    });
    await client.connect();
    await client.query(`LISTEN ${OUTPUT_CHANNEL}`);
    this.listener = client;
    // Chunks from before this start: their files are written afresh, and those of jobs that
    // ended meanwhile are deleted once written.
    const { rows } = await this.args.pool.query(
      `SELECT DISTINCT o.job_id, j.state NOT IN ('queued', 'running') AS ended
       FROM (SELECT job_id FROM shipkit.job_output UNION SELECT job_id FROM shipkit.job_sections) o LEFT ` +
        `JOIN shipkit.jobs j ON j.id = o.job_id`,
    );
    for (const { job_id: id, ended } of rows as Array<{ job_id: string; ended: boolean | null }>) {
      if (ended !== false)
        this.ended(id).catch((error) =>
          this.args.log.warn(`could not settle the output of job ${id}: ${describeDbError(error, this.args.db)}`),
        );
      else this.want(id);
    }
  }

  /** Every few seconds: LISTEN again after a lost connection, and read the running remote jobs (a missed notification). */
  async poll(running: Iterable<string>): Promise<void> {
    if (!this.listener) await this.open();
    for (const id of running) this.want(id);
  }

  private want(id: string): void {
    this.pending.add(id);
    this.running ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.size) {
        const [id] = this.pending;
        this.pending.delete(id);
        await this.receive(id);
      }
    } catch (error) {
      this.args.log.warn(`could not read job output from ${describeDbError(error, this.args.db)}`);
    } finally {
      this.running = undefined;
    }
  }

  /**
   * The chunks of `id` after the last one written here, appended (the file started afresh on the
   * first). What the database holds is checked before it is written: an id that is not a job id
   * is refused (it would be a path outside DATA), chunks of an attempt the job has not reached,
   * chunks that do not start where the attempt's output so far ends, and chunks larger than a
   * worker sends are skipped, and no attempt gets more than OUTPUT_CAP_BYTES.
   */
  private async receive(id: string): Promise<void> {
    if (!this.isJobId(id)) return;
    for (;;) {
      const last = this.written.get(id) ?? { attempt: 0, next: 0 };
      const { rows } = await this.args.pool.query(
        `SELECT start_at, substring(chunk from 1 for $4) AS chunk FROM shipkit.job_output
         WHERE job_id = $1 AND attempt = $2 AND start_at >= $3 AND start_at < $5 ORDER BY start_at LIMIT ${ROWS_AT_ONCE}`,
        [id, last.attempt, last.next, CHUNK_BYTES + 1, OUTPUT_CAP_BYTES],
      );
      const wrote = await this.append(id, last, rows as Chunk[]);
      if (wrote === ROWS_AT_ONCE) continue;
      if (wrote === 0 && (await this.nextAttempt(id, last.attempt))) continue;
      return;
    }
  }

  /**
   * The next attempt whose output has begun (a chunk at 0, the job's record at that attempt or
   * later), once the current one has nothing more that follows on; says whether there is one.
   */
  private async nextAttempt(id: string, attempt: number): Promise<boolean> {
    const { rows } = await this.args.pool.query(
      `SELECT o.attempt FROM shipkit.job_output o JOIN shipkit.jobs j ON j.id = o.job_id
       WHERE o.job_id = $1 AND o.attempt > $2 AND o.start_at = 0 AND o.attempt <= COALESCE((j.record->>'attempts')::int, 0)
       ORDER BY o.attempt LIMIT 1`,
      [id, attempt],
    );
    if (!rows.length) return false;
    this.written.set(id, { attempt: (rows[0] as { attempt: number }).attempt, next: 0, begun: this.begun(id) });
    return true;
  }

  private begun(id: string): boolean {
    return this.written.get(id)?.begun ?? false;
  }

  /** The chunks of `rows` that follow on from `last`, appended to the job's output file; how many were. */
  private async append(id: string, last: { attempt: number; next: number }, rows: Chunk[]): Promise<number> {
    let next = last.next;
    const taken: Buffer[] = [];
    for (const row of rows) {
      const at = Number(row.start_at);
      if (at !== next || row.chunk.length > CHUNK_BYTES) break;
      const chunk = row.chunk.subarray(0, OUTPUT_CAP_BYTES - at);
      taken.push(chunk);
      next = at + chunk.length;
    }
    if (!taken.length) return 0;
    const file = path.join(this.args.jobsDir, id, 'output.log');
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    if (!this.begun(id)) await writeFile(file, '', { mode: 0o640 });
    const handle = await open(file, 'a', 0o640);
    try {
      for (const chunk of taken) await handle.write(chunk);
    } finally {
      await handle.close();
    }
    this.written.set(id, { attempt: last.attempt, next, begun: true });
    return taken.length;
  }

  /** Says (once per id, for the first 100) that an id from the database is refused. */
  private isJobId(id: string): boolean {
    if (isStoredJobId(id)) return true;
    if (this.refused.size < 100 && !this.refused.has(id)) {
      this.refused.add(id);
      this.args.log.error('refused job output under an id that is not a job id; nothing of it is written', {
        job: JSON.stringify(String(id).slice(0, 80)),
      });
    }
    return false;
  }

  /**
   * A job ended: what is left of its output and its section written; then, by the leader and a
   * moment later (so every hook-server has written its copy), deleted from the database.
   */
  async ended(id: string): Promise<void> {
    await this.running;
    await this.receive(id);
    await this.receiveSection(id);
    this.written.delete(id);
    if (!(this.args.deletes?.() ?? true)) return;
    const forget = () => forgetOutput(this.args.pool, [id]);
    const after = this.args.deleteAfterMs ?? 0;
    if (after === 0) return forget();
    const timer = setTimeout(() => {
      this.deleting.delete(timer);
      forget().catch((error) =>
        this.args.log.warn(`could not delete the output of job ${id}: ${describeDbError(error, this.args.db)}`),
      );
    }, after);
    timer.unref?.();
    this.deleting.add(timer);
  }

  /** The section of logs.txt the worker sent, as DATA/jobs/ID/log.txt (checked as output is). */
  private async receiveSection(id: string): Promise<void> {
    if (!this.isJobId(id)) return;
    const { rows } = await this.args.pool.query(
      `SELECT substring(s.section from 1 for $2) AS section FROM shipkit.job_sections s JOIN shipkit.jobs j ON j.id = s.job_id
       WHERE s.job_id = $1 AND s.attempt <= COALESCE((j.record->>'attempts')::int, 0)`,
      [id, OUTPUT_CAP_BYTES],
    );
    if (!rows.length) return;
    const file = sentSectionFile(this.args.jobsDir, id);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await atomicWriteFile(file, (rows[0] as { section: Buffer }).section, { mode: 0o640 });
  }

  async close(): Promise<void> {
    // Deletes not yet due are left to the next leader's hourly round (forgetOutput of ended jobs).
    for (const timer of this.deleting) clearTimeout(timer);
    await this.running;
    await this.listener?.end().catch(() => undefined);
  }
}

/** Delete the chunks and sections of these jobs, or (no ids) of every job that has ended. */
export async function forgetOutput(db: Pick<pg.Pool, 'query'>, ids?: string[]): Promise<void> {
  const which = ids
    ? 'job_id = ANY($1)'
    : `job_id IN (SELECT id FROM shipkit.jobs WHERE state NOT IN ('queued', 'running'))`;
  const values = ids ? [ids] : [];
  await db.query(`DELETE FROM shipkit.job_output WHERE ${which}`, values);
  await db.query(`DELETE FROM shipkit.job_sections WHERE ${which}`, values);
}
