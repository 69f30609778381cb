// zx's `$` with bash kept from ~/.bashrc (lib/core/shell.ts): a real bash, a HOME whose .bashrc
// leaves a mark, and SHLVL unset as under systemd.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ as zx$ } from 'zx/core';
import { $, bashWithoutRc } from '../../../lib/core/shell.ts';
import { tmpDir } from '../../_helpers/common.ts';

const home = tmpDir();
const mark = path.join(home, 'bashrc-ran');
writeFileSync(path.join(home, '.bashrc'), `touch ${JSON.stringify(mark)}\necho from-bashrc\n`);
const { SHLVL: _shlvl, ...rest } = process.env;
const env = { ...rest, HOME: home };

test.before.each(() => rmSync(mark, { force: true }));

test("the premise: zx's own $ (bash -c, stdin a pipe) reads ~/.bashrc", async () => {
  const out = await zx$({ env, quiet: true })`echo hi`;
  assert.ok(existsSync(mark), 'this bash reads ~/.bashrc when its stdin is a socket and SHLVL is unset');
  assert.is(out.stdout, 'from-bashrc\nhi\n');
});

test("shipkit's $: the same command, ~/.bashrc not read, the output only the command's", async () => {
  const out = await $({ env, quiet: true })`echo hi`;
  assert.is(out.stdout, 'hi\n');
  assert.not.ok(existsSync(mark));
});

test("shipkit's $: a caller's own spawn (a build run as its repo's user) is kept from ~/.bashrc too", async () => {
  const own = (file: string, args: readonly string[], options: SpawnOptions) => spawn(file, args, options);
  const out = await $({ env, quiet: true, spawn: own as typeof spawn })`echo own`;
  assert.is(out.stdout, 'own\n');
  assert.not.ok(existsSync(mark));
});

test("shipkit's $ leaves zx's own defaults as they were", async () => {
  await $({ env, quiet: true })`true`;
  assert.is(zx$.spawn, spawn);
  assert.is(zx$.spawnSync, spawnSync);
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
