// lib/core/procfs.ts: /proc files read into one kept buffer give what readFileSync gives, a file
// larger than that buffer included (it grows), and a missing one throws as readFileSync does.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readProcFile } from '../../../lib/core/procfs.ts';
import { tmpDir } from '../../_helpers/common.ts';

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

test.run();
