// Reading a target back (lib/stages/upload/read-back.ts) on s3rver: the files directly under a
// prefix (not those below it), one file downloaded, a missing one is false, not an error.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { uploadFiles } from '../../../../lib/stages/upload/index.ts';
import { downloadTargetFile, listTargetFiles } from '../../../../lib/stages/upload/read-back.ts';
import { s3rverEnv, startS3rver } from '../../../fixtures/s3rver.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const s3 = await startS3rver('updates');
const env = { ...process.env, ...s3rverEnv(s3.endpoint) };
// Set when this file's tests start, not at import: the unit batch imports every file first.
test.before(() => void Object.assign(process.env, env));
test.after(() => s3.close());

test('list the files under a prefix, download one; a missing one is false', async () => {
  const from = tmpDir('shipkit-readback-');
  mkdirSync(path.join(from, 'old'));
  writeFileSync(path.join(from, 'VERSION'), 'CURRENT 1.0 web-linux-1.0.tar.gz\n');
  writeFileSync(path.join(from, 'web-linux-1.0.tar.gz'), 'tarball');
  writeFileSync(path.join(from, 'old', 'web-linux-0.9.tar.gz'), 'older');
  await uploadFiles({
    from,
    to: 's3://updates/web',
    files: ['web-linux-1.0.tar.gz', 'old/web-linux-0.9.tar.gz', 'VERSION'],
    log: silentLogger,
  });
  assert.equal((await listTargetFiles('s3://updates/web', env)).sort(), ['VERSION', 'web-linux-1.0.tar.gz']);
  assert.equal(await listTargetFiles('s3://updates/nothing', env), []);
  const file = path.join(from, 'VERSION.read');
  assert.is(await downloadTargetFile('s3://updates/web', 'VERSION', file, env), true);
  assert.is(readFileSync(file, 'utf8'), 'CURRENT 1.0 web-linux-1.0.tar.gz\n');
  assert.is(await downloadTargetFile('s3://updates/web', 'VERSION.sig', path.join(from, 'sig'), env), false);
});

test.run();
