// The push guard of two hook-servers on one PostgreSQL (docs/ha.md): a captured older push replayed
// to the node that never took the newer one, after its delivery id was forgotten (14 days), is
// answered `superseded` and makes no job; the remote pinned by one node is the other's pin; pushes
// of one branch taken by both nodes at once are all kept, and each older one replayed to either
// node is superseded; a node's DATA/pushes/ is copied into the database at its first start.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubSignature, post, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { startScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startNode, worldEnv } from '../../fixtures/workers.ts';

const repos = { 'octo/site': {}, 'group/app': {}, 'octo/old': {} };
let pg: Postgres | undefined;
let a: Server | undefined;
let b: Server | undefined;

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  [a, b] = await Promise.all([startNode('a', repos, env), startNode('b', repos, env)]);
});

test.after(async () => {
  await a?.stop();
  await b?.stop();
});

interface Sent {
  body: string;
  headers: Record<string, string>;
}

/** A signed GitHub push with its signed push time, kept as sent so that it can be replayed byte for byte. */
async function githubPush(repo: string, sha: string, pushedAt: number, cloneUrl?: string): Promise<Sent> {
  const payload = pushPayload(repo, { sha, cloneUrl });
  Object.assign(payload, { before: '0'.repeat(40), forced: false });
  payload.repository.pushed_at = pushedAt;
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

/** A GitLab push (no signed push time: ancestry decides, and neither node has a clone to ask). */
function gitlabPush(after: string): Sent {
  const project = { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' };
  return {
    body: JSON.stringify({ object_kind: 'push', ref: 'refs/heads/main', after, checkout_sha: after, project }),
    headers: {
      'Content-Type': 'application/json',
      'X-Gitlab-Event': 'Push Hook',
      'X-Gitlab-Token': SECRET,
      'X-Gitlab-Event-UUID': randomUUID(),
    },
  };
}

const send = (node: Server, route: string, sent: Sent) => post(`${node.url}${route}`, sent.body, sent.headers);
const jobCount = async () => Number(await pg!.sql('SELECT count(*) FROM shipkit.jobs'));
const acceptedShas = async (repo: string) =>
  JSON.parse((await pg!.sql(`SELECT branches->'main' FROM shipkit.pushes WHERE repo = '${repo}'`)) || '[]').map(
    (p: { sha: string }) => p.sha,
  );

test('a push replayed to the node that did not take the newer one, its delivery id forgotten: superseded, no job', async () => {
  if (!pg) return;
  const older = await githubPush('octo/site', '1'.repeat(40), 1_000);
  const newer = await githubPush('octo/site', '2'.repeat(40), 2_000);
  assert.is((await send(a!, '/hooks/github', older)).status, 202);
  assert.is((await send(a!, '/hooks/github', newer)).status, 202);
  // 14 days on, the delivery ids are forgotten: only the guard stands between a replay and a build.
  await pg.sql('DELETE FROM shipkit.deliveries');
  const jobs = await jobCount();
  const replay = await send(b!, '/hooks/github', older);
  assert.is(replay.status, 200, JSON.stringify(replay.json));
  assert.is(replay.json.state, 'superseded');
  assert.is(await jobCount(), jobs, 'no job for the replay');
  await waitFor(() => /push older than the last one accepted for its branch: not built/.test(b!.output()), {
    what: "the superseded line in b's log",
  });
  assert.equal(await acceptedShas('octo/site'), ['2'.repeat(40), '1'.repeat(40)]);
});

test('the remote pinned by one node is the pin of the other', async () => {
  if (!pg) return;
  const jobs = await jobCount();
  const moved = await githubPush('octo/site', '3'.repeat(40), 3_000, 'https://evil.example.com/octo/site.git');
  const refused = await send(b!, '/hooks/github', moved);
  assert.is(refused.status, 400, JSON.stringify(refused.json));
  assert.is(refused.json.error, 'clone URL refused');
  assert.is(await jobCount(), jobs, 'nothing queued');
  assert.is(
    await pg.sql(`SELECT remote FROM shipkit.pushes WHERE repo = 'octo/site'`),
    'https://github.com/octo/site.git',
  );
});

test('pushes of one branch taken by both nodes at once are all kept; each older one replayed is superseded', async () => {
  if (!pg) return;
  const shas = Array.from({ length: 12 }, (_, i) => (i + 10).toString(16).repeat(40).slice(0, 40));
  const answers = await Promise.all(shas.map((sha, i) => send(i % 2 ? a! : b!, '/hooks/gitlab', gitlabPush(sha))));
  for (const res of answers) assert.is(res.status, 202, JSON.stringify(res.json));
  const kept = await acceptedShas('group/app');
  assert.equal([...kept].sort(), [...shas].sort(), 'no push lost to the other node');
  const jobs = await jobCount();
  // A replay with a fresh delivery id: the guard alone judges it, on either node.
  for (const [i, sha] of kept.slice(1).entries()) {
    const replay = await send(i % 2 ? b! : a!, '/hooks/gitlab', gitlabPush(sha));
    assert.is(replay.json.state, 'superseded', `${sha} replayed`);
  }
  assert.is(await jobCount(), jobs, 'no job for any replay');
  assert.equal(await acceptedShas('group/app'), kept, 'the replays changed nothing');
});

test("a node's DATA/pushes/ is copied into the database at its first start, then judged on every node", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const { dir, config } = queueConfig('c', repos, { concurrency: 0 });
  const pushes = path.join(dir, 'data', 'pushes');
  mkdirSync(pushes, { recursive: true });
  const file = path.join(pushes, 'octo__old.json');
  const kept = { sha: '9'.repeat(40), pushedAt: 5_000, at: new Date().toISOString() };
  writeFileSync(file, JSON.stringify({ remote: 'https://github.com/octo/old.git', branches: { main: [kept] } }));
  const c = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', 'c'], { env });
  try {
    assert.ok(existsSync(`${file}.copied-to-queue`) && !existsSync(file), 'read once, then set aside');
    assert.equal(await acceptedShas('octo/old'), [kept.sha]);
    const jobs = await jobCount();
    const older = await send(a!, '/hooks/github', await githubPush('octo/old', '8'.repeat(40), 4_000));
    assert.is(older.json.state, 'superseded', JSON.stringify(older.json));
    assert.is(await jobCount(), jobs);
    const newer = await send(c, '/hooks/github', await githubPush('octo/old', '7'.repeat(40), 6_000));
    assert.is(newer.status, 202, JSON.stringify(newer.json));
    assert.equal(await acceptedShas('octo/old'), ['7'.repeat(40), kept.sha]);
  } finally {
    assert.is(await c.stop(), 0, c.output());
  }
});

test.run();
