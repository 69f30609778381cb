// The builds a `shipkit worker` killed with -9 left running on its machine: found at the worker's
// next start by their wrapper's command line and ended when the database says the job is no longer
// this worker's.
// The whole story: docs/internals.md.
import type { Logger } from '../../core/log.ts';
import { endProcessGroup } from '../../core/process-group.ts';
import type { Queryable } from '../../db/connect.ts';
import { jobWrappers } from '../process/wrappers.ts';

/** End the orphaned job groups of worker `name` under `jobsDir`; their job ids. */
export async function endOrphanedJobs({
  db,
  jobsDir,
  name,
  log,
}: {
  db: Queryable;
  jobsDir: string;
  name: string;
  log: Logger;
}): Promise<string[]> {
  const ended: string[] = [];
  for (const [pgid, id] of await jobWrappers(jobsDir)) {
    const { rows } = await db.query(`SELECT state, record->>'worker' AS worker FROM shipkit.jobs WHERE id = $1`, [id]);
    const row = rows[0] as { state: string; worker: string | null } | undefined;
    if (row?.state === 'running' && row.worker !== name) continue;
    log.warn('ending a build a previous run of this worker left behind', {
      job: id,
      pgid,
      state: row?.state ?? 'unknown',
    });
    await endProcessGroup(pgid, { graceMs: 2_000 });
    ended.push(id);
  }
  return ended;
}
