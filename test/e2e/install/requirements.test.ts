// @each-node
// What the one file needs besides node and git (README "Install"): bash, which zx runs every
// command with, and npm for repos with a package.json. A machine without one is told which, in
// words, with exit 2 (its setup, not the work, is wrong); it used to read "Cannot read properties
// of undefined (reading 'on')". hook-server's job wrapper uses shell builtins only, so a PATH of
// node, git and bash (no coreutils: no mv) records how each job ended.
import { copyFileSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeBareRepo, ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';
import { nodeGitAndShellOnly, startListening } from '../../_helpers/install.ts';
import { deliverGithub, pushPayload, waitForJobState, writeConfig } from '../../fixtures/hooks/deliveries.ts';

const folder = tmpDir('shipkit-needs-');
const bundle = path.join(folder, 'shipkit.mjs');
const base = tmpDir('shipkit-needs-world-');
let noBash = '';
let noCoreutils = '';
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
let config = '';

test('the one file, copied alone; a PATH of node and git only, and one of node, git and bash', async () => {
  const outdir = tmpDir('shipkit-needs-dist-');
  const r = await runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/bundle.ts', 'shipkit', '--outdir', outdir],
    { timeoutMs: 180_000 },
  );
  assert.is(r.exitCode, 0, r.stderr);
  copyFileSync(path.join(outdir, 'shipkit.mjs'), bundle);
  noBash = path.join(tmpDir('shipkit-path-'), 'bin');
  mkdirSync(noBash);
  symlinkSync(process.execPath, path.join(noBash, 'node'));
  symlinkSync((await runCommand('sh', ['-c', 'command -v git'])).stdout.trim(), path.join(noBash, 'git'));
  noCoreutils = await nodeGitAndShellOnly();
  repo = await makeBareRepo(path.join(base, 'git'), 'site', {
    'README.md': '# site\n',
    'package.json': '{"name":"site","version":"1.0.0","dependencies":{"left-pad":"1.3.0"}}\n',
  });
  config = writeConfig(base, { repos: { 'octo/site': { url: repo.bare, steps: ['pull'] } } });
});

test('without bash: `build` and `hook-server` name what is missing and exit 2', async () => {
  for (const argv of [
    ['build', 'octo/site'],
    ['hook-server', '--listen', '127.0.0.1:0'],
  ]) {
    const r = await runCommand('node', [bundle, ...argv, '--config', config], {
      cwd: folder,
      env: { PATH: noBash, HOME: base, HOOK_SECRET: 's', HOOK_TOKEN: 't' },
    });
    assert.is(r.exitCode, 2, `${argv[0]}: ${r.stderr}`);
    assert.match(r.stderr, `shipkit needs bash on the PATH to run commands (not found in PATH=${noBash}). Install it`);
    assert.not.match(r.stderr, /Cannot read properties|TypeError|at .*\.mjs/);
    assert.is(r.stdout, '');
  }
});

test('without bash: --help still answers, and scripts that run no command still work', async () => {
  const help = await runCommand('node', [bundle, 'build', '--help'], { cwd: folder, env: { PATH: noBash } });
  assert.is(help.exitCode, 0, help.stderr);
  assert.match(help.stdout, /^Usage: build REPO/);
  const logs = await runCommand('node', [bundle, 'logs', 'octo/site', '--list', '--config', config], {
    cwd: folder,
    env: { PATH: noBash, HOME: base },
  });
  assert.not.match(logs.stderr, /needs bash/);
  assert.ok(logs.exitCode === 0 || logs.exitCode === 1, logs.stderr);
});

test('node, git and bash but no coreutils: a hook-server job runs and its end is on disk (no `mv: not found`)', async () => {
  const server = await startListening(['node', bundle, 'hook-server', '--config', config, '--listen', '127.0.0.1:0'], {
    cwd: folder,
    env: { PATH: noCoreutils, HOME: base, HOOK_SECRET: 'secret', HOOK_TOKEN: 'token', NO_COLOR: '1' },
  });
  try {
    const delivery = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: repo.first, cloneUrl: repo.bare }),
      'secret',
    );
    assert.is(delivery.status, 202, JSON.stringify(delivery.json));
    const job = await waitForJobState(server.url, 'token', delivery.json.job, ['succeeded', 'failed'], 60_000);
    const output = readFileSync(path.join(base, 'data', 'jobs', job.id, 'output.log'), 'utf8');
    assert.is(job.state, 'succeeded', output);
    assert.not.match(output, /not found/);
    assert.is(readFileSync(path.join(base, 'data', 'jobs', job.id, 'status-1'), 'utf8'), '0\n');
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
});

test('an npm repo without npm: the install step says npm is needed, and where it looked', async () => {
  const r = await runCommand('node', [bundle, 'build', 'octo/site', '--steps', 'pull,install', '--config', config], {
    cwd: folder,
    env: { PATH: noCoreutils, HOME: base },
  });
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    /failed at step install: shipkit needs npm on the PATH to install a repo's dependencies \(it has a package\.json\) \(not found in PATH=/,
  );
});

test.run();
