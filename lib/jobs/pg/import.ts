// The local journal's history, brought into PostgreSQL once when hook-server first starts with
// `queue:` (docs/workers.md), so turning the queue on hides no earlier job; finished jobs are copied
// as told, queued and running ones kept as interrupted, in one transaction.
// The whole story: docs/internals.md.
import type { Logger } from '../../core/log.ts';
import { FINISHED_STATES, type Job } from '../job.ts';
import { isStoredJobId } from '../job-id.ts';
import { inTransaction } from '../../db/connect.ts';
import type pg from 'pg';
import { LOCKS } from '../../db/locks.ts';

const ROWS_AT_ONCE = 500;

/** A journal's record as it goes into the database. */
function importedRecord(job: Job, now: string): Job {
  if (FINISHED_STATES.includes(job.state)) return job;
  return {
    ...job,
    state: 'interrupted',
    finished: job.finished ?? now,
    pgid: null,
    reason: `${job.state} in the local journal when queue: was turned on; not run again (push again to build it)`,
  };
}

/**
 * Copy `jobs` (a journal's) into shipkit.jobs unless `source` was imported before; gives how many
 * were copied (0 when it had been).
 */
export async function importJournal(
  pool: pg.Pool,
  { source, jobs, log, now = new Date() }: { source: string; jobs: Iterable<Job>; log: Logger; now?: Date },
): Promise<number> {
  const records = [...jobs]
    .filter((job) => isStoredJobId(job.id))
    .sort((a, b) => a.seq - b.seq)
    .map((job) => importedRecord(job, now.toISOString()));
  if (records.length === 0) return 0;
  return inTransaction(pool, async (c) => {
    await c.query(`SELECT pg_advisory_xact_lock(${LOCKS.import})`);
    const done = await c.query('SELECT 1 FROM shipkit.imports WHERE source = $1', [source]);
    if (done.rows.length) return 0;
    let copied = 0;
    for (let i = 0; i < records.length; i += ROWS_AT_ONCE) {
      const batch = records.slice(i, i + ROWS_AT_ONCE);
      const { rowCount } = await c.query(
        `INSERT INTO shipkit.jobs (id, repo, state, boss_id, record, told)
         SELECT r->>'id', r->>'repo', r->>'state', NULL, r, true FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, n) ORDER BY n
         ON CONFLICT (id) DO NOTHING`,
        [JSON.stringify(batch)],
      );
      copied += rowCount ?? 0;
    }
    await c.query('INSERT INTO shipkit.imports (source, jobs) VALUES ($1, $2)', [source, copied]);
    log.info(`the local journal's ${copied} job(s) were copied into the queue database, once`, { journal: source });
    return copied;
  });
}
