// What a previous hook-server left behind (lib/jobs/local/recovery.ts), on a real journal: a job
// still running whose status file holds its end is settled from it; one without (or with a torn
// file) has its group ended and is queued once more, up to the limit; files of forgotten jobs go.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import type { Job } from '../../../../lib/jobs/job.ts';
import { newJobRecord } from '../../../../lib/jobs/job-queue.ts';
import { openJournal } from '../../../../lib/jobs/local/journal.ts';
import { recoverJobs, removeJobFiles } from '../../../../lib/jobs/local/recovery.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const running = (over: Partial<Job> = {}): Job => ({
  ...newJobRecord({ repo: 'octo/site', kind: 'build', sha: 'a'.repeat(40) }, 1, '2026-11-24T10:00:00Z'),
  state: 'running',
  started: '2026-11-24T10:00:01Z',
  attempts: 1,
  pgid: 4242,
  ...over,
});

async function world(jobs: Job[], status: Record<string, string>) {
  const dir = tmpDir('shipkit-recovery-');
  const jobsDir = path.join(dir, 'jobs');
  const journal = await openJournal(dir);
  await journal.write(jobs);
  for (const [id, text] of Object.entries(status)) {
    mkdirSync(path.join(jobsDir, id), { recursive: true });
    writeFileSync(path.join(jobsDir, id, 'status-1'), text);
  }
  const killed: string[] = [];
  await recoverJobs({
    journal,
    jobsDir,
    log: silentLogger,
    killGroup: async (j) => void killed.push(j.id),
    maxInterruptions: 2,
  });
  return { journal, jobsDir, killed };
}

test('a status file with its exit: settled from it, nothing killed', async () => {
  const ok = running();
  const failed = running();
  const { journal, killed } = await world([ok, failed], { [ok.id]: '0\n', [failed.id]: '3\n' });
  assert.equal([journal.jobs.get(ok.id)!.state, journal.jobs.get(ok.id)!.exit], ['succeeded', 0]);
  assert.equal([journal.jobs.get(failed.id)!.state, journal.jobs.get(failed.id)!.exit], ['failed', 3]);
  assert.is(journal.jobs.get(ok.id)!.reason, 'finished while hook-server was down');
  assert.equal(killed, []);
});

test('no status, or a torn one: its group ended and the job queued once more', async () => {
  const none = running();
  const torn = running();
  const { journal, killed } = await world([none, torn], { [torn.id]: '0' });
  assert.equal(killed.sort(), [none.id, torn.id].sort());
  for (const j of [none, torn]) {
    assert.is(journal.jobs.get(j.id)!.state, 'queued', 'a torn status file is no end');
    assert.is(journal.jobs.get(j.id)!.interruptions, 1);
  }
});

test('interrupted too often: left interrupted, not queued again', async () => {
  const tired = running({ interruptions: 2 });
  const { journal } = await world([tired], {});
  assert.is(journal.jobs.get(tired.id)!.state, 'interrupted');
});

test('jobs that are not running are left alone', async () => {
  const queued = { ...running(), state: 'queued' as const, attempts: 0, started: null };
  const { journal, killed } = await world([queued], {});
  assert.is(journal.jobs.get(queued.id)!.state, 'queued');
  assert.equal(killed, []);
});

test("removeJobFiles: the named jobs' folders go, others stay, a missing folder is fine", async () => {
  const jobsDir = path.join(tmpDir('shipkit-recovery-'), 'jobs');
  for (const id of ['a', 'b', 'c']) mkdirSync(path.join(jobsDir, id), { recursive: true });
  await removeJobFiles(jobsDir, ['a', 'c', 'never-ran']);
  assert.equal(
    ['a', 'b', 'c'].map((id) => existsSync(path.join(jobsDir, id))),
    [false, true, false],
  );
  await removeJobFiles(path.join(jobsDir, 'missing'), ['x']);
});

test.run();
