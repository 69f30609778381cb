// A worker's built tree as the preview machine takes it: packed without .git, unpacked with files,
// folders and symbolic links only, no set-id bits, nothing outside the folder.
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packTree, unpackTree } from '../../../lib/previews/remote-build.ts';
import { runCommand, tmpDir } from '../../_helpers/common.ts';

test('packed without .git; unpacked with its files, links and modes, set-id bits dropped', async () => {
  const src = tmpDir('skrb-src-');
  mkdirSync(path.join(src, '.git', 'objects'), { recursive: true });
  writeFileSync(path.join(src, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  mkdirSync(path.join(src, 'node_modules', '.bin'), { recursive: true });
  writeFileSync(path.join(src, 'server.js'), 'console.log(1)\n');
  writeFileSync(path.join(src, 'node_modules', 'tool.js'), '#!/usr/bin/env node\n');
  chmodSync(path.join(src, 'node_modules', 'tool.js'), 0o4755);
  symlinkSync('../tool.js', path.join(src, 'node_modules', '.bin', 'tool'));
  const into = path.join(tmpDir('skrb-into-'), 'src');
  await unpackTree(await packTree(src), into);
  assert.not.ok(existsSync(path.join(into, '.git')), 'no .git');
  assert.is(readFileSync(path.join(into, 'server.js'), 'utf8'), 'console.log(1)\n');
  assert.is(readlinkSync(path.join(into, 'node_modules', '.bin', 'tool')), '../tool.js');
  assert.ok(lstatSync(path.join(into, 'node_modules', '.bin', 'tool')).isSymbolicLink());
  assert.is(statSync(path.join(into, 'node_modules', 'tool.js')).mode & 0o7777, 0o755, 'setuid dropped');
});

test('a tree that cannot be packed fails the call, not the process', async () => {
  const error = await packTree(path.join(tmpDir('skrb-gone-'), 'missing')).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(error?.message ?? 'packed', /ENOENT/);
});

test('hard-linked files (as pnpm makes them) are packed as files, the empty ones too', async () => {
  const src = tmpDir('skrb-hard-');
  for (const name of ['one', 'two', 'three']) writeFileSync(path.join(src, name), `${name}\n`.repeat(500));
  writeFileSync(path.join(src, 'empty'), '');
  // Listed before their targets in a folder of their own, and after them here.
  mkdirSync(path.join(src, 'a'));
  for (const name of ['one', 'two', 'three', 'empty']) {
    linkSync(path.join(src, name), path.join(src, 'a', name));
    linkSync(path.join(src, name), path.join(src, `${name}-again`));
  }
  const into = path.join(tmpDir('skrb-into-'), 'src');
  await unpackTree(await packTree(src), into);
  for (const name of ['one', 'two', 'three', 'empty'])
    for (const copy of [name, `a/${name}`, `${name}-again`]) {
      assert.ok(lstatSync(path.join(into, copy)).isFile(), `${copy} is a file`);
      assert.is(readFileSync(path.join(into, copy), 'utf8'), name === 'empty' ? '' : `${name}\n`.repeat(500));
    }
});

/** A gzip'd tar of `files` in `cwd`, made by GNU tar (`-P`: names as given, `..` kept). */
async function tarball(cwd: string, files: string[], keepNames = false): Promise<Buffer> {
  const out = path.join(tmpDir('skrb-tar-'), 'tree.tar.gz');
  const made = await runCommand('tar', ['-C', cwd, '-czf', out, ...(keepNames ? ['-P'] : []), ...files]);
  assert.is(made.exitCode, 0, made.stderr);
  return readFileSync(out);
}

test('a hard link or a device in the tree is refused, naming it', async () => {
  const src = tmpDir('skrb-link-');
  writeFileSync(path.join(src, 'a'), 'a\n');
  linkSync(path.join(src, 'a'), path.join(src, 'b'));
  const into = path.join(tmpDir('skrb-into-'), 'src');
  const error = await unpackTree(await tarball(src, ['a', 'b']), into).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(error?.message ?? 'accepted', /holds what a built tree may not: "b" is a Link entry/);
});

test('a path outside the folder is never written', async () => {
  const base = tmpDir('skrb-out-');
  const src = path.join(base, 'inner');
  mkdirSync(src);
  writeFileSync(path.join(base, 'escape.txt'), 'x\n');
  const packed = await tarball(src, ['../escape.txt'], true);
  const root = tmpDir('skrb-dest-');
  const into = path.join(root, 'deep', 'src');
  await unpackTree(packed, into).catch(() => undefined);
  assert.not.ok(existsSync(path.join(root, 'deep', 'escape.txt')), 'nothing beside the folder');
});

test.run();
