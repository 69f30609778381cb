// The downloads record (DIR/.downloads.json) is saved on the way and at the end. A save that
// fails (here: the folder is not there yet) must not stop the next one from writing the record.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { recordSaver, type DownloadsRecord } from '../../../lib/stages/downloads.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('a failed save does not keep the next save from writing the record', async () => {
  const dir = path.join(await tmpDir(), 'later');
  const record: DownloadsRecord = { version: 1, files: {} };
  const saver = recordSaver(dir, record);
  let failed: unknown;
  await saver.save().catch((error) => {
    failed = error;
  });
  assert.is((failed as NodeJS.ErrnoException)?.code, 'ENOENT');
  await fs.mkdir(dir);
  await saver.save();
  assert.equal(JSON.parse(await fs.readFile(path.join(dir, '.downloads.json'), 'utf8')), { version: 1, files: {} });
});

test.run();
