// lib/core/procfs.ts: /proc files read into one kept buffer give what readFileSync gives, a file
// larger than that buffer included (it grows), and a missing one throws as readFileSync does.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { childrenOf, keepsChildLists, readProcFile } from '../../../lib/core/procfs.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

test('/proc/self files read as readFileSync reads them', () => {
  assert.is(readProcFile('/proc/self/environ'), readFileSync('/proc/self/environ', 'latin1'));
  const stat = readProcFile(`/proc/${process.pid}/stat`);
  assert.ok(stat.startsWith(`${process.pid} (`), stat);
});

test('a file larger than the buffer, then a small one: each whole, nothing of the other', () => {
  const dir = tmpDir();
  const large = Buffer.alloc(100_000);
  for (let i = 0; i < large.length; i++) large[i] = i % 251;
  writeFileSync(path.join(dir, 'large'), large);
  writeFileSync(path.join(dir, 'small'), 'one\0two\0');
  assert.is(readProcFile(path.join(dir, 'large')), large.toString('latin1'));
  assert.is(readProcFile(path.join(dir, 'small')), 'one\0two\0');
  assert.is(readProcFile(path.join(dir, 'large')).length, 100_000);
});

test('a file that is gone throws ENOENT', () => {
  assert.throws(
    () => readProcFile('/proc/0/stat'),
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );
});

test("childrenOf: the live children from the threads' lists; a zombie left out; none of a process that is gone", async () => {
  if (!keepsChildLists()) {
    console.log('skipped: this kernel keeps no /proc/PID/task/TID/children lists (CONFIG_PROC_CHILDREN)');
    return;
  }
  const shell = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
  // `sleep 0` ends at once and `sleep 30` (exec'd in its parent's place) never reaps it: a zombie.
  const reaper = spawn('/bin/sh', ['-c', 'sleep 0 & exec sleep 30'], { stdio: 'ignore' });
  try {
    // The child is the shell's own fork until it execs sleep: wait for the exec, not only the fork.
    const kids = await waitFor(
      () => {
        const found = childrenOf(shell.pid!);
        return found.length === 1 && readProcFile(`/proc/${found[0]}/stat`).includes('(sleep)') ? found : undefined;
      },
      { what: 'the sleep below the shell' },
    );
    assert.match(readProcFile(`/proc/${kids![0]}/stat`), /\(sleep\)/);
    await waitFor(() => readProcFile(`/proc/${reaper.pid}/stat`).includes('(sleep)'), { what: 'the exec' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(childrenOf(reaper.pid!), [], 'the zombie is not a live child');
    assert.equal(childrenOf(999_999_999), []);
  } finally {
    shell.kill('SIGKILL');
    reaper.kill('SIGKILL');
  }
});

test.run();
