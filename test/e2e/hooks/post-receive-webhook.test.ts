// hooks/post-receive-webhook: real `git push` into a bare repo with the hook installed, delivering
// to a real hook-server (builds replaced by the recording fake build): a branch push is queued
// with the pushed SHA; a wrong secret, missing settings, a hook-server that is down, tags and
// other branches each say so and queue nothing.
import { createHmac, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ } from '../../../lib/core/shell.ts';
import { FAKE_BUILD, readRuns, waitForJobState, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import {
  ROOT,
  freePort,
  git,
  gitEnv,
  makeBareRepo,
  startScript,
  tmpDir,
  waitFor,
  type Server,
} from '../../_helpers/common.ts';

const SECRET = `hook-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;

let base: string;
let hook: Server;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;
let secretFile: string;

test.before(async () => {
  base = tmpDir('shipkit-prw-');
  const config = writeConfig(base, { repos: { 'octo/site': { timeout: 30 } } });
  hook = await startScript('hook-server', ['--config', config], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: FAKE_BUILD },
  });
  repo = await makeBareRepo(path.join(base, 'git'), 'site');
  const file = path.join(repo.bare, 'hooks', 'post-receive');
  copyFileSync(path.join(ROOT, 'hooks', 'post-receive-webhook'), file);
  chmodSync(file, 0o755);
  secretFile = path.join(base, 'secret');
  writeFileSync(secretFile, `${SECRET}\n`);
});

test.after(async () => {
  await hook?.stop();
});

const setConfig = (key: string, value: string) => git(repo.bare, 'config', key, value);
const unsetConfig = (key: string) =>
  $({ cwd: repo.bare, env: gitEnv(), nothrow: true, quiet: true })`git config --unset ${key}`;

async function pushChange(ref = 'refs/heads/main') {
  writeFileSync(path.join(repo.work, 'page.txt'), `${randomUUID()}\n`);
  await git(repo.work, 'add', '-A');
  await git(repo.work, 'commit', '--quiet', '-m', 'change');
  const sha = (await git(repo.work, 'rev-parse', 'HEAD')).stdout.trim();
  const r = await $({ cwd: repo.work, env: gitEnv(), nothrow: true, quiet: true })`git push origin ${`HEAD:${ref}`}`;
  assert.is(r.exitCode, 0, r.stderr);
  return { sha, output: r.stderr };
}

async function jobCount(): Promise<number> {
  const res = await fetch(`${hook.url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return ((await res.json()) as { jobs: unknown[] }).jobs.length;
}

test('without its settings the hook says what to set and sends nothing', async () => {
  const { output } = await pushChange();
  assert.match(
    output,
    /remote: shipkit: set shipkit\.webhook, shipkit\.secretFile and shipkit\.repo with git config in this repository; nothing was sent/,
  );
  assert.is(await jobCount(), 0);
});

test('a branch push is delivered signed and queued as a job for exactly the pushed commit', async () => {
  await setConfig('shipkit.webhook', `${hook.url}/hooks/gitea`);
  await setConfig('shipkit.secretFile', secretFile);
  await setConfig('shipkit.repo', 'octo/site');
  const { sha, output } = await pushChange();
  const id = /remote: shipkit: octo\/site main at ([0-9a-f]{40}) queued as job (\S+)/.exec(output);
  assert.ok(id, output);
  assert.is(id![1], sha);
  const job = await waitForJobState(hook.url, TOKEN, id![2], ['succeeded', 'failed']);
  assert.is(job.sha, sha);
  assert.is(job.ref, 'refs/heads/main');
  assert.equal(readRuns(base).started, [id![2]]);
  const argv = readFileSync(path.join(base, `argv-${id![2]}.txt`), 'utf8')
    .trim()
    .split('\n');
  assert.equal(
    argv.slice(argv.indexOf('--url'), argv.indexOf('--url') + 2),
    ['--url', `file://${repo.bare}`],
    'the build clones the bare repo itself',
  );
});

test("the pushed commit's message and author, and who pushed, reach the job and the status page", async () => {
  writeFileSync(path.join(repo.work, 'page.txt'), `${randomUUID()}\n`);
  await git(repo.work, 'add', '-A');
  const author = { GIT_AUTHOR_NAME: 'Ada Lovelace', GIT_AUTHOR_EMAIL: 'ada@example.com' };
  await $({
    cwd: repo.work,
    env: { ...gitEnv(), ...author },
    quiet: true,
  })`git commit --quiet -m ${'Fix the engine notes\n\nSecond paragraph.'}`;
  const pushed = await $({
    cwd: repo.work,
    env: { ...gitEnv(), USER: 'ada-pushes' },
    nothrow: true,
    quiet: true,
  })`git push origin HEAD:refs/heads/main`;
  const id = /remote: shipkit: octo\/site main at [0-9a-f]{40} queued as job (\S+)/.exec(pushed.stderr);
  assert.ok(id, pushed.stderr);
  const job = await waitForJobState(hook.url, TOKEN, id![1], ['succeeded', 'failed']);
  assert.is(job.message, 'Fix the engine notes\n\nSecond paragraph.');
  assert.is(job.author, 'Ada Lovelace');
  assert.is(job.pusher, 'ada-pushes');
  const page = await (
    await fetch(`${hook.url}/`, { headers: { Authorization: `Bearer ${TOKEN}`, Accept: 'text/html' } })
  ).text();
  assert.match(page, 'Fix the engine notes');
  assert.match(page, 'Ada Lovelace');
});

test('tags and branches that do not build are reported and not sent', async () => {
  const before = await jobCount();
  const tag = await pushChange('refs/tags/v9');
  assert.match(tag.output, /remote: shipkit: refs\/tags\/v9 is not a branch; nothing to build/);
  const other = await pushChange('refs/heads/feature');
  assert.match(other.output, /remote: shipkit: feature does not build \(building: main\)/);
  assert.is(await jobCount(), before);
});

test('a wrong secret is refused by hook-server (401); the answer, the log and the hook name the likely cause; nothing is queued', async () => {
  const before = await jobCount();
  const wrong = path.join(base, 'wrong-secret');
  const wrongSecret = `wrong-${randomUUID()}`;
  writeFileSync(wrong, `${wrongSecret}\n`);
  await setConfig('shipkit.secretFile', wrong);
  try {
    const { output } = await pushChange();
    const said = /remote: shipkit: hook-server answered 401 for octo\/site main: (.*)/.exec(output);
    assert.ok(said, output);
    assert.is(
      said![1].trimEnd(),
      `bad signature: most likely the secret differs from hook-server's (check that shipkit.secretFile, ${wrong}, holds the webhook secret of hook-server's shipkit.yml)`,
    );
    await waitFor(
      () =>
        /request refused .*signature does not match the body: it was made with another secret than hook-server's \(most often the forge's or the git hook's secret differs from secret: in shipkit\.yml\)/.test(
          hook.output(),
        ),
      { what: 'the cause in the log' },
    );
    assert.not.ok(output.includes(wrongSecret) || hook.output().includes(wrongSecret), 'the secret is never repeated');
    assert.is(await jobCount(), before);
  } finally {
    await setConfig('shipkit.secretFile', secretFile);
  }
});

test('an unreadable secret file or a hook-server that is down: the push is stored and the hook says what happened', async () => {
  await setConfig('shipkit.secretFile', path.join(base, 'missing'));
  const missing = await pushChange();
  assert.match(
    missing.output,
    /remote: shipkit: cannot read the webhook secret \(shipkit\.secretFile .*missing\): ENOENT; nothing was sent/,
  );
  await setConfig('shipkit.secretFile', secretFile);
  await setConfig('shipkit.webhook', `http://127.0.0.1:${await freePort()}/hooks/gitea`);
  const down = await pushChange();
  assert.match(
    down.output,
    /remote: shipkit: cannot reach hook-server at http:\/\/127\.0\.0\.1:\d+\/hooks\/gitea: ECONNREFUSED; the push is stored/,
  );
  const head = (await git(repo.bare, 'rev-parse', 'refs/heads/main')).stdout.trim();
  assert.is(head, down.sha);
  await unsetConfig('shipkit.webhook');
});

test('a repo without url: builds the pushed repository itself (its file:// path), never github.com/OWNER/NAME; a delivery naming no clone URL is refused (400)', async () => {
  const dir = tmpDir('shipkit-prw-own-');
  // The real build (pull only), as a newcomer runs it: shipkit.yml names the repo, no url:.
  const config = writeConfig(dir, { repos: { 'octo/own': { steps: ['pull'] } } });
  const server = await startScript('hook-server', ['--config', config], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
  try {
    const own = await makeBareRepo(path.join(dir, 'git'), 'own');
    const hookFile = path.join(own.bare, 'hooks', 'post-receive');
    copyFileSync(path.join(ROOT, 'hooks', 'post-receive-webhook'), hookFile);
    chmodSync(hookFile, 0o755);
    for (const [key, value] of [
      ['shipkit.webhook', `${server.url}/hooks/gitea`],
      ['shipkit.secretFile', secretFile],
      ['shipkit.repo', 'octo/own'],
    ])
      await git(own.bare, 'config', key, value);
    writeFileSync(path.join(own.work, 'page.txt'), 'own\n');
    await git(own.work, 'add', '-A');
    await git(own.work, 'commit', '--quiet', '-m', 'own change');
    const sha = (await git(own.work, 'rev-parse', 'HEAD')).stdout.trim();
    const pushed = await $({
      cwd: own.work,
      env: gitEnv(),
      nothrow: true,
      quiet: true,
    })`git push origin HEAD:refs/heads/main`;
    const id = /remote: shipkit: octo\/own main at [0-9a-f]{40} queued as job (\S+)/.exec(pushed.stderr);
    assert.ok(id, pushed.stderr);
    const job = await waitForJobState(server.url, TOKEN, id![1], ['succeeded', 'failed'], 60_000);
    assert.is(job.state, 'succeeded', job.reason ?? '');
    const work = path.join(dir, 'data/repos/octo__own');
    assert.is((await git(work, 'rev-parse', 'HEAD')).stdout.trim(), sha, 'the pushed commit is checked out');
    assert.is(
      (await git(work, 'remote', 'get-url', 'origin')).stdout.trim(),
      `file://${own.bare}`,
      'cloned from the bare repo the hook runs in',
    );

    // What the hook sent before: no clone URL. The build would have cloned github.com/octo/bare.
    const before = await jobList(server.url);
    const body = JSON.stringify({
      ref: 'refs/heads/main',
      before: '0'.repeat(40),
      after: sha,
      repository: { full_name: 'octo/own' },
    });
    const res = await fetch(`${server.url}/hooks/gitea`, {
      method: 'POST',
      body,
      headers: {
        'Content-Type': 'application/json',
        'X-Gitea-Event': 'push',
        'X-Gitea-Delivery': randomUUID(),
        'X-Gitea-Signature': createHmac('sha256', SECRET).update(body).digest('hex'),
      },
    });
    assert.is(res.status, 400);
    assert.match(
      (await res.json()).error,
      /^no clone URL: the delivery names none and shipkit\.yml has no url: for this repository; set url: there$/,
    );
    assert.equal(await jobList(server.url), before, 'nothing queued');
    await waitFor(
      () =>
        /request refused .*octo\/own has no url: in .*shipkit\.yml and the delivery no clone URL/.test(server.output()),
      { what: 'the refusal in the log' },
    );

    // A file:// path into hook-server's own data (another repo's clone) is refused too.
    const stolen = JSON.stringify({
      ref: 'refs/heads/main',
      before: sha,
      after: sha,
      repository: { full_name: 'octo/own', clone_url: `file://${path.join(dir, 'data/repos/octo__other')}` },
    });
    const refused = await fetch(`${server.url}/hooks/gitea`, {
      method: 'POST',
      body: stolen,
      headers: {
        'Content-Type': 'application/json',
        'X-Gitea-Event': 'push',
        'X-Gitea-Delivery': randomUUID(),
        'X-Gitea-Signature': createHmac('sha256', SECRET).update(stolen).digest('hex'),
      },
    });
    assert.is(refused.status, 400);
    assert.is((await refused.json()).error, 'clone URL refused');
    assert.equal(await jobList(server.url), before, 'nothing queued');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

async function jobList(url: string): Promise<string[]> {
  const res = await fetch(`${url}/jobs?limit=1000`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return ((await res.json()) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id);
}

test.run();
