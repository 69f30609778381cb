// @deno
// Replayed deliveries and re-pointed clones: hook-server as a child
// process running the real `build` against real git repos (one served over HTTP on 127.0.0.1).
// A captured signed push of an older commit is answered 200 `superseded` and not built — judged
// by GitHub's signed push time, or by ancestry for GitLab — also after a restart; a forced push
// back to an older commit builds; `build --sha` still builds an old commit by hand. A payload's
// clone_url never re-points a clone, and a clone URL with credentials reaches no argv or log.
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubSignature, post, pushPayload, waitForJobState, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { git, makeBareRepo, runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN };

/** A signed GitHub delivery, kept as sent so that it can be replayed byte for byte. */
async function githubPush(
  repo: string,
  sha: string,
  order: { pushedAt: number; before: string; forced?: boolean },
  cloneUrl?: string,
) {
  const payload = pushPayload(repo, { sha, cloneUrl });
  Object.assign(payload, { before: order.before, forced: order.forced ?? false });
  payload.repository.pushed_at = order.pushedAt;
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-GitHub-Delivery': randomUUID(),
      'X-Hub-Signature-256': await githubSignature(SECRET, body),
    },
  };
}

function gitlabPush(before: string, after: string) {
  const project = { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' };
  const body = JSON.stringify({
    object_kind: 'push',
    ref: 'refs/heads/main',
    before,
    after,
    checkout_sha: after,
    project,
  });
  return {
    body,
    headers: {
      'Content-Type': 'application/json',
      'X-Gitlab-Event': 'Push Hook',
      'X-Gitlab-Token': SECRET,
      'X-Gitlab-Event-UUID': randomUUID(),
    },
  };
}

async function send(server: Server, route: string, delivery: { body: string; headers: Record<string, string> }) {
  return post(`${server.url}${route}`, delivery.body, delivery.headers);
}

async function built(server: Server, res: { status: number; json: any }) {
  assert.is(res.status, 202, JSON.stringify(res.json));
  const job = await waitForJobState(server.url, TOKEN, res.json.job, ['succeeded', 'failed'], 60_000);
  assert.is(job.state, 'succeeded', `${job.reason}`);
  return job;
}

async function jobCount(server: Server): Promise<number> {
  const res = await fetch(`${server.url}/jobs?limit=1000`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).jobs.length;
}

const head = async (work: string) => (await git(work, 'rev-parse', 'HEAD')).stdout.trim();

test('a replayed older push is superseded, by signed push time (GitHub) and by ancestry (GitLab), also after a restart; a forced rollback builds', async () => {
  const dir = tmpDir();
  const site = await makeBareRepo(path.join(dir, 'git'), 'site');
  const app = await makeBareRepo(path.join(dir, 'git'), 'app');
  const config = writeConfig(dir, {
    repos: { 'octo/site': { url: site.bare, steps: ['pull'] }, 'group/app': { url: app.bare, steps: ['pull'] } },
  });
  const siteWork = path.join(dir, 'data/repos/octo__site');
  const appWork = path.join(dir, 'data/repos/group__app');
  const c1 = site.first;
  const c2 = await site.commit({ 'two.txt': '2\n' });
  let server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const d1 = await githubPush('octo/site', c1, { pushedAt: 1_000, before: '0'.repeat(40) });
    const d2 = await githubPush('octo/site', c2, { pushedAt: 2_000, before: c1 });
    await built(server, await send(server, '/hooks/github', d1));
    await built(server, await send(server, '/hooks/github', d2));
    assert.is(await head(siteWork), c2);
    const jobs = await jobCount(server);

    const replay = await send(server, '/hooks/github', d1);
    assert.is(replay.status, 200, JSON.stringify(replay.json));
    assert.is(replay.json.state, 'superseded');
    assert.is(await jobCount(server), jobs, 'no job for the replay');
    await waitFor(
      () => /push older than the last one accepted for its branch: not built.*before the push of/.test(server.output()),
      { what: 'the superseded line in the log' },
    );

    // A forced push back to c1 is a deliberate rollback: it builds.
    await git(site.work, 'push', '--quiet', '--force', 'origin', `${c1}:refs/heads/main`);
    await built(
      server,
      await send(
        server,
        '/hooks/github',
        await githubPush('octo/site', c1, { pushedAt: 3_000, before: c2, forced: true }),
      ),
    );
    assert.is(await head(siteWork), c1);
    assert.is(
      (await send(server, '/hooks/github', d2)).json.state,
      'superseded',
      'the replayed push of c2 does not undo the rollback',
    );
    assert.is(await head(siteWork), c1);

    // GitLab signs no push time: ancestry in the clone decides.
    const a1 = app.first;
    const a2 = await app.commit({ 'two.txt': '2\n' });
    const g1 = gitlabPush('0'.repeat(40), a1);
    const g2 = gitlabPush(a1, a2);
    await built(server, await send(server, '/hooks/gitlab', g1));
    await built(server, await send(server, '/hooks/gitlab', g2));
    const replayed = await send(server, '/hooks/gitlab', g1);
    assert.is(replayed.status, 200);
    assert.is(replayed.json.state, 'superseded');
    assert.is(await head(appWork), a2);

    // What was accepted survives a restart.
    assert.is(await server.stop('SIGTERM'), 0);
    server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    assert.is((await send(server, '/hooks/github', d2)).json.state, 'superseded');
    assert.is((await send(server, '/hooks/gitlab', g1)).json.state, 'superseded');

    // A GitLab push back to a1 from a2 (before = a2) rewinds the branch on purpose: it builds.
    await git(app.work, 'push', '--quiet', '--force', 'origin', `${a1}:refs/heads/main`);
    await built(server, await send(server, '/hooks/gitlab', gitlabPush(a2, a1)));
    assert.is(await head(appWork), a1);
  } finally {
    assert.is(await server.stop('SIGTERM'), 0);
  }
  // By hand, an old commit builds on purpose.
  const byHand = await runScript('build', ['octo/site', '--config', config, '--sha', c2.slice(0, 10)]);
  assert.is(byHand.exitCode, 0, byHand.stderr);
  assert.is(await head(siteWork), c2);
});

/** A dumb-HTTP git server on 127.0.0.1 for the bare repos in `root` (`git update-server-info` first). */
async function serveRepos(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const file = path.join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile())
      return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test("the payload's clone_url never re-points the clone (400, logged); credentials in a clone URL reach no argv, log or journal", async () => {
  const dir = tmpDir();
  const good = await makeBareRepo(path.join(dir, 'git'), 'good');
  const evil = await makeBareRepo(path.join(dir, 'git'), 'evil', { 'README.md': '# evil\n' });
  for (const bare of [good.bare, evil.bare]) await git(bare, 'update-server-info');
  const repos = await serveRepos(path.join(dir, 'git'));
  try {
    await checkPinned(dir, repos.url, good, evil);
  } finally {
    await repos.close();
  }
});

async function checkPinned(dir: string, reposUrl: string, good: { first: string }, evil: { first: string }) {
  const repos = { url: reposUrl };
  const config = writeConfig(dir, { repos: { 'octo/pinned': { steps: ['pull'] } } });
  const work = path.join(dir, 'data/repos/octo__pinned');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const goodUrl = `${repos.url}/good.git`;
    await built(
      server,
      await send(
        server,
        '/hooks/github',
        await githubPush('octo/pinned', good.first, { pushedAt: 1_000, before: '0'.repeat(40) }, goodUrl),
      ),
    );
    assert.is((await git(work, 'remote', 'get-url', 'origin')).stdout.trim(), goodUrl);
    const jobs = await jobCount(server);

    const moved = await send(
      server,
      '/hooks/github',
      await githubPush('octo/pinned', evil.first, { pushedAt: 2_000, before: good.first }, `${repos.url}/evil.git`),
    );
    assert.is(moved.status, 400, JSON.stringify(moved.json));
    assert.is(moved.json.error, 'clone URL refused');
    await waitFor(
      () => /request refused .*evil\.git is not the remote pinned at the first clone/.test(server.output()),
      { what: 'the refusal in the log' },
    );
    assert.is(await jobCount(server), jobs, 'nothing queued');
    assert.is((await git(work, 'remote', 'get-url', 'origin')).stdout.trim(), goodUrl, 'origin unchanged');
    assert.is(await head(work), good.first);

    const token = `tok-${randomUUID()}`;
    const withCredentials = await send(
      server,
      '/hooks/github',
      await githubPush(
        'octo/pinned',
        good.first,
        { pushedAt: 3_000, before: good.first },
        `${repos.url.replace('http://', `http://deploy:${token}@`)}/good.git`,
      ),
    );
    assert.is(withCredentials.status, 400);
    assert.is(await jobCount(server), jobs);
    await waitFor(() => /request refused .*carries credentials/.test(server.output()), {
      what: 'the refusal in the log',
    });
    assert.not.ok(server.output().includes(token), "not in hook-server's log");
    for (const file of listFiles(path.join(dir, 'data')))
      assert.not.ok(readFileSync(file).includes(token), `not in ${file}`);
  } finally {
    assert.is(await server.stop('SIGTERM'), 0);
  }
  // By hand too: --url makes the first clone only; it never re-points one.
  const byHand = await runScript('build', ['octo/pinned', '--config', config, '--url', `${repos.url}/evil.git`]);
  assert.is(byHand.exitCode, 1);
  assert.match(byHand.stderr, /would re-point it, which is refused/);
  assert.is((await git(work, 'remote', 'get-url', 'origin')).stdout.trim(), `${repos.url}/good.git`);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : [],
  );
}

test.run();
