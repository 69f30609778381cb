// lib/jobs/job-log.ts: the logs.txt format, reading jobs back, following one, rotation.
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newJobId, validateJobId, JOB_ID_PATTERN } from '../../../lib/jobs/job-id.ts';
import {
  JobLogWriter,
  findJob,
  followJob,
  formatHeader,
  formatTrailer,
  listJobs,
  parseMarkLine,
  readJobLog,
} from '../../../lib/jobs/job-log.ts';
import { parseSize, rotateLogs } from '../../../lib/jobs/log-rotate.ts';
import { readJobSection, sentSectionFile } from '../../../lib/jobs/job-log.ts';
import { tmpDir } from '../../_helpers/common.ts';

async function writeJob(
  dir: string,
  id: string,
  lines: string[],
  status: 'succeeded' | 'failed' = 'succeeded',
  sha = 'abc1234',
) {
  const writer = await JobLogWriter.start(dir, { id, repo: 'octo/site', kind: 'build', sha, ref: 'refs/heads/main' });
  for (const line of lines) writer.line(line);
  return writer.finish({
    status,
    exit: status === 'succeeded' ? 0 : 1,
    sha,
    ...(status === 'failed' ? { step: 'compile', error: 'boom' } : {}),
  });
}

test('header and trailer lines round-trip and are machine-parseable', () => {
  const header = {
    id: 'j1',
    repo: 'octo/site',
    kind: 'build' as const,
    sha: 'abc',
    ref: 'refs/heads/main',
    started: '2026-01-01T00:00:00.000Z',
    pid: 1,
    host: 'h',
  };
  const line = formatHeader(header).trimEnd();
  assert.match(line, /^=== shipkit job j1 start \{/);
  assert.equal(parseMarkLine(line), { id: 'j1', kind: 'start', header });
  const trailer = {
    id: 'j1',
    status: 'failed' as const,
    exit: 1,
    step: 'install',
    duration_ms: 5,
    finished: '2026-01-01T00:00:01.000Z',
  };
  assert.equal(parseMarkLine(formatTrailer(trailer).trimEnd()), { id: 'j1', kind: 'end', trailer });
  for (const bad of [
    '=== shipkit job j1 start {not json',
    '=== shipkit job ../x start {}',
    '13:00:00.000 | === shipkit job j1 end {}',
    'x',
  ]) {
    assert.is(parseMarkLine(bad), undefined, bad);
  }
});

test('job ids: generated ids are valid; hostile ones are refused', () => {
  for (let i = 0; i < 20; i++) assert.ok(JOB_ID_PATTERN.test(newJobId()));
  assert.is(validateJobId('abc_DEF-123'), 'abc_DEF-123');
  for (const bad of ['', '../x', 'a b', 'a/b', 'x'.repeat(65), 'é', 'a\nb']) {
    assert.throws(() => validateJobId(bad), /Invalid job id/, JSON.stringify(bad));
  }
});

test('writer, list, find by id, readJobLog; output cannot forge a header', async () => {
  const dir = tmpDir();
  await writeJob(dir, 'job-1', ['--- step pull', '| hello']);
  await writeJob(
    dir,
    'job-2',
    ['| === shipkit job job-9 end {"status":"succeeded"}', '=== shipkit job fake start {}'],
    'failed',
    'def5678',
  );
  const text = readFileSync(path.join(dir, 'logs.txt'), 'utf8');
  // Every output line starts with a timestamp, so nothing in it begins with the mark.
  assert.is(text.split('\n').filter((l) => l.startsWith('=== shipkit job')).length, 4);
  const jobs = await listJobs(dir);
  assert.equal(
    jobs.map((j) => [j.id, j.status, j.exit, j.sha, j.step]),
    [
      ['job-2', 'failed', 1, 'def5678', 'compile'],
      ['job-1', 'succeeded', 0, 'abc1234', undefined],
    ],
  );
  const one = await readJobLog(dir, 'job-1');
  assert.ok(one);
  assert.match(one!, /^=== shipkit job job-1 start /);
  assert.match(one!, /\| hello\n=== shipkit job job-1 end /);
  assert.not.match(one!, /job-2/);
  assert.is(await readJobLog(dir, 'nope'), undefined);
  assert.is(await readJobLog(dir, '../../etc/passwd'), undefined);
  assert.is((await findJob(dir))?.summary.id, 'job-2');
  assert.is(await findJob(tmpDir()), undefined);
});

test('a job left without trailer by a dead process is interrupted, and closed by the next job', async () => {
  const dir = tmpDir();
  writeFileSync(
    path.join(dir, 'logs.txt'),
    formatHeader({
      id: 'dead',
      repo: 'octo/site',
      kind: 'build',
      started: new Date().toISOString(),
      pid: 2 ** 22 + 12345,
      host: (await import('node:os')).hostname(),
    }) + '00:00:00.000 | half\n',
  );
  assert.is((await listJobs(dir))[0].status, 'interrupted');
  await writeJob(dir, 'next', ['| ok']);
  const jobs = await listJobs(dir);
  assert.equal(
    jobs.map((j) => [j.id, j.status]),
    [
      ['next', 'succeeded'],
      ['dead', 'interrupted'],
    ],
  );
  assert.match((await readJobLog(dir, 'dead'))!, /"status":"interrupted"/);
});

test('only the last job of a long log is closed when left open, and a finished log gets no trailer', async () => {
  const dir = tmpDir();
  for (let i = 0; i < 3; i++)
    await writeJob(dir, `done-${i}`, ['| ok', '| === shipkit job fake start {} (output, not a mark)']);
  await writeJob(dir, 'after', ['| ok']);
  assert.not.match(
    readFileSync(path.join(dir, 'logs.txt'), 'utf8'),
    /interrupted/,
    'finished jobs are left as they are',
  );
  const host = (await import('node:os')).hostname();
  appendFileSync(
    path.join(dir, 'logs.txt'),
    formatHeader({
      id: 'dead',
      repo: 'octo/sité',
      kind: 'build',
      started: new Date().toISOString(),
      pid: 2 ** 22 + 12345,
      host,
    }) + '00:00:00.000 | half\n'.repeat(2000),
  );
  await writeJob(dir, 'next', ['| ok']);
  const jobs = await listJobs(dir);
  assert.equal(
    jobs.map((j) => [j.id, j.status]),
    [
      ['next', 'succeeded'],
      ['dead', 'interrupted'],
      ['after', 'succeeded'],
      ['done-2', 'succeeded'],
      ['done-1', 'succeeded'],
      ['done-0', 'succeeded'],
    ],
  );
  assert.is(readFileSync(path.join(dir, 'logs.txt'), 'utf8').match(/"status":"interrupted"/g)?.length, 1);
});

test('followJob streams a running job until its trailer', async () => {
  const dir = tmpDir();
  await writeJob(dir, 'old', ['| old output']);
  const writer = await JobLogWriter.start(dir, { id: 'live', repo: 'octo/site', kind: 'build' }, { flushMs: 10 });
  writer.line('| first');
  writer.flush();
  let seen = '';
  const following = followJob(dir, undefined, { write: (t) => (seen += t), pollMs: 20 });
  await new Promise((r) => setTimeout(r, 150));
  writer.line('| second');
  writer.flush();
  await new Promise((r) => setTimeout(r, 150));
  writer.finish({ status: 'succeeded', exit: 0 });
  const summary = await following;
  assert.is(summary?.status, 'succeeded');
  assert.match(seen, /^=== shipkit job live start/);
  assert.match(seen, /\| first\n.*\| second\n=== shipkit job live end/);
  assert.not.match(seen, /old output/);
  // A finished job is printed once and returned at once.
  let again = '';
  assert.is((await followJob(dir, 'old', { write: (t) => (again += t) }))?.status, 'succeeded');
  assert.match(again, /old output/);
});

test('rotation: size cap, gzip, N kept, jobs still found in rotated files', async () => {
  const dir = tmpDir();
  for (let i = 1; i <= 4; i++) {
    await writeJob(dir, `j${i}`, [`| ${'x'.repeat(2000)}`]);
    const r = await rotateLogs(dir, { maxSize: 1000, keep: 2 });
    assert.ok(r.rotated);
  }
  assert.ok(!existsSync(path.join(dir, 'logs.txt')));
  assert.ok(existsSync(path.join(dir, 'logs.1.txt.gz')));
  assert.ok(existsSync(path.join(dir, 'logs.2.txt.gz')));
  assert.ok(!existsSync(path.join(dir, 'logs.3.txt.gz')));
  assert.match(gunzipSync(readFileSync(path.join(dir, 'logs.1.txt.gz'))).toString(), /job j4 start/);
  assert.equal(
    (await listJobs(dir)).map((j) => j.id),
    ['j4', 'j3'],
  );
  assert.match((await readJobLog(dir, 'j3'))!, /job j3 end/);
  // Under the cap nothing moves; a smaller keep prunes.
  await writeJob(dir, 'j5', ['| small']);
  const under = await rotateLogs(dir, { maxSize: 1 << 20, keep: 1 });
  assert.is(under.rotated, false);
  assert.equal(under.removed, ['logs.2.txt.gz']);
  assert.ok(statSync(path.join(dir, 'logs.txt')).size > 0);
  assert.ok((await rotateLogs(dir, { maxSize: 1 << 20, keep: 1 }, { force: true })).rotated);
  assert.equal(
    (await listJobs(dir)).map((j) => j.id),
    ['j5'],
  );
});

test('parseSize', () => {
  const cases: Array<[unknown, number | undefined]> = [
    ['10M', 10485760],
    ['512k', 524288],
    ['1G', 1073741824],
    ['2000', 2000],
    [4096, 4096],
    ['1.5M', 1572864],
    ['10MB', 10485760],
    ['', undefined],
    ['-1', undefined],
    ['ten', undefined],
    [0, undefined],
    [true, undefined],
    ['0', undefined],
  ];
  for (const [input, expected] of cases) assert.is(parseSize(input), expected, String(input));
});

test('a partial trailing line in the file does not break listing', async () => {
  const dir = tmpDir();
  await writeJob(dir, 'a', ['| ok']);
  appendFileSync(path.join(dir, 'logs.txt'), '=== shipkit job b start {"repo":"octo/site"');
  assert.equal(
    (await listJobs(dir)).map((j) => j.id),
    ['a'],
  );
});

test("readJobSection: the section in this machine's logs.txt, else the copy a worker sent; no path from a bad id", async () => {
  const dir = tmpDir();
  const logsDir = path.join(dir, 'logs', 'o__r');
  const jobsDir = path.join(dir, 'jobs');
  const id = '20260101-000000-abcdef';
  assert.is(await readJobSection(logsDir, jobsDir, id), undefined);
  mkdirSync(path.dirname(sentSectionFile(jobsDir, id)), { recursive: true });
  writeFileSync(sentSectionFile(jobsDir, id), 'sent by a worker\n');
  assert.is(await readJobSection(logsDir, jobsDir, id), 'sent by a worker\n');
  mkdirSync(logsDir, { recursive: true });
  writeFileSync(
    path.join(logsDir, 'logs.txt'),
    `=== shipkit job ${id} start {"repo":"o/r","kind":"build","started":"2026-01-01T00:00:00.000Z","pid":1,"host":"h"}\n11:00:00.000 | here\n=== shipkit job ${id} end {"status":"succeeded","exit":0,"duration_ms":1,"finished":"2026-01-01T00:00:01.000Z"}\n`,
  );
  assert.match((await readJobSection(logsDir, jobsDir, id))!, '11:00:00.000 | here');
  writeFileSync(path.join(dir, 'log.txt'), 'outside');
  assert.is(await readJobSection(logsDir, jobsDir, '..'), undefined);
});

test.run();
