// Install as one file (README "Install"): dist/shipkit.mjs copied alone into an empty folder
// under /tmp (no node_modules anywhere up the tree), with a PATH that has only node, git and the shell.
// It is multi-call — `node shipkit.mjs SCRIPT`, or a link named after a script — and
// hook-server starts its jobs through the same file, litpro included.
import { copyFileSync, existsSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../helpers.ts';
import { assertStatusPage, buildLitproThroughHookServer, nodeGitAndShellOnly } from '../install-helpers.ts';

const scripts = readdirSync(path.join(ROOT, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'shipkit.ts').map((f) => f.slice(0, -3));
const folder = tmpDir('shipkit-onefile-');
const bundle = path.join(folder, 'shipkit.mjs');
let PATH = '';

test('npm run bundle writes dist/shipkit.mjs; it is copied alone', async () => {
  const r = await runCommand(process.execPath, ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/bundle.ts', 'shipkit'], { timeoutMs: 180_000 });
  assert.is(r.exitCode, 0, r.stderr);
  copyFileSync(path.join(ROOT, 'dist', 'shipkit.mjs'), bundle);
  assert.equal(readdirSync(folder), ['shipkit.mjs']);
  for (let dir = folder; dir !== '/'; dir = path.dirname(dir)) assert.not.ok(existsSync(path.join(dir, 'node_modules')), dir);
  PATH = await nodeGitAndShellOnly();
});

test('shipkit.mjs with no arguments lists every script; an unknown one is exit 2', async () => {
  const r = await runCommand('node', [bundle], { cwd: folder, env: { PATH } });
  assert.is(r.exitCode, 0, r.stderr);
  for (const name of scripts) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
  const bad = await runCommand('node', [bundle, 'nope'], { cwd: folder, env: { PATH } });
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /Unknown script "nope"\. Run `shipkit` to list the scripts\./);
});

for (const name of scripts) {
  test(`node shipkit.mjs ${name} --help, and a link named ${name}`, async () => {
    const r = await runCommand('node', [bundle, name, '--help'], { cwd: folder, env: { PATH } });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Usage:\\s+${name}`));
    const link = path.join(folder, name);
    if (!existsSync(link)) symlinkSync('shipkit.mjs', link);
    const viaLink = await runCommand(link, ['--version'], { cwd: '/', env: { PATH } });
    assert.is(viaLink.exitCode, 0, viaLink.stderr);
    assert.match(viaLink.stdout, new RegExp(`^${name} \\d`));
  });
}

test('a signed push to the bundled hook-server builds a litpro repo end to end (jobs run through the same file)', async () => {
  const { job, log, html, pages } = await buildLitproThroughHookServer(['node', bundle, 'hook-server'], { cwd: folder, path: PATH });
  assert.is(job.state, 'succeeded', log);
  assert.match(log, /compile: ok in [\d.]+ s \(litpro\)|--- step compile/);
  assert.match(html, /<h1>Hello from litpro<\/h1>/);
  assertStatusPage(pages, job.id);
});

test.run();
