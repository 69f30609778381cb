// File-system helpers (lib/core/fs.ts): atomic writes that readers never see half-done, no temp files
// left behind on success or failure, modes, ensureDir, pathExists.
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  atomicWriteFile,
  canAccess,
  ensureDir,
  hashFile,
  pathExists,
  readFileTail,
  replaceViaTemp,
  sha256File,
  syncDir,
  tempSibling,
} from '../../../lib/core/fs.ts';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir('shipkit-fsx-');
let n = 0;
const fresh = () => {
  const d = path.join(dir, `case-${++n}`);
  mkdirSync(d);
  return d;
};

test('tempSibling: same folder, hidden, tagged, unique', () => {
  const file = path.join(dir, 'VERSION');
  const names = new Set(Array.from({ length: 100 }, () => tempSibling(file, 'dl')));
  assert.is(names.size, 100);
  for (const name of names) {
    assert.is(path.dirname(name), dir);
    assert.match(path.basename(name), new RegExp(`^\\.VERSION\\.dl-${process.pid}-[0-9a-f]{8}$`));
  }
  assert.match(path.basename(tempSibling(file)), /^\.VERSION\.tmp-/);
});

// [label, data, expected bytes]
const writes: Array<[string, string | Uint8Array, Buffer]> = [
  ['a string', 'CURRENT 1.2.3 app-1.2.3.tar.gz\n', Buffer.from('CURRENT 1.2.3 app-1.2.3.tar.gz\n')],
  ['unicode', 'ünïcødé ✓\n', Buffer.from('ünïcødé ✓\n')],
  ['bytes', new Uint8Array([0, 1, 2, 255]), Buffer.from([0, 1, 2, 255])],
  ['empty', '', Buffer.alloc(0)],
  ['1 MB', 'x'.repeat(1 << 20), Buffer.from('x'.repeat(1 << 20))],
];

for (const [label, data, want] of writes) {
  test(`atomicWriteFile: ${label}, no temp file left`, async () => {
    const d = fresh();
    const file = path.join(d, 'out.txt');
    await atomicWriteFile(file, data);
    assert.equal(readFileSync(file), want);
    assert.equal(readdirSync(d), ['out.txt']);
  });
}

test('atomicWriteFile replaces an existing file and applies the mode', async () => {
  const d = fresh();
  const file = path.join(d, 'state.json');
  writeFileSync(file, 'old contents that are longer than the new ones');
  await atomicWriteFile(file, '{}', { mode: 0o600 });
  assert.is(readFileSync(file, 'utf8'), '{}');
  assert.is(statSync(file).mode & 0o777, 0o600);
  await atomicWriteFile(file, '{"a":1}');
  assert.is(statSync(file).mode & 0o777, 0o644 & ~process.umask());
  assert.equal(readdirSync(d), ['state.json']);
});

test('atomicWriteFile over a symlink replaces the link, never writes through it', async () => {
  const d = fresh();
  const outside = path.join(dir, `outside-${n}.txt`);
  writeFileSync(outside, 'precious');
  const link = path.join(d, 'current');
  symlinkSync(outside, link);
  await atomicWriteFile(link, 'new');
  assert.is(readFileSync(outside, 'utf8'), 'precious');
  assert.ok(!lstatSync(link).isSymbolicLink());
  assert.is(readFileSync(link, 'utf8'), 'new');
});

test('atomicWriteFile failures: missing folder, target is a folder — an error, nothing left behind', async () => {
  const d = fresh();
  try {
    await atomicWriteFile(path.join(d, 'no', 'such', 'dir', 'f'), 'x');
    assert.unreachable('should throw');
  } catch (error) {
    assert.is((error as NodeJS.ErrnoException).code, 'ENOENT');
  }
  assert.equal(readdirSync(d), []);
  mkdirSync(path.join(d, 'taken'));
  writeFileSync(path.join(d, 'taken', 'inside'), 'keep');
  try {
    await atomicWriteFile(path.join(d, 'taken'), 'x');
    assert.unreachable('should throw');
  } catch (error) {
    assert.match(String((error as NodeJS.ErrnoException).code), /EISDIR|ENOTEMPTY|EEXIST/);
  }
  assert.equal(readdirSync(d), ['taken'], 'the temp file was removed');
  assert.is(readFileSync(path.join(d, 'taken', 'inside'), 'utf8'), 'keep');
});

test('readers never see a half-written file while writers race', async () => {
  const d = fresh();
  const file = path.join(d, 'VERSION');
  const a = `A${'a'.repeat(512 * 1024)}\n`;
  const b = `B${'b'.repeat(512 * 1024)}\n`;
  await atomicWriteFile(file, a);
  let stop = false;
  let reads = 0;
  const bad: string[] = [];
  const reader = (async () => {
    while (!stop) {
      const text = await readFile(file, 'utf8');
      reads++;
      if (text !== a && text !== b) bad.push(`${text.length} bytes starting ${JSON.stringify(text.slice(0, 2))}`);
    }
  })();
  await Promise.all(
    Array.from({ length: 3 }, async (_, w) => {
      for (let i = 0; i < 15; i++) await atomicWriteFile(file, (i + w) % 2 ? a : b);
    }),
  );
  stop = true;
  await reader;
  assert.equal(bad, [], `torn reads out of ${reads}`);
  assert.ok(reads > 0);
  assert.equal(readdirSync(d), ['VERSION'], 'no temp files left');
});

test('ensureDir: recursive, idempotent, with a mode', async () => {
  const d = fresh();
  const deep = path.join(d, 'a', 'b', 'c');
  await ensureDir(deep);
  await ensureDir(deep);
  assert.ok(statSync(deep).isDirectory());
  await ensureDir(path.join(d, 'private'), 0o700);
  assert.is(statSync(path.join(d, 'private')).mode & 0o777, 0o700);
  writeFileSync(path.join(d, 'file'), '');
  try {
    await ensureDir(path.join(d, 'file', 'sub'));
    assert.unreachable('a file in the way');
  } catch (error) {
    assert.match(String((error as NodeJS.ErrnoException).code), /ENOTDIR|EEXIST/);
  }
});

test('pathExists: files, folders, missing, dangling symlinks', async () => {
  const d = fresh();
  writeFileSync(path.join(d, 'f'), '');
  symlinkSync(path.join(d, 'nowhere'), path.join(d, 'dangling'));
  assert.is(await pathExists(path.join(d, 'f')), true);
  assert.is(await pathExists(d), true);
  assert.is(await pathExists(path.join(d, 'missing')), false);
  assert.is(await pathExists(path.join(d, 'f', 'under-a-file')), false);
  assert.is(await pathExists(path.join(d, 'dangling')), false, 'stat follows links: a dangling link does not exist');
});

test('syncDir never throws, even for a missing folder', async () => {
  await syncDir(fresh());
  await syncDir(path.join(dir, 'does-not-exist'));
});

test('replaceViaTemp: the filled temp file replaces the target; a failing fill leaves the old file and no temp', async () => {
  const d = fresh();
  const target = path.join(d, 'app.tar.gz');
  writeFileSync(target, 'old');
  let seen = '';
  await replaceViaTemp(
    target,
    async (temp) => {
      seen = temp;
      assert.is(path.dirname(temp), d);
      writeFileSync(temp, 'new');
      assert.is(readFileSync(target, 'utf8'), 'old', 'readers see the old file while the new one is written');
    },
    { tag: 'upload', durable: true },
  );
  assert.match(path.basename(seen), /^\.app\.tar\.gz\.upload-/);
  assert.is(readFileSync(target, 'utf8'), 'new');
  await replaceViaTemp(target, async (temp) => {
    writeFileSync(temp, 'half');
    throw new Error('disk full');
  }).then(
    () => assert.unreachable(),
    (error: Error) => assert.is(error.message, 'disk full'),
  );
  assert.is(readFileSync(target, 'utf8'), 'new');
  assert.equal(readdirSync(d), ['app.tar.gz']);
});

test('canAccess follows links to their target, and Deno answers as Node does', async () => {
  const d = fresh();
  writeFileSync(path.join(d, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(d, 'plain.txt'), 'x\n');
  chmodSync(path.join(d, 'plain.txt'), 0o644);
  symlinkSync('run.sh', path.join(d, 'link-run'));
  symlinkSync('plain.txt', path.join(d, 'link-plain'));
  symlinkSync('missing', path.join(d, 'link-dangling'));
  const names = ['run.sh', 'plain.txt', 'link-run', 'link-plain', 'link-dangling', 'missing'];
  const expected = [true, false, true, false, false, false];
  const onNode = await Promise.all(names.map((n) => canAccess(path.join(d, n), 1 /* X_OK */)));
  assert.equal(onNode, expected);
  // Deno's own fs.access judges a link by the link's mode (rwx): a link to a plain file would pass.
  const script = `import { canAccess } from ${JSON.stringify(path.join(ROOT, 'lib/core/fs.ts'))};
    console.log(JSON.stringify(await Promise.all(${JSON.stringify(names)}.map((n) => canAccess(${JSON.stringify(d)} + '/' + n, 1)))));`;
  const r = await runCommand(path.join(ROOT, 'node_modules/.bin/deno'), ['eval', '--quiet', '--ext=ts', script]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), expected);
});

test('hashFile: sha256 and md5 of real files, streamed', async () => {
  const d = fresh();
  const file = path.join(d, 'hello');
  writeFileSync(file, 'hello world');
  assert.is(await hashFile(file, 'md5'), '5eb63bbbe01eeed093cb22bb8f5acdc3');
  assert.is(await sha256File(file), 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9');
  writeFileSync(file, '');
  assert.is(await hashFile(file, 'sha256'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('readFileTail: the last bytes of a long file, all of a short one, empty for an empty one', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'out.log');
  writeFileSync(file, `${'x'.repeat(100_000)}the end`);
  assert.is((await readFileTail(file, 7)).toString(), 'the end');
  writeFileSync(file, 'short');
  assert.is((await readFileTail(file, 2000)).toString(), 'short');
  writeFileSync(file, '');
  assert.is((await readFileTail(file, 10)).length, 0);
  let code: string | undefined;
  await readFileTail(path.join(dir, 'missing'), 10).catch((error) => {
    code = error.code;
  });
  assert.is(code, 'ENOENT');
});

test.run();
