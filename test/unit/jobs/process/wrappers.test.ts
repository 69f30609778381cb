// jobWrappers (lib/jobs/process/wrappers.ts) on a /proc made of files: only `sh -c WRAPPER
// shipkit-job DIR/ID/status-N …` under the given jobs folder counts, by its pid.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jobWrappers } from '../../../../lib/jobs/process/wrappers.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('the wrappers of jobs under the folder, by pid; other processes and folders are not', async () => {
  const proc = tmpDir('shipkit-proc-');
  const jobs = '/var/lib/shipkit/jobs';
  const processes: Record<string, string[]> = {
    '101': ['/bin/sh', '-c', 'WRAPPER', 'shipkit-job', `${jobs}/20261128-101010-abcdef/status-2`, 'build', 'o/r'],
    '102': ['/bin/sh', '-c', 'WRAPPER', 'shipkit-job', `/elsewhere/jobs/20261128-101010-000000/status-1`, 'build'],
    '103': ['/bin/sh', '-c', 'WRAPPER', 'other-name', `${jobs}/20261128-101010-111111/status-1`, 'build'],
    '104': ['/bin/sh', '-c', 'WRAPPER', 'shipkit-job', `${jobs}/20261128-101010-222222/output.log`, 'build'],
    '105': ['node', 'server.js'],
  };
  for (const [pid, argv] of Object.entries(processes)) {
    mkdirSync(path.join(proc, pid));
    writeFileSync(path.join(proc, pid, 'cmdline'), `${argv.join('\0')}\0`);
  }
  mkdirSync(path.join(proc, 'self')); // not a pid
  mkdirSync(path.join(proc, '106')); // gone while read: no cmdline
  assert.equal([...(await jobWrappers(jobs, proc))], [[101, '20261128-101010-abcdef']]);
});

test('a /proc that cannot be read: none', async () => {
  assert.equal(await jobWrappers('/x/jobs', '/nonexistent-proc'), new Map());
});

test.run();
