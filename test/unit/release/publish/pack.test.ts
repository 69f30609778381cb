// Reproducible release tarballs (lib/release/publish/pack.ts): the same folder gives the same bytes
// whatever the files' times and the umask, entries sorted with folders first, modes normalised,
// and what launchfit would refuse (a link out of the folder, a device) refused here first.
import { chmodSync, linkSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { DEFAULT_MTIME } from '../../../../lib/release/format/pack-index.ts';
import { packReproducible } from '../../../../lib/release/publish/pack.ts';
import { runCommand, tmpDir } from '../../../_helpers/common.ts';

const root = tmpDir('shipkit-pack-');
let n = 0;

function app(): string {
  const dir = path.join(root, `app${++n}`);
  mkdirSync(path.join(dir, 'lib'), { recursive: true });
  writeFileSync(path.join(dir, 'server.js'), 'console.log(1)\n');
  writeFileSync(path.join(dir, 'lib', 'b.js'), 'b\n');
  writeFileSync(path.join(dir, 'lib', 'a.js'), 'a\n');
  writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\n');
  chmodSync(path.join(dir, 'run.sh'), 0o700);
  symlinkSync('lib/a.js', path.join(dir, 'main.js'));
  return dir;
}

async function pack(dir: string): Promise<Buffer> {
  const out = path.join(root, `out${++n}.tar.gz`);
  await packReproducible(dir, out);
  return readFileSync(out);
}

async function listing(dir: string): Promise<string[]> {
  const out = path.join(root, `list${++n}.tar.gz`);
  await packReproducible(dir, out);
  const r = await runCommand('env', ['TZ=UTC', 'tar', '-tvzf', out, '--numeric-owner']);
  return r.stdout.trim().split('\n');
}

test('the same folder twice, with other times and modes, gives the same bytes', async () => {
  const a = app();
  const b = app();
  utimesSync(path.join(b, 'server.js'), new Date('2020-01-01'), new Date('2020-01-01'));
  chmodSync(path.join(b, 'server.js'), 0o600);
  chmodSync(path.join(b, 'run.sh'), 0o755);
  assert.equal(await pack(a), await pack(b));
});

test('a hard-linked file (pnpm) is packed as a file: the same bytes as a copy of it', async () => {
  const linked = app();
  const copied = app();
  linkSync(path.join(linked, 'lib', 'a.js'), path.join(linked, 'a-again.js'));
  writeFileSync(path.join(copied, 'a-again.js'), 'a\n');
  writeFileSync(path.join(linked, 'empty'), '');
  linkSync(path.join(linked, 'empty'), path.join(linked, 'lib', 'empty'));
  writeFileSync(path.join(copied, 'empty'), '');
  writeFileSync(path.join(copied, 'lib', 'empty'), '');
  assert.equal(await pack(linked), await pack(copied));
  assert.ok(
    (await listing(linked)).every((line) => !line.startsWith('h')),
    'no hard-link entry',
  );
});

test('entries sorted, folders before their contents, modes 755/644, owner 0, fixed times', async () => {
  const dir = app();
  const lines = await listing(dir);
  const out = path.join(root, 'names.tar.gz');
  await packReproducible(dir, out);
  const names = (await runCommand('tar', ['-tzf', out])).stdout.trim().split('\n');
  assert.equal(names, ['lib/', 'lib/a.js', 'lib/b.js', 'main.js', 'run.sh', 'server.js']);
  const mode = (name: string) =>
    lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} ->`))!.split(/\s+/)[0];
  assert.is(mode('lib/'), 'drwxr-xr-x');
  assert.is(mode('run.sh'), '-rwxr-xr-x');
  assert.is(mode('server.js'), '-rw-r--r--');
  assert.ok(
    lines.every((l) => l.split(/\s+/)[1] === '0/0'),
    'no owner',
  );
  // Files and links carry the fixed time; node-tar's portable mode writes none (0) for folders.
  for (const line of lines)
    assert.match(line, line.startsWith('d') ? ' 1970-01-01 00:00 ' : ' 2000-01-01 00:00 ', `mtime ${DEFAULT_MTIME}`);
});

test('a link out of the folder, an empty folder and a FIFO are refused', async () => {
  const out = path.join(root, 'refused.tar.gz');
  const outside = app();
  symlinkSync('../../etc/passwd', path.join(outside, 'lib', 'evil'));
  const absolute = app();
  symlinkSync('/etc/passwd', path.join(absolute, 'abs'));
  const empty = path.join(root, 'empty');
  mkdirSync(empty);
  const fifo = app();
  await runCommand('mkfifo', [path.join(fifo, 'pipe')]);
  for (const [dir, message] of [
    [outside, /lib\/evil links to \.\.\/\.\.\/etc\/passwd, outside/],
    [absolute, /abs links to \/etc\/passwd, outside/],
    [empty, /is empty; nothing to publish/],
    [fifo, /pipe in .* is not a file, folder or symlink/],
  ] as const) {
    const error = await packReproducible(dir, out).catch((e: unknown) => e);
    assert.instance(error, ValidationError);
    assert.match(String(error), message);
  }
});

test.run();
