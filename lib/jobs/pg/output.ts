// A running job's output, live on hook-server wherever the job runs (DESIGN §8), streamed through
// the database: a `shipkit worker` sends what its job prints (DATA/jobs/ID/output.log on its own
// machine, the file process/runner.ts writes) as chunks into shipkit.job_output, each insert
// NOTIFYing `shipkit_output`; hook-server appends them to its own DATA/jobs/ID/output.log, which
// its log page and live follow (lib/web/log-follow.ts) already read. Once a job has ended and its
// chunks are written on hook-server, they are deleted from the database. logs.txt stays on the
// worker's machine. Chunks reach hook-server in order; an attempt on another worker continues the
// same file after its own header line.
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { describeDbError, type QueueDatabase } from './connect.ts';
import type { Queryable } from './records.ts';

export const OUTPUT_CHANNEL = 'shipkit_output';
const CHUNK_BYTES = 256 * 1024;
/** What a worker sends of one attempt at most (process/runner.ts keeps 8 MB of a finished job's output). */
const MAX_SENT_BYTES = 8 * 1024 * 1024;

/** Send the new bytes of `file` from `from`; gives the new offset. */
export async function sendOutput(
  db: Queryable,
  job: { id: string; attempts: number },
  file: string,
  from: number,
): Promise<number> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return from;
  }
  try {
    let at = from;
    while (at < MAX_SENT_BYTES) {
      const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, MAX_SENT_BYTES - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) break;
      await db.query(
        `WITH sent AS (INSERT INTO shipkit.job_output (job_id, attempt, start_at, chunk) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1)
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

/** A worker's sender for one running attempt: every `everyMs`, and once more at its end. */
export class OutputSender {
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
    this.sent = await stat(this.args.file).then(
      (info) => info.size,
      () => 0,
    );
    this.timer = setInterval(() => void this.tick(), this.args.everyMs ?? 500);
  }

  private tick(): Promise<void> {
    this.sending = this.sending.then(async () => {
      try {
        this.sent = await sendOutput(this.args.pool, this.args.job, this.args.file, this.sent);
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

/** hook-server's side: chunks appended to DATA/jobs/ID/output.log as they come. */
export class OutputReceiver {
  private readonly args: {
    pool: pg.Pool;
    newClient(name: string): pg.Client;
    jobsDir: string;
    log: Logger;
    db: QueueDatabase;
  };
  /** job id → the last chunk written: its attempt and the offset after it. */
  private readonly written = new Map<string, { attempt: number; next: number }>();
  private readonly pending = new Set<string>();
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
      `SELECT DISTINCT o.job_id, j.state NOT IN ('queued', 'running') AS ended FROM shipkit.job_output o LEFT JOIN shipkit.jobs j ON j.id = o.job_id`,
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

  /** The chunks of `id` after the last one written here, appended (the file started afresh on the first). */
  private async receive(id: string): Promise<void> {
    const last = this.written.get(id);
    const { rows } = await this.args.pool.query(
      `SELECT attempt, start_at, chunk FROM shipkit.job_output WHERE job_id = $1 AND (attempt, start_at) >= ($2, $3) ORDER BY attempt, start_at`,
      [id, last?.attempt ?? 0, last?.next ?? 0],
    );
    if (!rows.length) return;
    const file = path.join(this.args.jobsDir, id, 'output.log');
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    if (!last) await writeFile(file, '', { mode: 0o640 });
    const handle = await open(file, 'a', 0o640);
    try {
      for (const row of rows as Array<{ attempt: number; start_at: string; chunk: Buffer }>) {
        await handle.write(row.chunk);
        this.written.set(id, { attempt: row.attempt, next: Number(row.start_at) + row.chunk.length });
      }
    } finally {
      await handle.close();
    }
  }

  /** A job ended: what is left of its output written, then its chunks deleted. */
  async ended(id: string): Promise<void> {
    await this.running;
    await this.receive(id);
    await this.args.pool.query('DELETE FROM shipkit.job_output WHERE job_id = $1', [id]);
    this.written.delete(id);
  }

  async close(): Promise<void> {
    await this.running;
    await this.listener?.end().catch(() => undefined);
  }
}
