// Rotation of a repo's job log (lib/jobs/log-rotate.ts) on real files: logs.txt gzipped to
// logs.1.txt.gz past max_size, older ones shifted up, those past `keep` deleted (also when keep
// shrinks), nothing done below the cap; sizes as shipkit.yml writes them.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSize, rotateLogs } from '../../../lib/jobs/log-rotate.ts';
import { tmpDir } from '../../_helpers/common.ts';

const root = tmpDir('shipkit-rotate-');
let n = 0;
const folder = () => {
  const dir = path.join(root, `repo${++n}`);
  mkdirSync(dir);
  return dir;
};
const gz = (dir: string, i: number) => gunzipSync(readFileSync(path.join(dir, `logs.${i}.txt.gz`))).toString();

test('below max_size nothing moves; at it logs.txt becomes logs.1.txt.gz, whole', async () => {
  const dir = folder();
  writeFileSync(path.join(dir, 'logs.txt'), 'job 1\n');
  assert.equal(await rotateLogs(dir, { maxSize: 100, keep: 3 }), { rotated: false, size: 6, removed: [] });
  assert.ok(existsSync(path.join(dir, 'logs.txt')));
  writeFileSync(path.join(dir, 'logs.txt'), 'x'.repeat(100));
  const result = await rotateLogs(dir, { maxSize: 100, keep: 3 });
  assert.equal(result, { rotated: true, size: 100, removed: [] });
  assert.not.ok(existsSync(path.join(dir, 'logs.txt')));
  assert.is(gz(dir, 1), 'x'.repeat(100));
});

test('older rotations shift up and the one past keep is deleted', async () => {
  const dir = folder();
  for (let round = 1; round <= 4; round++) {
    writeFileSync(path.join(dir, 'logs.txt'), `round ${round}\n`);
    await rotateLogs(dir, { maxSize: 1, keep: 2 });
  }
  assert.equal(readdirSync(dir).sort(), ['logs.1.txt.gz', 'logs.2.txt.gz']);
  assert.is(gz(dir, 1), 'round 4\n');
  assert.is(gz(dir, 2), 'round 3\n');
});

test('a smaller keep prunes without a rotation; keep 0 keeps no old log; force rotates a small one', async () => {
  const dir = folder();
  for (let round = 1; round <= 3; round++) {
    writeFileSync(path.join(dir, 'logs.txt'), `round ${round}\n`);
    await rotateLogs(dir, { maxSize: 1, keep: 5 });
  }
  const pruned = await rotateLogs(dir, { maxSize: 1000, keep: 1 });
  assert.equal(pruned.removed.sort(), ['logs.2.txt.gz', 'logs.3.txt.gz']);
  writeFileSync(path.join(dir, 'logs.txt'), 'small\n');
  assert.is((await rotateLogs(dir, { maxSize: 1000, keep: 1 }, { force: true })).rotated, true);
  assert.is(gz(dir, 1), 'small\n');
  writeFileSync(path.join(dir, 'logs.txt'), 'dropped\n');
  await rotateLogs(dir, { maxSize: 1, keep: 0 });
  assert.equal(readdirSync(dir), []);
});

test('no logs.txt yet: nothing to do', async () => {
  assert.equal(await rotateLogs(folder(), { maxSize: 1, keep: 3 }, { force: true }), {
    rotated: false,
    size: 0,
    removed: [],
  });
});

test('parseSize: numbers and k/m/g with optional i and b; anything else is undefined', () => {
  assert.is(parseSize('10M'), 10 * 1024 ** 2);
  assert.is(parseSize('512k'), 512 * 1024);
  assert.is(parseSize('1GiB'), 1024 ** 3);
  assert.is(parseSize(' 1.5 mb '), 1.5 * 1024 ** 2);
  assert.is(parseSize('2000'), 2000);
  assert.is(parseSize(4096.7), 4096);
  for (const bad of ['0', '-1M', '10T', 'ten', '', 0, -5, Infinity, null, undefined, {}])
    assert.is(parseSize(bad), undefined, String(bad));
});

test.run();
