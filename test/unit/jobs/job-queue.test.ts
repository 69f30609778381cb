// A new job's record (lib/jobs/job-queue.ts newJobRecord), the one both queues write: queued, with
// what the payload had and nulls for what it did not, an id made from its time, and the commit's
// metadata only when there was some.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newJobRecord } from '../../../lib/jobs/job-queue.ts';

const AT = '2026-11-24T10:15:00.000Z';

test('a push with everything: queued, nothing run yet, the payload kept', () => {
  const job = newJobRecord(
    {
      repo: 'octo/site',
      kind: 'build',
      sha: 'a'.repeat(40),
      ref: 'refs/heads/main',
      branch: 'main',
      cloneUrl: 'https://github.com/octo/site.git',
      deliveryId: 'd-1',
      forge: 'github',
      message: 'fix: typo',
      author: 'Ada',
      pusher: 'ada',
      commitUrl: 'https://github.com/octo/site/commit/aaa',
    },
    7,
    AT,
  );
  assert.match(job.id, /^20261124-101500-[0-9a-f]{6}$/);
  assert.is(job.seq, 7);
  assert.is(job.state, 'queued');
  assert.is(job.queued, AT);
  assert.equal([job.started, job.finished, job.exit, job.reason, job.pgid], [null, null, null, null, null]);
  assert.equal([job.attempts, job.interruptions], [0, 0]);
  assert.equal([job.message, job.author, job.pusher], ['fix: typo', 'Ada', 'ada']);
});

test('what the payload lacked is null, and no empty metadata keys are written', () => {
  const job = newJobRecord({ repo: 'octo/site', kind: 'release', tag: 'v1.0.0' }, 0, AT);
  assert.equal(
    [job.sha, job.ref, job.branch, job.cloneUrl, job.deliveryId, job.forge],
    [null, null, null, null, null, null],
  );
  assert.is(job.tag, 'v1.0.0');
  for (const key of ['message', 'author', 'pusher', 'commitUrl']) assert.not.ok(key in job, key);
  assert.equal(
    Object.keys(newJobRecord({ repo: 'a/b', kind: 'build', message: '' }, 1, AT)).includes('message'),
    false,
  );
});

test('two jobs at the same moment get different ids', () => {
  const ids = new Set(Array.from({ length: 50 }, () => newJobRecord({ repo: 'a/b', kind: 'build' }, 1, AT).id));
  assert.is(ids.size, 50);
});

test.run();
