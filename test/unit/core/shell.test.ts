// zx's `$` with bash kept from ~/.bashrc (lib/core/shell.ts): a real bash, a HOME whose .bashrc
// leaves a mark, and SHLVL unset as under systemd.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $, bashWithoutRc } from '../../../lib/core/shell.ts';
import { tmpDir } from '../../_helpers/common.ts';

const home = tmpDir();
const mark = path.join(home, 'bashrc-ran');
writeFileSync(path.join(home, '.bashrc'), `touch ${JSON.stringify(mark)}\necho from-bashrc\n`);
const { SHLVL: _shlvl, ...rest } = process.env;
const env = { ...rest, HOME: home };

test.before.each(() => rmSync(mark, { force: true }));

test('the premise: `bash -c` as node starts it for zx, stdin a pipe, reads ~/.bashrc', async () => {
  // What zx does without lib/core/shell.ts (its defaults are shared, so zx's own `$` may be set up
  // by another file of this batch already): node's `shell` option, stdio pipes.
  const child = spawn('echo hi', { env, shell: '/bin/bash', stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve) => child.on('close', resolve));
  assert.ok(existsSync(mark), 'this bash reads ~/.bashrc when its stdin is a socket and SHLVL is unset');
  assert.is(out, 'from-bashrc\nhi\n');
});

test("shipkit's $: the same command, ~/.bashrc not read, the output only the command's", async () => {
  const out = await $({ env, quiet: true })`echo hi`;
  assert.is(out.stdout, 'hi\n');
  assert.not.ok(existsSync(mark));
});

test("shipkit's $: pipefail and quoting as zx gives them", async () => {
  const failed = await $({ env, quiet: true, nothrow: true })`false | cat`;
  assert.is(failed.exitCode, 1, 'set -o pipefail still leads the command');
  const odd = `a b'c"d $HOME`;
  assert.is((await $({ env, quiet: true })`printf %s ${odd}`).stdout, odd);
});

test('bashWithoutRc: spawnSync too; a shell that is not bash, and no shell, pass as they were', async () => {
  const sync = bashWithoutRc(spawnSync)('echo sync', [], { env, shell: '/bin/bash', encoding: 'utf8' });
  assert.is(sync.stdout, 'sync\n');
  assert.not.ok(existsSync(mark));
  const sh = bashWithoutRc(spawnSync)('echo $0', [], { env, shell: '/bin/sh', encoding: 'utf8' });
  assert.is(sh.stdout.trim(), '/bin/sh');
  const plain = bashWithoutRc(spawnSync)('echo', ['plain'], { env, encoding: 'utf8' });
  assert.is(plain.stdout, 'plain\n');
  const child = bashWithoutRc(spawn)('echo', ['async'], { env, shell: '/bin/bash' });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  await new Promise((resolve) => child.on('close', resolve));
  assert.is(out, 'async\n');
  assert.not.ok(existsSync(mark));
});

test.run();
