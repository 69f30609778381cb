// @deno
// build with hostile or broken input: each case checks the exit code, the message, and that
// nothing was written where it should not be.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixtureFiles, lastJson, makeSite, mapLimit } from '../../_helpers/build.ts';

test('unknown repo, traversal names, bad flags: exit 2, nothing written', async () => {
  const site = await makeSite({ 'README.md': 'x\n' });
  const cases: Array<[string[], RegExp]> = [
    [['octo/other'], /Repository octo\/other is not in .*shipkit\.yml \(configured: octo\/site\)/],
    [['../etc'], /Invalid repository name "\.\.\/etc"/],
    [['octo/../../tmp'], /Invalid repository name/],
    [['octo/site', '--sha', 'not-a-sha'], /Invalid --sha "not-a-sha"/],
    [['octo/site', '--ref', '../../x'], /Invalid --ref/],
    [['octo/site', '--ref', '--upload-pack=touch /tmp/x'], /Unknown option --upload-pack/],
    [['octo/site', '--ref=--upload-pack=touch /tmp/x'], /Invalid --ref "--upload-pack/],
    [['octo/site', '--job-id', '../x'], /Invalid job id/],
    [['octo/site', '--steps', 'pull,deploy'], /Unknown step "deploy" in --steps/],
    [['octo/site', '--bogus'], /Unknown option --bogus/],
    [[], /Missing argument/],
  ];
  const results = await mapLimit(cases, 3, ([args]) => site.run('build', args));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i];
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  assert.ok(!existsSync(site.data), 'no data folder was created');
});

test('a config value of the wrong type names the key and its line', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'timeout: soon');
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 2);
  const line =
    readFileSync(site.config, 'utf8')
      .split('\n')
      .findIndex((l) => l.includes('timeout: soon')) + 1;
  assert.match(
    r.stderr,
    new RegExp(`shipkit\\.yml:${line}: repos\\.octo/site\\.timeout: must be a number, got string "soon"`),
  );
  site.writeConfig('', 'logs:\n  max_size: lots');
  const r2 = await site.run('build', ['octo/site']);
  assert.is(r2.exitCode, 2);
  assert.match(r2.stderr, /shipkit\.yml:3: logs\.max_size: must be a size such as 10M/);
  assert.ok(!existsSync(site.data));
});

test('an upload: entry of the wrong type is a configuration error before anything runs', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'upload:\n  - rsync: 5\n    from: out');
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 2, r.stderr);
  const line =
    readFileSync(site.config, 'utf8')
      .split('\n')
      .findIndex((l) => l.includes('rsync: 5')) + 1;
  assert.match(
    r.stderr,
    new RegExp(`shipkit\\.yml:${line}: repos\\.octo/site\\.upload\\[0\\]\\.rsync: must be a non-empty string`),
  );
  assert.ok(!existsSync(site.data));
  // Without the upload step, the rest still builds.
  assert.is((await site.run('build', ['octo/site', '--steps', 'pull'])).exitCode, 0);
});

test('a SHA that does not exist fails the pull step; the job is logged as failed', async () => {
  const site = await makeSite({ 'README.md': 'x\n' });
  const missing = 'deadbeef'.repeat(5);
  const r = await site.run('build', ['octo/site', '--sha', missing, '--job-id', 'nosha', '--json']);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, new RegExp(`build of octo/site failed at step pull: Commit ${missing} does not exist`));
  assert.match(r.stderr, /logs octo\/site --job nosha/);
  const result = lastJson(r.stdout);
  assert.is(result.status, 'failed');
  assert.is(result.step, 'pull');
  assert.match(
    site.logText(),
    /=== shipkit job nosha end \{.*"status":"failed","exit":1,"sha":"deadbeef.*"step":"pull"/,
  );
});

test('broken lockfile fails install; failing compile fails compile, with its output in the log', async () => {
  const files = fixtureFiles('npm-app');
  const site = await makeSite({ ...files, 'package-lock.json': '{ "lockfileVersion": 3, broken' });
  let r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 1);
  assert.match(
    r.stderr,
    /failed at step install: `npm ci --no-audit --no-fund --no-update-notifier --prefer-offline` failed \(exit \d+\)/,
  );
  assert.ok(!existsSync(path.join(site.data, 'state', 'octo__site', 'install.json')), 'no install recorded');

  await site.commit({
    'package-lock.json': files['package-lock.json'],
    'build.js': 'console.log("compiling..."); console.error("syntax error on line 3"); process.exit(3);\n',
  });
  r = await site.run('build', ['octo/site', '--job-id', 'badcompile']);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /failed at step compile: `npm run build` failed \(exit 3\)/);
  assert.match(r.stderr, /\| syntax error on line 3/);
  const log = site.logText();
  assert.match(log, /\| compiling\.\.\./);
  assert.match(log, /!!! step compile failed after [\d.]+ s/);
  assert.not.match(
    log.slice(log.indexOf('job badcompile start')),
    /--- step upload/,
    'steps after the failure do not run',
  );
});

test('litpro reporting an unresolved section fails compile even though litpro exits 0', async () => {
  const site = await makeSite({
    ...fixtureFiles('litpro-site'),
    'project.md': '# Broken\n\n[out.txt](#missing "save:")\n',
  });
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /failed at step compile: litpro reported problems/);
});

test.run();
