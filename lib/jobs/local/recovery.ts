// What a previous hook-server process left behind: jobs still marked running (settled from their
// status file, or interrupted and queued once more) and the files of jobs the journal forgot.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readStatus } from '../process/status.ts';
import type { Logger } from '../../core/log.ts';
import type { Journal } from './journal.ts';
import type { Job } from '../job.ts';

/**
 * Settle jobs left `running` by a previous process: a status file says how it ended. Without one
 * its process group is ended; if the wrapper then records success the build had finished,
 * otherwise the attempt was cut short and the job is queued once more (up to `maxInterruptions`
 * times).
 */
export async function recoverJobs({
  journal,
  jobsDir,
  log,
  killGroup,
  maxInterruptions,
}: {
  journal: Journal;
  jobsDir: string;
  log: Logger;
  killGroup: (job: Job) => Promise<void>;
  maxInterruptions: number;
}): Promise<void> {
  for (const job of [...journal.jobs.values()]) {
    if (job.state !== 'running') continue;
    const statusFile = path.join(jobsDir, job.id, `status-${job.attempts}`);
    let status = await readStatus(statusFile);
    // Still running, or ending this moment: its group is ended, and the status its wrapper then
    // writes says whether the build had already finished (it is not run again) or was cut short.
    if (!status) {
      await killGroup(job);
      status = await readStatus(statusFile);
      if (status && status.code !== 0) status = undefined;
    }
    if (status) {
      const state = status.code === 0 ? 'succeeded' : 'failed';
      await journal.finish(job.id, {
        state,
        exit: status.code,
        reason: 'finished while hook-server was down',
        at: status.time,
      });
      log.info(`job ${state} while the server was down`, { job: job.id, repo: job.repo, exit: status.code });
      continue;
    }
    const requeue = job.interruptions + 1 <= maxInterruptions;
    await journal.interrupt(job.id, { reason: 'hook-server stopped while it ran', requeue });
    if (requeue) log.warn('job was interrupted; queued once more', { job: job.id, repo: job.repo });
    else log.warn('job was interrupted too often; left interrupted', { job: job.id, repo: job.repo });
  }
}

/**
 * Remove what jobs left under the jobs folder (their output and status files). Most jobs a
 * compaction drops never ran (superseded while queued, thousands of them under a burst of
 * deliveries) and have no folder: the folder is listed once instead of asking for each.
 */
export async function removeJobFiles(jobsDir: string, ids: string[]): Promise<void> {
  const wanted = new Set(ids);
  const present = await readdir(jobsDir).catch(() => [] as string[]);
  await Promise.all(
    present
      .filter((name) => wanted.has(name))
      .map((id) => rm(path.join(jobsDir, id), { recursive: true, force: true })),
  );
}
