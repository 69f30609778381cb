// @deno
// release with broken or hostile input: a missing or non-executable script, bad tags and names.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite, mapLimit } from '../../_helpers/build.ts';
import { git } from '../../_helpers/common.ts';

async function tagged(files: Record<string, string>, tag: string, repoYaml = '') {
  const site = await makeSite(files, repoYaml);
  await git(site.work, 'tag', tag);
  await git(site.work, 'push', '--quiet', 'origin', `refs/tags/${tag}`);
  return site;
}

test('release.sh missing or not executable: exit 1 with the fix; nothing run', async () => {
  let site = await tagged({ 'README.md': 'no script\n' }, 'v1');
  let r = await site.run('release', ['octo/site', '--tag', 'v1']);
  assert.is(r.exitCode, 1);
  assert.match(
    r.stderr,
    /failed at step release: The release script release\.sh does not exist at v1; add it to the repo/,
  );

  site = await tagged({ 'release.sh': '#!/bin/sh\ntouch ran.txt\n' }, 'v1');
  r = await site.run('release', ['octo/site', '--tag', 'v1']);
  assert.is(r.exitCode, 1);
  assert.match(
    r.stderr,
    /The release script release\.sh is not executable; run `git update-index --chmod=\+x release\.sh`/,
  );
  assert.ok(!existsSync(path.join(site.repoDir, 'ran.txt')));
});

test('bad tag, missing tag, unknown repo, traversal in release: → exit 2', async () => {
  const site = await tagged({ 'README.md': 'x\n' }, 'v1');
  const cases: Array<[string[], RegExp]> = [
    [['octo/site'], /Missing --tag TAG/],
    [['octo/site', '--tag', '../v1'], /Invalid --tag/],
    [['octo/site', '--tag', 'v1;rm -rf /'], /Invalid --tag/],
    [['nope/site', '--tag', 'v1'], /Repository nope\/site is not in/],
    [['../x', '--tag', 'v1'], /Invalid repository name/],
    [['octo/site', '--tag', 'v1', '--job-id', 'a/b'], /Invalid job id/],
  ];
  const results = await mapLimit(cases, 3, ([args]) => site.run('release', args));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i];
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  site.writeConfig('release: ../../bin/evil.sh');
  const r = await site.run('release', ['octo/site', '--tag', 'v1']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /shipkit\.yml:\d+: repos\.octo\/site\.release: must be a path inside the repo/);
  assert.ok(!existsSync(site.data));
  // A tag that does not exist fails the pull step.
  site.writeConfig();
  const missing = await site.run('release', ['octo/site', '--tag', 'v9.9.9']);
  assert.is(missing.exitCode, 1);
  assert.match(missing.stderr, /failed at step pull: refs\/tags\/v9\.9\.9 does not exist/);
});

test.run();
