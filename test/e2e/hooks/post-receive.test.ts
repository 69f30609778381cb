// @deno
// hooks/post-receive: real `git push` into a bare repo that has the hook installed; the hook
// runs the real build script (or a recorder that shows the exact arguments it got).
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ } from '../../../lib/core/shell.ts';
import { makeSite } from '../../_helpers/build.ts';
import { ROOT, git, gitEnv, scriptCommand, waitFor } from '../../_helpers/common.ts';

const HOOK = path.join(ROOT, 'hooks', 'post-receive');

async function siteWithHook(files: Record<string, string> = { 'README.md': 'x\n' }) {
  const site = await makeSite(
    files,
    'steps: [pull, compile]\ncompile: mkdir -p out && git rev-parse HEAD > out/built-sha.txt',
  );
  const hook = path.join(site.bare, 'hooks', 'post-receive');
  copyFileSync(HOOK, hook);
  chmodSync(hook, 0o755);
  const setConfig = (key: string, value: string) => git(site.bare, 'config', key, value);
  return { site, setConfig };
}

function push(cwd: string, args: string[], env: Record<string, string> = {}) {
  return $({ cwd, env: { ...gitEnv(), ...env }, quiet: true, nothrow: true })`git push ${args}`;
}

/** A stand-in build command that writes the arguments it was given, one a line. */
function recorder(dir: string): { command: string; file: string } {
  const file = path.join(dir, 'args.txt');
  const script = path.join(dir, 'record-args.sh');
  writeFileSync(script, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > ${file}\necho recorded\n`);
  chmodSync(script, 0o755);
  return { command: script, file };
}

test('a push to the branch runs the real build of exactly the pushed commit', async () => {
  const { site, setConfig } = await siteWithHook();
  await setConfig('shipkit.build', scriptCommand('build').join(' '));
  await setConfig('shipkit.config', site.config);
  const sha = await (async () => {
    writeFileSync(path.join(site.work, 'page.txt'), 'new page\n');
    await git(site.work, 'add', '-A');
    await git(site.work, 'commit', '--quiet', '-m', 'page');
    return (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim();
  })();
  const pushed = await push(site.work, ['origin', 'HEAD:refs/heads/main']);
  assert.is(pushed.exitCode, 0, pushed.stderr);
  // The folder is named site.git: the hook builds repo "site", which shipkit.yml has as octo/site.
  assert.match(pushed.stderr, new RegExp(`remote: shipkit: building site main at ${sha}`));
  assert.match(pushed.stderr, /remote: build octo\/site succeeded/);
  assert.is(readFileSync(path.join(site.repoDir, 'out', 'built-sha.txt'), 'utf8').trim(), sha);
  assert.match(site.logText(), new RegExp(`"sha":"${sha}","ref":"refs/heads/main"`));

  // A non-fast-forward force push: the new SHA is built.
  await git(site.work, 'reset', '--hard', site.first);
  writeFileSync(path.join(site.work, 'other.txt'), 'rewritten\n');
  await git(site.work, 'add', '-A');
  await git(site.work, 'commit', '--quiet', '-m', 'rewrite');
  const rewritten = (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim();
  const forced = await push(site.work, ['--force', 'origin', 'HEAD:refs/heads/main']);
  assert.is(forced.exitCode, 0, forced.stderr);
  assert.match(forced.stderr, /forced update/);
  assert.is(readFileSync(path.join(site.repoDir, 'out', 'built-sha.txt'), 'utf8').trim(), rewritten);
  assert.ok(!existsSync(path.join(site.repoDir, 'page.txt')));
});

test('exact arguments; other branches, tags and deletions do not build; SHIPKIT_BUILD wins', async () => {
  const { site, setConfig } = await siteWithHook();
  const rec = recorder(site.base);
  await setConfig('shipkit.build', '/bin/false');
  await setConfig('shipkit.config', site.config);
  await setConfig('shipkit.repo', 'octo/site');
  const env = { SHIPKIT_BUILD: rec.command };

  const sha = await site.commit({ 'a.txt': 'a\n' });
  // makeSite's commit() pushes without the recorder env: the configured /bin/false ran (and failed quietly).
  writeFileSync(path.join(site.work, 'b.txt'), 'b\n');
  await git(site.work, 'add', '-A');
  await git(site.work, 'commit', '--quiet', '-m', 'b');
  const next = (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim();
  const r = await push(site.work, ['origin', 'HEAD:refs/heads/main'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /remote: recorded/);
  assert.equal(readFileSync(rec.file, 'utf8').split('\n').filter(Boolean), [
    'octo/site',
    '--config',
    site.config,
    '--url',
    site.bare,
    '--sha',
    next,
    '--ref',
    'refs/heads/main',
  ]);
  assert.is.not(sha, next);

  const feature = await push(site.work, ['origin', 'HEAD:refs/heads/feature'], env);
  assert.match(feature.stderr, /remote: shipkit: feature does not build \(building: main\)/);
  await git(site.work, 'tag', 'v1');
  const tag = await push(site.work, ['origin', 'refs/tags/v1'], env);
  assert.is(tag.exitCode, 0, tag.stderr);
  assert.not.match(tag.stderr, /building/);
  assert.match(tag.stderr, /remote: shipkit: tag v1 does not build \(only branches do\)/);
  const other = await push(site.work, ['origin', 'HEAD:refs/review/42'], env);
  assert.is(other.exitCode, 0, other.stderr);
  assert.not.match(other.stderr, /building/);
  assert.match(other.stderr, /remote: shipkit: refs\/review\/42 is not a branch; nothing to build/);
  const deleted = await push(site.work, ['origin', ':refs/heads/feature'], env);
  assert.match(deleted.stderr, /remote: shipkit: refs\/heads\/feature deleted; nothing to build/);
});

test('a hostile branch name is passed as one argument, never run by the shell', async () => {
  const { site, setConfig } = await siteWithHook();
  const evil = 'x$(touch${IFS}PWNED);touch${IFS}PWNED2`touch${IFS}PWNED3`';
  await setConfig('shipkit.build', scriptCommand('build').join(' '));
  await setConfig('shipkit.config', site.config);
  await git(site.bare, 'config', '--add', 'shipkit.branch', evil);
  const r = await push(site.work, ['origin', `HEAD:refs/heads/${evil}`]);
  assert.is(r.exitCode, 0, r.stderr);
  // git accepts this ref, so build does too (one ref rule): it is built with
  // the ref as one literal argument, and nothing in it was executed.
  assert.not.match(r.stderr, /Invalid --ref/);
  assert.ok(site.logText().includes(`"ref":"refs/heads/${evil}"`), 'the literal ref in the job log');
  assert.is(
    readFileSync(path.join(site.repoDir, 'out/built-sha.txt'), 'utf8').trim(),
    (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim(),
  );
  for (const dir of [site.bare, site.base, site.work, ROOT]) {
    for (const name of ['PWNED', 'PWNED2', 'PWNED3']) assert.ok(!existsSync(path.join(dir, name)), `${name} in ${dir}`);
  }
});

test('shipkit.async: the push returns at once and the build runs in the background', async () => {
  const { site, setConfig } = await siteWithHook();
  const rec = recorder(site.base);
  await setConfig('shipkit.build', rec.command);
  await setConfig('shipkit.async', 'true');
  writeFileSync(path.join(site.work, 'c.txt'), 'c\n');
  await git(site.work, 'add', '-A');
  await git(site.work, 'commit', '--quiet', '-m', 'c');
  const r = await push(site.work, ['origin', 'HEAD:refs/heads/main']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(
    r.stderr,
    /remote: shipkit: build started in the background; follow it with: shipkit logs site --follow/,
  );
  await waitFor(() => existsSync(rec.file) && readFileSync(rec.file, 'utf8').includes('--ref'), {
    what: 'the background build',
  });
  assert.match(readFileSync(rec.file, 'utf8'), /^site\n--url\n/);
});

test.run();
