// @deno
// build, the real script: clone and check out exact commits from a real bare repo (force pushes
// included), real litpro, a real `npm ci` of a local `file:` dependency, install skipping.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixtureFiles, lastJson, makeSite } from '../../_helpers/build.ts';
import { git, tmpDir } from '../../_helpers/common.ts';

test('litpro site: first build clones, compiles with real litpro, logs the job', async () => {
  const site = await makeSite(fixtureFiles('litpro-site'));
  const r = await site.run('build', ['octo/site', '--job-id', 'first-build', '--ref', 'refs/heads/main']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^build octo\/site succeeded \(job first-build, [0-9a-f]{12}, [\d.]+ s\)/);
  assert.match(r.stderr, /compile: ok in [\d.]+ s \(litpro\)/);
  const html = readFileSync(path.join(site.repoDir, 'out', 'index.html'), 'utf8');
  assert.match(html, /<h1>Hello from litpro<\/h1>/);
  const log = site.logText();
  assert.match(
    log,
    /^=== shipkit job first-build start \{.*"repo":"octo\/site".*"kind":"build".*"ref":"refs\/heads\/main"/,
  );
  assert.match(log, /\n\d\d:\d\d:\d\d\.\d{3} --- step pull\n/);
  assert.match(log, /--- step install skipped: no package.json/);
  assert.match(log, /\| \.\/out\/index\.html/);
  assert.match(
    log,
    new RegExp(`=== shipkit job first-build end \\{.*"status":"succeeded","exit":0,"sha":"${site.first}"`),
  );
  assert.is(log.trimEnd().split('\n').pop()?.startsWith('=== shipkit job first-build end '), true);
  assert.ok(!existsSync(path.join(site.data, 'audit', 'audit.jsonl')), 'a build hook-server names is not audited');
});

test('later builds fetch and check out exactly the SHA, survive force pushes, clean old output', async () => {
  const site = await makeSite({ 'README.md': 'one\n' });
  assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
  // Typed by hand (no --job-id): in the audit trail, with who and which job.
  const audited = JSON.parse(readFileSync(path.join(site.data, 'audit', 'audit.jsonl'), 'utf8'));
  assert.equal(
    [audited.n, audited.action, audited.from, audited.subject, /^cli .+@/.test(audited.actor)],
    [1, 'build.manual', 'local', 'octo/site', true],
  );
  const second = await site.commit({ 'README.md': 'two\n', 'page.txt': 'page\n' });
  const third = await site.commit({ 'README.md': 'three\n' });
  writeFileSync(path.join(site.repoDir, 'stray-output.txt'), 'from the last build\n');
  // A git killed mid-way by the last job's timeout left its lock behind.
  writeFileSync(path.join(site.repoDir, '.git', 'index.lock'), '');

  // An older commit than the branch head, by SHA: exactly that one, detached.
  let r = await site.run('build', ['octo/site', '--sha', second, '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(lastJson(r.stdout).sha, second);
  assert.is(readFileSync(path.join(site.repoDir, 'README.md'), 'utf8'), 'two\n');
  assert.ok(!existsSync(path.join(site.repoDir, 'stray-output.txt')), 'untracked output removed');
  assert.is((await git(site.repoDir, 'rev-parse', 'HEAD')).stdout.trim(), second);
  assert.is((await git(site.repoDir, 'symbolic-ref', '-q', 'HEAD').nothrow()).exitCode, 1, 'HEAD is detached');

  // No --sha: the head of the configured branch.
  r = await site.run('build', ['octo/site', '--json']);
  assert.is(lastJson(r.stdout).sha, third);

  // A non-fast-forward force push: history rewritten, the build takes the new SHA anyway.
  await git(site.work, 'reset', '--hard', site.first);
  const rewritten = await site.commit({ 'README.md': 'rewritten\n' }, 'rewrite');
  r = await site.run('build', ['octo/site', '--sha', rewritten, '--ref', 'refs/heads/main', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(lastJson(r.stdout).sha, rewritten);
  assert.is(readFileSync(path.join(site.repoDir, 'README.md'), 'utf8'), 'rewritten\n');
  assert.ok(!existsSync(path.join(site.repoDir, 'page.txt')));
  // The commit the force push dropped is still buildable while git has it.
  r = await site.run('build', ['octo/site', '--sha', third.slice(0, 10), '--steps', 'pull', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(lastJson(r.stdout).sha, third);
});

test('npm app: real npm ci of a file: dependency, npm run build, install skipped when unchanged', async () => {
  const site = await makeSite(fixtureFiles('npm-app'));
  let r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, `${r.stderr}\n${site.logText()}`);
  assert.match(site.logText(), /\$ npm ci --no-audit/);
  assert.match(
    readFileSync(path.join(site.repoDir, 'out', 'index.txt'), 'utf8'),
    new RegExp(`^\\*\\*\\*built ${site.first}`),
  );
  assert.ok(existsSync(path.join(site.repoDir, 'node_modules', 'leftpad-local')));

  // Only build.js changes: node_modules survives `git clean`, install is skipped.
  const next = await site.commit({ 'build.js': `${fixtureFiles('npm-app')['build.js']}// changed\n` });
  r = await site.run('build', ['octo/site', '--job-id', 'second']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /install: skipped \(package-lock\.json and node v[\d.]+ unchanged since the install of/);
  assert.match(readFileSync(path.join(site.repoDir, 'out', 'index.txt'), 'utf8'), new RegExp(next));

  // The lockfile changes: installed again.
  await site.commit({ 'package-lock.json': `${fixtureFiles('npm-app')['package-lock.json'].trimEnd()}\n\n` });
  r = await site.run('build', ['octo/site', '--steps', 'pull,install']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /install: ok in/);
  const state = JSON.parse(readFileSync(path.join(site.data, 'state', 'octo__site', 'install.json'), 'utf8'));
  assert.is(state.lockfile, 'package-lock.json');
  assert.match(state.node, /^v\d+/);
});

test('a package with no dependencies is installed once, then skipped (npm makes no node_modules for it)', async () => {
  const pkg = `${JSON.stringify({ name: 'nodeps', version: '1.0.0', private: true, scripts: { build: 'mkdir -p out && echo built > out/done.txt' } }, null, 2)}\n`;
  const lock = `${JSON.stringify({ name: 'nodeps', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'nodeps', version: '1.0.0' } } }, null, 2)}\n`;
  const site = await makeSite({ 'package.json': pkg, 'package-lock.json': lock });
  let r = await site.run('build', ['octo/site', '--steps', 'pull,install,compile']);
  assert.is(r.exitCode, 0, `${r.stderr}\n${site.logText()}`);
  assert.match(r.stderr, /install: ok in/);
  assert.not.ok(existsSync(path.join(site.repoDir, 'node_modules')), 'npm made no node_modules');
  r = await site.run('build', ['octo/site', '--steps', 'pull,install,compile']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /install: skipped \(package-lock\.json and node v[\d.]+ unchanged since the install of/);
  assert.is(site.logText().match(/\$ npm ci /g)?.length, 1, 'npm ci ran once');
  assert.is(readFileSync(path.join(site.repoDir, 'out', 'done.txt'), 'utf8'), 'built\n');

  // A dependency appears (package.json and lockfile): installed again, not skipped.
  const withDep = JSON.parse(pkg);
  withDep.dependencies = { 'leftpad-local': 'file:vendor/leftpad-local' };
  const lockDep = JSON.parse(lock);
  lockDep.packages[''].dependencies = withDep.dependencies;
  lockDep.packages['node_modules/leftpad-local'] = { resolved: 'vendor/leftpad-local', link: true };
  lockDep.packages['vendor/leftpad-local'] = { version: '1.0.0' };
  await site.commit({
    'package.json': JSON.stringify(withDep),
    'package-lock.json': JSON.stringify(lockDep),
    'vendor/leftpad-local/package.json': '{"name":"leftpad-local","version":"1.0.0"}\n',
  });
  r = await site.run('build', ['octo/site', '--steps', 'pull,install']);
  assert.is(r.exitCode, 0, `${r.stderr}\n${site.logText()}`);
  assert.match(r.stderr, /install: ok in/);
  assert.ok(existsSync(path.join(site.repoDir, 'node_modules', 'leftpad-local')));
});

test("compile: from config overrides the default, runs the operator's command line", async () => {
  const site = await makeSite(
    { 'lprc.js': 'module.exports = () => {};\n' },
    'compile: mkdir -p out && echo "$SHIPKIT_REPO $SHIPKIT_SHA" > out/who.txt',
  );
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(path.join(site.repoDir, 'out', 'who.txt'), 'utf8'), `octo/site ${site.first}\n`);
});

test('downloads and upload steps say what they did or skipped', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'upload:\n  - rsync: deploy@web1:/var/www/site/\n    from: out');
  const r = await site.run('build', ['octo/site', '--steps', 'pull,downloads']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(site.logText(), /--- step downloads skipped: no manifest.txt or cloudinary.txt/);
  if (!existsSync(path.join(import.meta.dirname, '../../..', 'lib', 'stages', 'upload', 'index.ts'))) {
    const u = await site.run('build', ['octo/site', '--steps', 'upload']);
    assert.is(u.exitCode, 0, u.stderr);
    assert.match(
      site.logText(),
      /the upload stage is not available in this shipkit \(lib\/stages\/upload\/index.ts is missing\); nothing was uploaded: skipped 1 target\(s\): rsync/,
    );
  }
});

test('downloads and upload run the real stage libraries: a local HTTP file in, a git branch out', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/logo.svg') res.end('<svg>logo</svg>\n');
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const target = path.join(tmpDir(), 'pages.git');
    await git(path.dirname(target), 'init', '--quiet', '--bare', target);
    const site = await makeSite(
      { 'manifest.txt': `# assets\nhttp://127.0.0.1:${port}/logo.svg img/logo.svg\n` },
      `compile: mkdir -p out && cp downloads/img/logo.svg out/ && echo '<h1>site</h1>' > out/index.html\nupload:\n  - git: { remote: "${target}", branch: gh-pages }\n    from: out`,
    );
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 0, `${r.stderr}\n${site.logText()}`);
    assert.is(readFileSync(path.join(site.repoDir, 'downloads', 'img', 'logo.svg'), 'utf8'), '<svg>logo</svg>\n');
    const files = (await git(target, 'ls-tree', '-r', '--name-only', 'gh-pages')).stdout.trim().split('\n').sort();
    assert.equal(files, ['index.html', 'logo.svg']);
    assert.match(site.logText(), /--- step downloads ok/);
    assert.match(site.logText(), /--- step upload ok .*1 target/);
  } finally {
    server.close();
  }
});

test.run();
