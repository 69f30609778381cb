// `build` as shipped (the one file), for a litpro repo: the compile step's litpro node is started
// ahead while git runs (lib/pipeline/steps.ts prestartCompile), and the build gives the same result
// as one that starts it at its turn whatever changed in between: a dirty tracked file, an
// untracked file, a new commit, a changed compile: setting. No node started ahead is left behind.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixtureFiles, makeSite, type Site } from '../../_helpers/build.ts';
import { ROOT, runCommand, runScriptsAs, tmpDir } from '../../_helpers/common.ts';

const outdir = tmpDir('shipkit-bundled-build-');
let site: Site;

/** Nodes started ahead (lib/pipeline/exec.ts's waiter) still running for this site's work folder. */
function waitingNodes(): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (
        cmdline.includes('Socket)({fd:3') &&
        readFileSync(`/proc/${pid}/environ`, 'utf8').includes('SHIPKIT_REPO=octo/site')
      )
        found.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return found;
}

const page = () => readFileSync(path.join(site.repoDir, 'out', 'index.html'), 'utf8');

async function build(): Promise<void> {
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(waitingNodes(), [], 'no node started ahead is left');
}

test('the one file is built', async () => {
  const r = await runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/bundle.ts', 'shipkit', '--outdir', outdir],
    { timeoutMs: 180_000 },
  );
  assert.is(r.exitCode, 0, r.stderr);
  runScriptsAs((name) => [process.execPath, path.join(outdir, 'shipkit.mjs'), name]);
  site = await makeSite(fixtureFiles('litpro-site'), 'steps: [pull, install, compile]');
});

test('a first build and a no-op rebuild weave the page', async () => {
  await build();
  assert.match(page(), /<h1>Hello from litpro<\/h1>/);
  await build();
  assert.match(page(), /<h1>Hello from litpro<\/h1>/);
  assert.match(site.logText(), /--- step compile ok[^\n]*litpro/);
});

test('a changed tracked file and an untracked one in the work tree are undone before litpro runs', async () => {
  writeFileSync(
    path.join(site.repoDir, 'project.md'),
    readFileSync(path.join(site.repoDir, 'project.md'), 'utf8').replace('Hello from litpro', 'Edited on the server'),
  );
  writeFileSync(path.join(site.repoDir, 'stray.md'), '# stray\n');
  await build();
  assert.match(page(), /<h1>Hello from litpro<\/h1>/);
  assert.not.ok(existsSync(path.join(site.repoDir, 'stray.md')));
});

test('a new commit is what litpro weaves', async () => {
  await site.commit({
    'project.md': readFileSync(path.join(site.repoDir, 'project.md'), 'utf8').replace(
      'Hello from litpro',
      'Hello from a new commit',
    ),
  });
  await build();
  assert.match(page(), /<h1>Hello from a new commit<\/h1>/);
});

test('a compile: command instead of litpro runs that command, and litpro again once it is gone', async () => {
  site.writeConfig('steps: [pull, install, compile]\ncompile: mkdir -p out && echo custom > out/custom.txt');
  await build();
  assert.ok(existsSync(path.join(site.repoDir, 'out', 'custom.txt')));
  assert.not.ok(existsSync(path.join(site.repoDir, 'out', 'index.html')));
  site.writeConfig('steps: [pull, install, compile]');
  await build();
  assert.match(page(), /<h1>Hello from a new commit<\/h1>/);
});

test('a litpro that reports a problem still fails the build through the node started ahead', async () => {
  await site.commit({ 'project.md': '# Site\n\n[index.html](#missing "save:")\n' });
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /failed at step compile: litpro reported problems/, r.stderr);
  assert.equal(waitingNodes(), []);
});

test.run();
