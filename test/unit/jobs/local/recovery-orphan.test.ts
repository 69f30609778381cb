// The race a kill -9 of hook-server leaves (lib/jobs/local/recovery.ts with the real wrapper of
// lib/jobs/process/runner.ts): the restarted server finds a job `running` with no status file
// while its build, orphaned, is finishing. Ending the group must not cut the wrapper short: the
// build that finished is recorded as done (not run again), the one cut short is queued again,
// and a group that was never journaled is found by its wrapper's command line.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import type { Job } from '../../../../lib/jobs/job.ts';
import { newJobRecord } from '../../../../lib/jobs/job-queue.ts';
import { openJournal } from '../../../../lib/jobs/local/journal.ts';
import { recoverJobs } from '../../../../lib/jobs/local/recovery.ts';
import { createProcessRunner, killOrphanGroup } from '../../../../lib/jobs/process/runner.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

/** A build left running by a server that died: its wrapper started, its "start" line written. */
async function orphan(build: string, { journalGroup }: { journalGroup: boolean }) {
  const dir = tmpDir('shipkit-orphan-');
  const jobsDir = path.join(dir, 'jobs');
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, `data: ${dir}\n`);
  writeFileSync(path.join(dir, 'runs.log'), '');
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir,
    configFile: config,
    log: silentLogger,
    killGraceMs: 60_000,
    commands: { build: ['/bin/sh', '-c', build, 'build', path.join(dir, 'runs.log')], release: [] },
    repoSettings: () => ({ timeout: 600 }),
  });
  const job: Job = {
    ...newJobRecord({ repo: 'octo/site', kind: 'build', sha: 'a'.repeat(40) }, 1, '2026-11-28T10:00:00Z'),
    state: 'running',
    started: '2026-11-28T10:00:01Z',
    attempts: 1,
  };
  let pgid: number | undefined;
  // The runner stands for the dead server's side: nothing of its outcome is journaled.
  const ran = runner(job, { onSpawn: (p) => void (pgid = p) });
  const runs = () => readFileSync(path.join(dir, 'runs.log'), 'utf8');
  await waitFor(() => runs().includes('start'), { what: 'the build to start' });
  const journal = await openJournal(dir);
  await journal.write([{ ...job, pgid: journalGroup ? pgid! : null }]);
  await recoverJobs({
    journal,
    jobsDir,
    log: silentLogger,
    killGroup: (j) => killOrphanGroup(j, jobsDir).then(() => undefined),
    maxInterruptions: 5,
  });
  await ran;
  return { state: journal.jobs.get(job.id)!, runs: runs() };
}

test('a build finishing as the restarted server ends its group: recorded as done, not queued again', async () => {
  // It finishes its work when told to stop, as a build at its last step does, and exits 0.
  const { state, runs } = await orphan(`echo start >> "$1"; trap 'echo done >> "$1"; exit 0' TERM; sleep 30 & wait`, {
    journalGroup: true,
  });
  assert.equal([state.state, state.exit, state.reason], ['succeeded', 0, 'finished while hook-server was down']);
  assert.is(runs, 'start\ndone\n');
});

test('a build cut short by the restarted server: queued once more, its end not taken for success', async () => {
  const { state, runs } = await orphan(`echo start >> "$1"; sleep 30; echo done >> "$1"`, { journalGroup: true });
  assert.equal([state.state, state.interruptions], ['queued', 1]);
  assert.is(runs, 'start\n', 'the build was ended before its last line');
});

test('a group the dead server never journaled is found by its wrapper and ended', async () => {
  const { state, runs } = await orphan(`echo start >> "$1"; trap 'echo done >> "$1"; exit 0' TERM; sleep 30 & wait`, {
    journalGroup: false,
  });
  assert.equal([state.state, state.exit], ['succeeded', 0]);
  assert.is(runs, 'start\ndone\n');
});

test.run();
