// `shipkit build` run by another user than the one whose clone it is (a newcomer's first trap): as the
// Debian package has it, hook-server (user shipkit) cloned and built, then root runs a build by
// hand. Refused before anything is written (exit 2), saying whom to run it as; the command it
// gives builds. A clone source that is another user's bare repo (hooks/post-receive-webhook's
// file:// path) is explained too. Root only: it needs a second user.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from '../../_helpers/build.ts';
import { makeBareRepo, rootBuildUser, runCommand, runScript, scriptCommand, tmpDir } from '../../_helpers/common.ts';

/** Every file under `dir` with its owner, size and modification time. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      const info = statSync(full);
      out.push(`${path.relative(dir, full)} ${info.uid} ${entry.isFile() ? `${info.size} ${info.mtimeMs}` : ''}`);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out.sort();
}

test('root builds a clone the shipkit user made: refused before anything is written, with the runuser command, which builds', async () => {
  const account = await rootBuildUser("building as root in another user's clone needs root and a second user");
  if (!account) return;
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull]');
  chmodSync(site.base, 0o755);
  // hook-server as its own user cloned and built once: its folders, its bare repo to fetch from.
  const first = await site.run('build', ['octo/site']);
  assert.is(first.exitCode, 0, first.stderr);
  execFileSync('chown', ['-R', `${account.user}:`, site.data, site.bare]);
  const before = snapshot(site.data);

  const r = await runScript('shipkit', ['build', 'octo/site', '--config', site.config]);
  assert.is(r.exitCode, 2, r.stderr);
  const how = `runuser -u ${account.user} -- shipkit build octo/site`;
  assert.is(
    r.stderr.trim().split('\n').pop(),
    `error: ${site.repoDir} belongs to ${account.user}, and this build runs as root: git refuses to work in another user's clone ("dubious ownership"; ` +
      `trusting it in safe.directory, as git suggests, would leave files there that ${account.user}'s jobs cannot change). Run it as ${account.user}, with the same options: ${how}`,
  );
  assert.not.match(r.stderr, /git config --global/);
  assert.equal(snapshot(site.data), before, "nothing written, nothing root's");

  // The command it gives, with shipkit on the PATH as the package puts it there.
  const bin = path.join(site.base, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'shipkit'), `#!/bin/sh\nexec ${scriptCommand('shipkit').join(' ')} "$@"\n`, {
    mode: 0o755,
  });
  const again = await runCommand('sh', ['-c', `${how} --config ${site.config}`], {
    env: { PATH: `${bin}:${process.env.PATH}` },
    timeoutMs: 120_000,
  });
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /build octo\/site succeeded/);
  const notTheirs = snapshot(site.data).filter((line) => Number(line.split(' ')[1]) !== account.uid);
  assert.equal(notTheirs, [], "every file stays the shipkit user's");
});

test("a clone source that is another user's bare repo: the pull says git refuses it and how to trust that one repository", async () => {
  const account = await rootBuildUser('a repository owned by another user needs root and a second user');
  if (!account) return;
  const base = tmpDir('shipkit-build-source-');
  const repo = await makeBareRepo(path.join(base, 'git'), 'site');
  execFileSync('chown', ['-R', `${account.user}:`, repo.bare]);
  const config = path.join(base, 'shipkit.yml');
  writeFileSync(config, `data: ${path.join(base, 'data')}\nrepos:\n  octo/site:\n    steps: [pull]\n`);
  const r = await runScript('shipkit', ['build', 'octo/site', '--config', config, '--url', `file://${repo.bare}`]);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    `failed at step pull: git refuses to read ${repo.bare}: it belongs to another user than root, whom this job runs as ("dubious ownership"). ` +
      `If you trust that repository, let root read it: git config --global --add safe.directory ${repo.bare}; or set url: for the repo to an address a git server serves it at (ssh://…).`,
  );
  assert.equal(readdirSync(path.join(base, 'data', 'repos')), [], 'no clone');
});

test.run();
