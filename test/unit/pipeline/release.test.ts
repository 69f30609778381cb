// `release REPO --tag TAG` (lib/pipeline/release.ts) as a real job on a real git repository: the
// tag checked out and its release script run with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA, its
// exit code the job's; a script missing at the tag, not executable or not a file fails saying
// how to fix it; a `release:` path out of the repo is a configuration error before any job starts.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig, repoPaths } from '../../../lib/config/shipkit-yml.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { runRelease } from '../../../lib/pipeline/release.ts';
import { git, makeBareRepo, tmpDir } from '../../_helpers/common.ts';

let root = '';
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
const out = () => path.join(root, 'release.out');

test.before(async () => {
  root = tmpDir('shipkit-release-');
  repo = await makeBareRepo(path.join(root, 'git'), 'site', {
    'release.sh': `#!/bin/sh\necho "$SHIPKIT_REPO $SHIPKIT_TAG $SHIPKIT_SHA $(pwd)" > ${out()}\nexit \${RELEASE_EXIT:-0}\n`,
    'scripts/fail.sh': '#!/bin/sh\necho failing on purpose\nexit 3\n',
    'scripts/plain.sh': '#!/bin/sh\nexit 0\n',
    'scripts/folder/keep': '',
  });
  chmodSync(path.join(repo.work, 'release.sh'), 0o755);
  chmodSync(path.join(repo.work, 'scripts/fail.sh'), 0o755);
  await repo.commit({}, 'executable scripts');
  await git(repo.work, 'tag', 'v1.0');
  await git(repo.work, 'push', '--quiet', 'origin', 'v1.0');
});

let jobs = 0;
/** A config whose repo `octo/site` clones the test repo with `release:` set to `script`, then the job's outcome. */
async function release(script: string | undefined, tag = 'v1.0') {
  const dir = path.join(root, `world-${++jobs}`);
  mkdirSync(dir);
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    `data: ${path.join(dir, 'data')}\nrepos:\n  octo/site:\n    url: file://${repo.bare}\n${script ? `    release: ${script}\n` : ''}`,
  );
  const config = await loadShipkitConfig(file);
  const site = config.repos.get('octo/site')!;
  return {
    config,
    run: () => runRelease({ config, repo: site, tag, id: `job-${jobs}`, log: silentLogger }),
  };
}

test('the tag is checked out and release.sh run in it with SHIPKIT_REPO, SHIPKIT_TAG, SHIPKIT_SHA', async () => {
  const { run, config } = await release(undefined);
  const outcome = await run();
  assert.equal([outcome.status, outcome.exit, outcome.kind], ['succeeded', 0, 'release']);
  const sha = (await git(repo.work, 'rev-parse', 'v1.0^{commit}')).stdout.trim();
  assert.is(readFileSync(out(), 'utf8').trim(), `octo/site v1.0 ${sha} ${repoPaths(config, 'octo/site').work}`);
});

test("the release script's exit code is the job's", async () => {
  const { run } = await release('scripts/fail.sh');
  const outcome = await run();
  assert.equal([outcome.status, outcome.exit], ['failed', 3]);
});

test('a script missing at the tag, not executable, or not a file: the job fails saying what to do', async () => {
  for (const [script, want] of [
    [
      'scripts/absent.sh',
      /The release script scripts\/absent\.sh does not exist at v1\.0; add it to the repo \(see templates\/release\.sh\)/,
    ],
    [
      'scripts/plain.sh',
      /is not executable; run `git update-index --chmod=\+x scripts\/plain\.sh`, commit, and tag again/,
    ],
    ['scripts/folder', /The release script scripts\/folder is not a file/],
  ] as const) {
    const outcome = await (await release(script)).run();
    assert.is(outcome.status, 'failed', script);
    assert.match(outcome.error ?? '', want, script);
  }
});

test('a release: path out of the repo is a configuration error, and no job starts', async () => {
  for (const script of ['../outside.sh', '/usr/bin/id']) {
    const { run, config } = await release(script);
    const error = await run().catch((e: unknown) => e);
    assert.instance(error, ConfigError, script);
    assert.match(
      (error as Error).message,
      /must be a path inside the repo such as release\.sh or scripts\/release\.sh/,
    );
    assert.is(existsSync(repoPaths(config, 'octo/site').logs), false, `${script}: nothing of a job was made`);
  }
});

test.run();
