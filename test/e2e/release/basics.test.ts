// @deno
// release REPO --tag TAG, the real script: a tag pushed to a real bare repo, the repo's
// release.sh run with SHIPKIT_REPO/TAG/SHA, its exit code, and the broken cases.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lastJson, makeSite } from '../../_helpers/build.ts';
import { git, runCommand, runScript } from '../../_helpers/common.ts';

const RELEASE_SH = `#!/bin/sh
set -e
echo "releasing $SHIPKIT_REPO $SHIPKIT_TAG at $SHIPKIT_SHA"
printf '%s %s %s\\n' "$SHIPKIT_REPO" "$SHIPKIT_TAG" "$SHIPKIT_SHA" > released.txt
cat VERSION.txt
`;

async function tagged(files: Record<string, string>, tag: string, repoYaml = '') {
  const site = await makeSite(files, repoYaml);
  await git(site.work, 'tag', tag);
  await git(site.work, 'push', '--quiet', 'origin', `refs/tags/${tag}`);
  return site;
}

async function makeExecutable(site: Awaited<ReturnType<typeof makeSite>>, file: string) {
  chmodSync(path.join(site.work, file), 0o755);
  await git(site.work, 'add', file);
  await git(site.work, 'commit', '--quiet', '-m', 'executable');
  await git(site.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
}

test('release checks out the tag and runs release.sh with SHIPKIT_REPO/TAG/SHA', async () => {
  const site = await makeSite({ 'release.sh': RELEASE_SH, 'VERSION.txt': 'version one\n' });
  await makeExecutable(site, 'release.sh');
  await git(site.work, 'tag', 'v1.0.0');
  const tagSha = (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim();
  await git(site.work, 'push', '--quiet', 'origin', 'refs/tags/v1.0.0');
  await site.commit({ 'VERSION.txt': 'version two (after the tag)\n' });

  const r = await site.run('release', ['octo/site', '--tag', 'v1.0.0', '--job-id', 'rel-1', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const result = lastJson(r.stdout);
  assert.is(result.kind, 'release');
  assert.is(result.status, 'succeeded');
  assert.is(result.sha, tagSha);
  assert.is(readFileSync(path.join(site.repoDir, 'released.txt'), 'utf8'), `octo/site v1.0.0 ${tagSha}\n`);
  const log = site.logText();
  assert.match(log, /=== shipkit job rel-1 start \{.*"kind":"release".*"ref":"refs\/tags\/v1\.0\.0"/);
  assert.match(log, new RegExp(`\\| releasing octo/site v1.0.0 at ${tagSha}`));
  assert.match(log, /\| version one\n/);
  assert.match(log, /=== shipkit job rel-1 end \{.*"status":"succeeded","exit":0/);
  // logs shows it like a build.
  const shown = await site.run('logs', ['octo/site', '--job', 'rel-1']);
  assert.match(shown.stdout, /releasing octo\/site v1\.0\.0/);
});

test("the script's exit code is the release's; a configured script path is used", async () => {
  const site = await tagged(
    { 'scripts/ship.sh': '#!/bin/sh\necho "shipping failed" >&2\nexit 3\n' },
    'v2',
    'release: scripts/ship.sh',
  );
  chmodSync(path.join(site.work, 'scripts/ship.sh'), 0o755);
  await git(site.work, 'add', '.');
  await git(site.work, 'commit', '--quiet', '-m', 'x');
  await git(site.work, 'tag', '-f', 'v2');
  await git(site.work, 'push', '--quiet', '--force', 'origin', 'refs/tags/v2');
  const r = await site.run('release', ['octo/site', '--tag', 'refs/tags/v2']);
  assert.is(r.exitCode, 3, r.stderr);
  assert.match(r.stderr, /release of octo\/site failed at step release: `\.\/scripts\/ship\.sh` failed \(exit 3\)/);
  assert.match(r.stderr, /\| shipping failed/);
  assert.match(site.logText(), /"status":"failed","exit":3/);
});

test("templates/release.sh runs as a repo's release script (npm and release publish stubbed)", async () => {
  const template = readFileSync(path.join(import.meta.dirname, '../../..', 'templates', 'release.sh'), 'utf8');
  const site = await makeSite({ 'release.sh': template, 'package.json': '{}\n' });
  await makeExecutable(site, 'release.sh');
  await git(site.work, 'tag', 'v1.4.0');
  await git(site.work, 'push', '--quiet', 'origin', 'refs/tags/v1.4.0');
  const bin = path.join(site.base, 'bin');
  const calls = path.join(site.base, 'calls.txt');
  mkdirSync(bin);
  for (const name of ['npm', 'shipkit']) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${calls}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  const r = await site.run('release', ['octo/site', '--tag', 'v1.4.0'], { PATH: `${bin}:${process.env.PATH}` });
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(readFileSync(calls, 'utf8').trim().split('\n'), [
    'npm ci --no-audit --no-fund',
    'npm run build',
    'shipkit release publish dist --name site --platform gnu-linux --version 1.4.0 --key /etc/shipkit/release-key.asc --passphrase-file /etc/shipkit/release-key.pass --to /srv/app-updates/site --keep 5',
  ]);
  assert.match(site.logText(), /\| releasing site 1\.4\.0 from [0-9a-f]{40}/);
  // Run by hand, outside `release`, it says how it is meant to be run.
  const direct = await runCommand('sh', [path.join(import.meta.dirname, '../../..', 'templates', 'release.sh')], {
    env: { SHIPKIT_REPO: undefined },
  });
  assert.is.not(direct.exitCode, 0);
  assert.match(direct.stderr, /run this through: shipkit release REPO --tag TAG/);
});

test('--help shows both forms', async () => {
  const r = await runScript('release', ['--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /release REPO --tag TAG/);
  assert.match(r.stdout, /release publish DIR --name APP/);
});

test.run();
