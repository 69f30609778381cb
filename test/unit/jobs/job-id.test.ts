// lib/jobs/job-id.ts: the one job id of hook-server's journal and of a build or release run by
// hand; reading still accepts the ids older versions wrote to logs.txt.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  JOB_ID_PATTERN,
  STORED_JOB_ID_PATTERN,
  isStoredJobId,
  newJobId,
  validateJobId,
} from '../../../lib/jobs/job-id.ts';
import { findJob, listJobs, readJobLog } from '../../../lib/jobs/job-log.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('newJobId: UTC time then 6 hex digits', () => {
  assert.match(newJobId(new Date('2026-11-21T13:30:00.456Z')), /^20261121-133000-[0-9a-f]{6}$/);
});

test('newJobId: a burst of ids in one second has no duplicate', () => {
  // 20000 draws of 24 random bits would collide about 12 times; a journal record would be lost.
  const at = new Date('2026-11-21T13:30:00Z');
  const ids = Array.from({ length: 20000 }, () => newJobId(at));
  assert.is(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, JOB_ID_PATTERN);
});

test('ids sort by time', () => {
  const a = newJobId(new Date('2026-01-02T03:04:05Z'));
  const b = newJobId(new Date('2026-01-02T03:04:06Z'));
  const c = newJobId(new Date('2027-01-01T00:00:00Z'));
  assert.equal([c, a, b].sort(), [a, b, c]);
});

// [id, generated format, readable (stored) form]
const ids: Array<[string, boolean, boolean]> = [
  ['20261121-133000-a1b2c3', true, true],
  ['20261121T133000Z-3fa9c1', false, true], // what `build` run by hand wrote before the unification
  ['my_job-7', false, true], // given with --job-id
  ['x'.repeat(64), false, true],
  ['x'.repeat(65), false, false],
  ['', false, false],
  ['../x', false, false],
  ['a/b', false, false],
  ['a b', false, false],
  ['a.b', false, false],
  ['é', false, false],
  ['a\nb', false, false],
  ['20261121-133000-A1B2C3', false, true],
];

for (const [id, generated, stored] of ids) {
  test(`job id ${JSON.stringify(id.slice(0, 30))}: generated format ${generated}, readable ${stored}`, () => {
    assert.is(JOB_ID_PATTERN.test(id), generated);
    assert.is(STORED_JOB_ID_PATTERN.test(id), stored);
    assert.is(isStoredJobId(id), stored);
    if (stored) assert.is(validateJobId(id), id);
    else assert.throws(() => validateJobId(id), /^Invalid job id .*: use 1-64 letters, digits/);
  });
}

test('validateJobId refuses what is not a string', () => {
  for (const bad of [undefined, null, 42, ['a']]) assert.throws(() => validateJobId(bad), /Invalid job id/);
});

test('a logs.txt written with the older id format is still read', async () => {
  const dir = tmpDir();
  const old = '20251001T120000Z-3fa9c1';
  appendFileSync(
    path.join(dir, 'logs.txt'),
    `=== shipkit job ${old} start {"id":"${old}","repo":"octo/site","kind":"build","started":"2025-10-01T12:00:00.000Z","pid":1,"host":"elsewhere"}\n` +
      '12:00:00.100 | hello\n' +
      `=== shipkit job ${old} end {"id":"${old}","status":"succeeded","exit":0,"duration_ms":100,"finished":"2025-10-01T12:00:00.100Z"}\n`,
  );
  assert.equal(
    (await listJobs(dir)).map((j) => [j.id, j.status]),
    [[old, 'succeeded']],
  );
  assert.match((await readJobLog(dir, old)) ?? '', /\| hello/);
  assert.is((await findJob(dir, old))?.summary.exit, 0);
});

test.run();
