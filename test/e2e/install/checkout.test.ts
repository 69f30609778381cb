// @each-node
// Install from a checkout (README "Install"): every scripts/*.ts is executable and runs from any
// working folder — /tmp, a git hook (cwd = the bare repo), a bare `env -i` environment — because
// its shebang finds the checkout's own tsx, not one in the current folder. And the config that
// `npm start` (hook-server's first start) writes, ./.shipkit/shipkit.yml, is found by every script.
// The commands it runs are shown in README.md (Install) and docs/install.md (from a checkout).
import { readdirSync, readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import { $ } from '../../../lib/core/shell.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { git, makeBareRepo, ROOT, runCommand, startScript, tmpDir } from '../../_helpers/common.ts';

const scripts = readdirSync(path.join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const bare = { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` };

test('every scripts/*.ts is committed executable (git mode 100755)', async () => {
  const listed = (await $({ cwd: ROOT })`git ls-files -s scripts`).stdout.trim().split('\n');
  assert.is(listed.length, scripts.length);
  for (const line of listed) assert.match(line, /^100755 /, line);
});

for (const name of scripts) {
  test(`scripts/${name}.ts --help runs from /tmp with only PATH set (env -i)`, async () => {
    const cwd = tmpDir('shipkit-cwd-');
    const r = await runCommand('env', ['-i', `PATH=${bare.PATH}`, path.join(ROOT, 'scripts', `${name}.ts`), '--help'], {
      cwd,
    });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /Usage/);
    assert.is(r.stderr, '');
  });
}

test('a git post-receive hook runs a script by its checkout path (cwd = the bare repo)', async () => {
  const base = tmpDir();
  const repo = await makeBareRepo(base, 'site');
  const hook = path.join(repo.bare, 'hooks', 'post-receive');
  writeFileSync(hook, `#!/bin/sh\nexec ${path.join(ROOT, 'scripts', 'logs.ts')} --version\n`);
  chmodSync(hook, 0o755);
  writeFileSync(path.join(repo.work, 'more.txt'), 'more\n');
  await git(repo.work, 'add', '-A');
  await git(repo.work, 'commit', '--quiet', '-m', 'more');
  const pushed = await git(repo.work, 'push', 'origin', 'HEAD:refs/heads/main');
  const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
  assert.match(pushed.stderr, new RegExp(`remote: logs ${version.replace(/\./g, '\\.')}`), pushed.stderr);
});

test('after `npm start` (first start) build, logs, release and upload find ./.shipkit/shipkit.yml', async () => {
  const folder = tmpDir('shipkit-start-');
  const base = tmpDir();
  const repo = await makeBareRepo(base, 'site', {
    'release.sh': '#!/bin/sh\necho "released $SHIPKIT_TAG"\n',
    'out/index.html': 'hi\n',
  });
  await git(repo.work, 'update-index', '--chmod=+x', 'release.sh');
  await git(repo.work, 'commit', '--quiet', '-m', 'executable release.sh');
  await git(repo.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  await git(repo.work, 'tag', 'v1');
  await git(repo.work, 'push', '--quiet', 'origin', 'v1');
  const server = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: folder });
  assert.is(await server.stop(), 0);
  const config = path.join(folder, '.shipkit', 'shipkit.yml');
  assert.ok(existsSync(config), server.output());
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      /^repos: \{\}$/m,
      `repos:\n  octo/site:\n    url: ${repo.bare}\n    upload:\n      - rsync: deploy@127.0.0.1:/nowhere/\n        from: out`,
    ),
  );
  const run = (name: string, ...args: string[]) =>
    runCommand(path.join(ROOT, 'scripts', `${name}.ts`), args, { cwd: folder, env: { SHIPKIT_CONFIG: undefined } });

  const build = await run('build', 'octo/site', '--steps', 'pull');
  assert.is(build.exitCode, 0, build.stderr);
  assert.ok(
    existsSync(path.join(folder, '.shipkit', 'repos', 'octo__site', 'release.sh')),
    'built in the first-run data folder',
  );
  const logs = await run('logs', 'octo/site', '--list', '--json');
  assert.is(logs.exitCode, 0, logs.stderr);
  assert.is(JSON.parse(logs.stdout).length, 1);
  const release = await run('release', 'octo/site', '--tag', 'v1');
  assert.is(release.exitCode, 0, release.stderr);
  const upload = await run('upload', 'octo/site', '--dry-run');
  assert.is.not(upload.exitCode, 2, upload.stderr);
  assert.not.match(upload.stderr, /No config file/);
  assert.match(upload.stdout + upload.stderr, /deploy@127\.0\.0\.1:\/nowhere\//);
});

test('`npm ci` of a checkout warns of no engine on this node: every locked package, dev ones included, runs on Node 20', async () => {
  // npm checks the engines recorded in the lockfile; a dry run in a copy leaves node_modules alone.
  const copy = tmpDir('shipkit-npm-ci-');
  for (const file of ['package.json', 'package-lock.json'])
    writeFileSync(path.join(copy, file), readFileSync(path.join(ROOT, file)));
  const r = await runCommand('npm', ['ci', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: copy,
    timeoutMs: 120_000,
  });
  assert.is(r.exitCode, 0, r.stderr);
  assert.not.match(r.stdout + r.stderr, /EBADENGINE/, `on node ${process.version}`);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.is(pkg.engines.node, '>=20');
});

test.run();
