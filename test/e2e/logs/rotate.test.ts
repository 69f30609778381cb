// @deno
// logs, the real script: bad input, and `logs rotate` on logs written by real builds.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite, mapLimit } from '../../_helpers/build.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

test('bad input: unknown job, hostile job id, unknown repo, mixed flags', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull]');
  const none = await site.run('logs', ['octo/site']);
  assert.is(none.exitCode, 0);
  assert.match(none.stderr, /No jobs for octo\/site yet/);
  assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
  const cases: Array<[string[], number, RegExp]> = [
    [['octo/site', '--job', 'nope'], 1, /No job nope in the logs of octo\/site/],
    [['octo/site', '--job', '../../etc/passwd'], 2, /Invalid job id/],
    [['other/site'], 2, /Repository other\/site is not in/],
    [['../site'], 2, /Invalid repository name/],
    [['octo/site', '--list', '--follow'], 2, /Use --list on its own/],
    [['octo/site', '--keep', '3'], 2, /--keep belongs to `logs rotate`/],
    [['rotate', '--max-size', 'huge'], 2, /--max-size must be a size/],
    [['rotate', '--keep=-1'], 2, /--keep must be a whole number/],
  ];
  const results = await mapLimit(cases, 3, ([args]) => site.run('logs', args));
  for (const [i, [args, code, message]] of cases.entries()) {
    const r = results[i];
    assert.is(r.exitCode, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('logs rotate: size cap, kept files, skips a repo whose job is running', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull, compile]\ncompile: seq 1 200');
  for (let i = 0; i < 3; i++) {
    assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
    const r = await site.run('logs', ['rotate', '--max-size', '1k', '--keep', '2']);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /octo\/site: rotated logs\.txt \(\d+ bytes\) to logs\.1\.txt\.gz/);
  }
  assert.equal(readdirSync(site.logsDir).sort(), ['logs.1.txt.gz', 'logs.2.txt.gz']);
  // Jobs in rotated files are still listed.
  const list = await site.run('logs', ['octo/site', '--list', '--json']);
  assert.is(JSON.parse(list.stdout).length, 2);
  let r = await site.run('logs', ['rotate', 'octo/site', '--json']);
  assert.equal(JSON.parse(r.stdout), [{ repo: 'octo/site', rotated: false, size: 0, removed: [] }]);

  // The build holds its job until the test lets it go (a fixed sleep ran out under load before rotate looked).
  const release = path.join(tmpDir(), 'release-the-build');
  site.writeConfig(`steps: [pull, compile]\ncompile: while [ ! -e ${release} ]; do sleep 0.1; done`);
  const building = site.run('build', ['octo/site']);
  await waitFor(() => existsSync(path.join(site.data, 'state', 'octo__site', 'job.lock')), {
    what: 'the job lock',
    timeoutMs: 30_000,
  });
  r = await site.run('logs', ['rotate', '--force']);
  writeFileSync(release, '');
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /octo\/site: skipped: a job is running/);
  assert.is((await building).exitCode, 0);
});

test.run();
