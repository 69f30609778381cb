// The job record's states (lib/jobs/job.ts): the finished ones are a subset of all, and a job that
// is queued or running is never counted as finished (the pages, retention and /metrics rely on it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINISHED_STATES, JOB_STATES } from '../../../lib/jobs/job.ts';

test('every finished state is a job state; queued and running are not finished', () => {
  for (const state of FINISHED_STATES) assert.ok((JOB_STATES as readonly string[]).includes(state), state);
  assert.not.ok(FINISHED_STATES.includes('queued'));
  assert.not.ok(FINISHED_STATES.includes('running'));
  assert.equal(
    [...JOB_STATES].filter((s) => !FINISHED_STATES.includes(s)),
    ['queued', 'running'],
  );
});

test('the states are the ones the journal and the database store', () => {
  assert.equal([...JOB_STATES], ['queued', 'running', 'succeeded', 'failed', 'superseded', 'interrupted']);
});

test.run();
