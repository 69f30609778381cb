// @deno
// upload to git+REMOTE#BRANCH against real bare repositories: the folder becomes the branch's
// whole tree on top of its history, no commit when unchanged, rejected pushes reported.
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { git, gitEnv, makeBareRepo, runScript, tmpDir } from '../../_helpers/common.ts';

const env = {
  ...gitEnv(),
  GIT_AUTHOR_NAME: 'Deployer',
  GIT_AUTHOR_EMAIL: 'deploy@example.com',
  GIT_COMMITTER_NAME: 'Deployer',
  GIT_COMMITTER_EMAIL: 'deploy@example.com',
} as Record<string, string>;
const upload = (args: string[], cwd?: string) => runScript('upload', args, { env, cwd, timeoutMs: 60_000 });

/** A source repo with one commit and an out/ folder holding the site. */
async function sourceRepo() {
  const dir = tmpDir('shipkit-src-');
  await git(dir, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(path.join(dir, 'README.md'), '# site\n');
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '--quiet', '-m', 'source');
  const sha = (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();
  const out = path.join(dir, 'out');
  mkdirSync(path.join(out, 'a b'), { recursive: true });
  writeFileSync(path.join(out, 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(path.join(out, 'a b', 'ünïcødé 名前.txt'), 'unicode\n');
  writeFileSync(path.join(out, '.gitignore'), 'index.html\n');
  symlinkSync('/etc/passwd', path.join(out, 'passwd'));
  symlinkSync('../../outside.txt', path.join(out, 'a b', 'up'));
  symlinkSync('index.html', path.join(out, 'home.html'));
  return { dir, out, sha };
}

async function files(bare: string, branch: string): Promise<string[]> {
  return (await git(bare, 'ls-tree', '-r', '--name-only', '-z', branch)).stdout.split('\0').filter(Boolean).sort();
}
const head = async (bare: string, branch: string) => (await git(bare, 'rev-parse', branch)).stdout.trim();

test('first deploy creates the branch; unchanged deploy commits nothing; a change commits on top', async () => {
  const { out, sha } = await sourceRepo();
  const bare = path.join(tmpDir('shipkit-remote-'), 'site.git');
  await git(path.dirname(bare), 'init', '--quiet', '--bare', bare);

  const first = await upload(['--from', out, '--to', `git+${bare}#gh-pages`]);
  assert.is(first.exitCode, 0, first.stderr);
  assert.match(first.stdout, /git\+.*#gh-pages: uploaded 1, unchanged 0, deleted 0 \(commit [0-9a-f]{12}\)/);
  assert.equal(await files(bare, 'gh-pages'), ['.gitignore', 'a b/ünïcødé 名前.txt', 'home.html', 'index.html']);
  assert.match(first.stderr, /skipping passwd: symbolic link to \/etc\/passwd, outside the source folder/);
  assert.match(first.stderr, /skipping a b\/up: symbolic link/);
  const message = (await git(bare, 'log', '-1', '--format=%B', 'gh-pages')).stdout;
  assert.match(message, new RegExp(`Deploy ${sha.slice(0, 12)}`));
  assert.match(message, new RegExp(`source commit ${sha}`));
  const mode = (await git(bare, 'ls-tree', 'gh-pages', 'home.html')).stdout;
  assert.match(mode, /^120000 /, 'an inside link stays a link');

  const firstHead = await head(bare, 'gh-pages');
  const again = await upload(['--from', out, '--to', `git+${bare}#gh-pages`]);
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /uploaded 0, unchanged 1/);
  assert.is(await head(bare, 'gh-pages'), firstHead, 'no commit when nothing changed');

  rmSync(path.join(out, 'a b'), { recursive: true });
  writeFileSync(path.join(out, 'index.html'), '<h1>changed</h1>\n');
  const third = await upload(['--from', out, '--to', `git+${bare}#gh-pages`, '--json']);
  assert.is(third.exitCode, 0, third.stderr);
  const [result] = JSON.parse(third.stdout);
  assert.is(result.uploaded, 1);
  assert.is(await head(bare, 'gh-pages'), result.commit);
  assert.is(
    (await git(bare, 'rev-parse', `${result.commit}^`)).stdout.trim(),
    firstHead,
    'on top of the branch history',
  );
  assert.equal(await files(bare, 'gh-pages'), ['.gitignore', 'home.html', 'index.html']);
});

test('an existing branch keeps its history; --dry-run pushes nothing', async () => {
  const remote = await makeBareRepo(tmpDir('shipkit-remote-'), 'pages', { 'old.html': 'old\n' }, 'gh-pages');
  const mainSha = await remote.commit({ 'older.html': 'older\n' }, 'second');
  const { out } = await sourceRepo();
  const dry = await upload(['--from', out, '--to', `git+${remote.bare}#gh-pages`, '--dry-run']);
  assert.is(dry.exitCode, 0, dry.stderr);
  assert.match(dry.stdout, /would upload 1/);
  assert.is(await head(remote.bare, 'gh-pages'), mainSha);
  const r = await upload(['--from', out, '--to', `git+file://${remote.bare}#gh-pages`]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is((await git(remote.bare, 'rev-parse', 'gh-pages^')).stdout.trim(), mainSha);
  assert.equal(
    await files(remote.bare, 'gh-pages'),
    ['.gitignore', 'a b/ünïcødé 名前.txt', 'home.html', 'index.html'],
    'the folder is the whole tree',
  );
});

test("a remote that rejects the push: exit 1 with the remote's reason", async () => {
  const bare = path.join(tmpDir('shipkit-remote-'), 'frozen.git');
  await git(path.dirname(bare), 'init', '--quiet', '--bare', bare);
  const hook = path.join(bare, 'hooks', 'pre-receive');
  writeFileSync(hook, '#!/bin/sh\necho "deploys are frozen until Monday" >&2\nexit 1\n');
  chmodSync(hook, 0o755);
  const { out } = await sourceRepo();
  const r = await upload(['--from', out, '--to', `git+${bare}#gh-pages`]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /refused the push to gh-pages: .*deploys are frozen until Monday/);
  assert.match(r.stderr, /hook or branch protection/);
});

test('an unreachable remote and a missing source folder are clear errors', async () => {
  const { out } = await sourceRepo();
  let r = await upload(['--from', out, '--to', 'git+/nonexistent/site.git#gh-pages']);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /could not read \/nonexistent\/site\.git: .*does not appear to be a git repository/);
  r = await upload(['--from', path.join(out, 'missing'), '--to', 'git+/tmp/x.git#gh-pages']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /source folder .*missing does not exist/);
});

test('--endpoint and --region on a target that is not s3:// are refused with exit 2', async () => {
  const { out } = await sourceRepo();
  const [endpoint, region] = await Promise.all([
    upload(['--from', out, '--to', 'git+/tmp/x.git#gh-pages', '--endpoint', 'http://127.0.0.1:9000']),
    upload(['--from', out, '--to', 'deploy@web1:/srv/site/', '--region', 'eu-west-1']),
  ]);
  assert.is(endpoint.exitCode, 2, endpoint.stderr);
  assert.match(endpoint.stderr, /An endpoint or region is only for s3:\/\/ targets, not "git\+\/tmp\/x\.git#gh-pages"/);
  assert.is(region.exitCode, 2, region.stderr);
  assert.match(region.stderr, /only for s3:\/\/ targets/);
});

const hostile: Array<[string, RegExp]> = [
  ['git+-uhelp#gh-pages', /must not start with "-"/],
  ['git+ext::sh -c touch% /tmp/shipkit-pwned#main', /ext:: and fd:: transports run commands/],
  ['git+/tmp/x.git#../main', /Invalid git branch/],
  ['git+/tmp/x.git#-f', /Invalid git branch/],
  ['git+#main', /the remote is empty/],
  ['nonsense', /Unknown upload target/],
];
test(`hostile targets are refused with exit 2: ${hostile.map(([t]) => JSON.stringify(t)).join(', ')}`, async () => {
  const { out } = await sourceRepo();
  await Promise.all(
    hostile.map(async ([target, pattern]) => {
      const r = await upload(['--from', out, `--to=${target}`]);
      assert.is(r.exitCode, 2, `${target}: ${r.stderr}`);
      assert.match(r.stderr, pattern, target);
    }),
  );
  assert.not.ok(existsSync('/tmp/shipkit-pwned'));
});

test('upload REPO runs the targets from shipkit.yml; bad entries name the file and line', async () => {
  const data = tmpDir('shipkit-data-');
  const work = path.join(data, 'repos', 'octo__site');
  mkdirSync(path.join(work, 'out'), { recursive: true });
  writeFileSync(path.join(work, 'out', 'index.html'), 'from config\n');
  const bare = path.join(data, 'pages.git');
  await git(data, 'init', '--quiet', '--bare', bare);
  const config = path.join(data, 'shipkit.yml');
  writeFileSync(
    config,
    `data: ${data}\nrepos:\n  octo/site:\n    upload:\n      - git: { remote: ${bare}, branch: public }\n        from: out\n`,
  );
  let r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(await files(bare, 'public'), ['index.html']);

  writeFileSync(
    config,
    `data: ${data}\nrepos:\n  octo/site:\n    upload:\n      - git: { remote: ${bare} }\n        from: ../../etc\n`,
  );
  r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /shipkit\.yml:6: repos\.octo\/site\.upload\[0\]\.from: Invalid upload folder/);

  writeFileSync(
    config,
    `data: ${data}\nrepos:\n  octo/site:\n    upload:\n      - git: { remote: ${bare} }\n        from: out\n        colour: blue\n`,
  );
  r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /shipkit\.yml:7: .*colour: unknown key/);

  rmSync(path.join(work, 'out'), { recursive: true });
  symlinkSync('/etc', path.join(work, 'out'));
  writeFileSync(
    config,
    `data: ${data}\nrepos:\n  octo/site:\n    upload:\n      - git: { remote: ${bare} }\n        from: out\n`,
  );
  r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /must not be a symbolic link out of the repository/);
});

test.run();
