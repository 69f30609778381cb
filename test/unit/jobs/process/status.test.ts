// An attempt's status file: a whole line with the exit code, or nothing.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readStatus } from '../../../../lib/jobs/process/status.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('readStatus: a whole line is the exit code with the file time; empty, partial or missing is undefined', async () => {
  const dir = tmpDir();
  const file = (name: string, text: string) => (writeFileSync(path.join(dir, name), text), path.join(dir, name));
  const done = await readStatus(file('ok', '3\n'));
  assert.is(done?.code, 3);
  assert.ok(Number.isFinite(Date.parse(done!.time)));
  assert.is(await readStatus(file('empty', '')), undefined);
  assert.is(await readStatus(file('partial', '1')), undefined);
  assert.is(await readStatus(file('junk', 'x\n')), undefined);
  assert.is(await readStatus(file('long', '1234\n')), undefined);
  assert.is(await readStatus(path.join(dir, 'missing')), undefined);
});

test.run();
