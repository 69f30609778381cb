// release promote's copy: one read that copies and hashes; flags refused before any DEST is read.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { copyHashing, promoteRelease, type PromoteOptions } from '../../../../lib/release/publish/promote.ts';
import { tmpDir } from '../../../_helpers/common.ts';

let base: string;
test.before(() => {
  base = tmpDir();
});

test('copyHashing copies byte for byte and returns the sha256 and size of what it copied', async () => {
  for (const size of [0, 1, 4 * 1024 * 1024, 9 * 1024 * 1024 + 7]) {
    const from = path.join(base, `in-${size}`);
    const bytes = randomBytes(size);
    writeFileSync(from, bytes);
    const to = path.join(base, `out-${size}`);
    const got = await copyHashing(from, to);
    assert.equal(got, { sha256: createHash('sha256').update(bytes).digest('hex'), size, linked: false });
    assert.ok(readFileSync(to).equals(bytes));
  }
});

test('copyHashing never replaces a file (the temp name must be new)', async () => {
  const from = path.join(base, 'in-1');
  try {
    await copyHashing(from, from);
    assert.unreachable();
  } catch (error) {
    assert.match(String(error), /EEXIST/);
  }
});

test('bad flags are refused before any DEST is read', async () => {
  const dest = path.join(base, 'never');
  const opts: PromoteOptions = {
    app: 'my-app',
    version: '1.1',
    from: dest,
    to: `${dest}2`,
    key: 'none.asc',
    log: silentLogger,
  };
  const cases: Array<[Partial<PromoteOptions>, RegExp]> = [
    [{ version: '1.x' }, /Invalid VERSION/],
    [{ app: '../x' }, /app name/],
    [{ force: { reason: ' ' } }, /--force needs --reason/],
    [{ toEnv: 'a b' }, /environment name/],
  ];
  for (const [more, want] of cases) {
    try {
      await promoteRelease({ ...opts, ...more });
      assert.unreachable();
    } catch (error) {
      assert.match(String(error), want);
    }
  }
  assert.is(existsSync(dest), false);
});

test.run();
