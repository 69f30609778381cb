// openRegularFile and readRegularFile (lib/core/regular-file.ts) on real files, links, a FIFO and
// a device: only a regular file with one link opens; the rest are refused by name, at once (a FIFO
// with no writer never blocks the open), and a missing file keeps its ENOENT for the caller.
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import { openRegularFile, readRegularFile } from '../../../lib/core/regular-file.ts';
import { tmpDir } from '../../_helpers/common.ts';

let dir: string;

test.before(() => {
  dir = tmpDir('shipkit-regular-file-');
  writeFileSync(path.join(dir, 'plain'), 'hello\n');
  symlinkSync(path.join(dir, 'plain'), path.join(dir, 'link'));
  symlinkSync('/dev/zero', path.join(dir, 'zero'));
  writeFileSync(path.join(dir, 'twice'), 'x');
  linkSync(path.join(dir, 'twice'), path.join(dir, 'twice-2'));
  mkdirSync(path.join(dir, 'folder'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(error, ValidationError);
  return (error as Error).message;
}

test('a regular file opens at its size and reads whole', async () => {
  const { handle, size } = await openRegularFile(path.join(dir, 'plain'));
  await handle.close();
  assert.is(size, 6);
  assert.is((await readRegularFile(path.join(dir, 'plain'), 100)).toString(), 'hello\n');
});

test('links, a FIFO, a device and a folder are refused by name, without waiting', async () => {
  const cases: Array<[string, RegExp]> = [
    ['link', /is a symbolic link: refused, nothing was read/],
    ['zero', /is a symbolic link/],
    ['fifo', /is a named pipe \(FIFO\), not a regular file/],
    ['folder', /is a folder, not a regular file/],
    ['twice', /has 2 hard links/],
  ];
  const started = Date.now();
  for (const [name, message] of cases) {
    const text = await refusal(
      openRegularFile(path.join(dir, name), { what: `The part ${name}`, advice: 'Use another.' }),
    );
    assert.match(text, message, name);
    assert.match(text, new RegExp(`^The part ${name} .* Use another\\.$`));
  }
  assert.match(await refusal(openRegularFile('/dev/zero')), /is a character device/);
  assert.ok(Date.now() - started < 5_000, 'nothing blocked');
});

test('a second hard link is accepted when allowed; a file too large to read whole is refused', async () => {
  const { handle } = await openRegularFile(path.join(dir, 'twice-2'), { allowHardLinks: true });
  await handle.close();
  assert.match(await refusal(readRegularFile(path.join(dir, 'plain'), 3)), /is 6 bytes, more than the 3/);
});

test('a missing file keeps its ENOENT', async () => {
  const error = await openRegularFile(path.join(dir, 'none')).catch((e: NodeJS.ErrnoException) => e);
  assert.is((error as NodeJS.ErrnoException).code, 'ENOENT');
});

test.run();
