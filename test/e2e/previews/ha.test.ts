// Previews with two hook-servers on one real PostgreSQL (docs/previews.md#with-several-hook-servers),
// each with its own DATA and its own real nginx, as on two machines: the same pull request event
// delivered to both (a forge's retry through a load balancer) makes one preview, on the leader; an
// event the follower takes is built by the leader; kill -9 of the leader moves the preview to the
// other node within a bound, and the dead node, started again, keeps no preview on its machine.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';
import { processesOf } from '../../fixtures/previews/processes.ts';
import { stopPreview } from '../../../lib/previews/launch.ts';
import { deliverGithub } from '../../fixtures/hooks/deliveries.ts';
import { ownerPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { getThrough, nginxBlock, startPreviewNginx, type PreviewNginx } from '../../fixtures/previews/nginx.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { makeBareRepo, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const SERVER = readFileSync(path.join(import.meta.dirname, '../../fixtures/previews/site/server.cjs'), 'utf8');
const dir = tmpDir('shipkit-previews-ha-');
let pg: Postgres | undefined;
let repo: Awaited<ReturnType<typeof makeBareRepo>>;

interface Machine {
  name: string;
  /** DATA: a short folder of /tmp (launchfit's control socket path has 107 bytes at most). */
  data: string;
  nginx: PreviewNginx;
  config: string;
  server?: Server;
}
const machines: Machine[] = [];

const through = (m: Machine, pr: number) =>
  getThrough(m.nginx.port, '/', `pr-${pr}.preview.test`).catch(() => ({ status: 0, body: '' }));
const folder = (m: Machine, pr: number) => path.join(m.data, 'previews', 'octo__site', `pr-${pr}`);
const route = (m: Machine, pr: number) => path.join(m.nginx.domainDir, `pr-${pr}.conf`);

async function machine(name: string): Promise<Machine> {
  const nginx = await startPreviewNginx();
  const data = mkdtempSync('/tmp/skp-');
  const config = path.join(dir, `${name}.yml`);
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `data: ${data}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'queue: env:SHIPKIT_QUEUE_URL',
      'repos:',
      '  octo/site:',
      `    url: file://${repo.bare}`,
      '    steps: [pull, compile]',
      '    compile: echo built',
      '    previews:',
      '      domain: preview.test',
      ...nginxBlock(nginx),
      '      start: node server.cjs',
      '',
    ].join('\n'),
  );
  const m = { name, data, nginx, config };
  machines.push(m);
  return m;
}

async function start(m: Machine): Promise<Server> {
  m.server = await startScript('hook-server', ['--config', m.config, '--name', m.name], {
    env: {
      ...(await previewUserEnv([dir, m.data])),
      HOOK_SECRET: SECRET,
      HOOK_TOKEN: TOKEN,
      SHIPKIT_QUEUE_URL: pg!.url,
      SHIPKIT_PREVIEWS_SWEEP_MS: '1000',
    },
  });
  return m.server;
}

function event(action: string, pr: number, sha: string) {
  return ownerPullRequest(action, { pr, sha, cloneUrl: `file://${repo.bare}` });
}

async function leads(m: Machine): Promise<boolean> {
  const res = await fetch(`${m.server!.url}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  return res ? (await res.json()).leader === true : false;
}

async function leaderOf(list: Machine[], timeoutMs = 15_000): Promise<Machine> {
  return (await waitFor(
    async () => {
      const leading = [];
      for (const m of list) if (await leads(m)) leading.push(m);
      return leading.length === 1 ? leading[0] : undefined;
    },
    { timeoutMs, what: 'one leader' },
  ))!;
}

async function listed(m: Machine): Promise<Array<{ pr: number; state: string; head: string }>> {
  const res = await fetch(`${m.server!.url}/previews`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).previews;
}

const count = (text: string, what: string) => text.split(what).length - 1;

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  repo = await makeBareRepo(dir, 'site', { 'server.cjs': SERVER, 'VERSION.txt': 'v1\n' });
  for (const name of ['pa', 'pb']) await start(await machine(name));
});

test.after(async () => {
  for (const m of machines) {
    await m.server?.stop('SIGTERM');
    // Previews outlive hook-server by design: a test that failed half-way ends its own.
    const root = path.join(m.data, 'previews', 'octo__site');
    for (const name of existsSync(root) ? readdirSync(root) : []) await stopPreview(path.join(root, name));
    rmSync(m.data, { recursive: true, force: true });
    await m.nginx.stop();
  }
  await pg?.stop();
});

test('one event delivered to both nodes makes one preview, on the leader; the follower answers queued', async () => {
  if (!pg) return;
  const leader = await leaderOf(machines);
  const follower = machines.find((m) => m !== leader)!;
  const payload = event('opened', 2, repo.first);
  const delivery = randomUUID();
  const answers = await Promise.all(
    [leader, follower].map((m) => deliverGithub(m.server!.url, 'pull_request', payload, SECRET, { delivery })),
  );
  for (const a of answers) assert.is(a.status, 202, JSON.stringify(a.json));
  assert.is(answers[1].json.state, 'queued');
  assert.match(answers[1].json.reason, new RegExp(`leading hook-server, ${leader.name}`));
  await waitFor(async () => (await through(leader, 2)).body === 'v1\n', {
    timeoutMs: 60_000,
    what: 'pr-2 on the leader',
  });
  await new Promise((r) => setTimeout(r, 2_000));
  assert.is(count(leader.server!.output(), 'preview live'), 1, 'built and run once');
  assert.not.ok(existsSync(folder(follower, 2)), 'nothing on the follower');
  assert.not.ok(existsSync(route(follower, 2)));
  assert.is((await through(follower, 2)).status, 404);
  const seen = await waitFor(async () => (await listed(follower)).find((p) => p.pr === 2 && p.state === 'live'), {
    what: "the leader's record on the follower",
  });
  assert.is(seen!.head, repo.first);
});

test('a push the follower takes is built by the leader; approve there names the leader', async () => {
  if (!pg) return;
  const leader = await leaderOf(machines);
  const follower = machines.find((m) => m !== leader)!;
  const second = await repo.commit({ 'VERSION.txt': 'v2\n' });
  const answer = await deliverGithub(follower.server!.url, 'pull_request', event('synchronize', 2, second), SECRET);
  assert.equal([answer.status, answer.json.preview, answer.json.state], [202, 'pr-2', 'queued']);
  // Served by the leading node. Under a loaded CI machine the lead may move meanwhile (a lease not
  // renewed in time): then the new leader builds it, which is as right, so any node may answer.
  const serving = await waitFor(
    async () => {
      for (const m of machines) if ((await through(m, 2)).body === 'v2\n') return m;
      return undefined;
    },
    { timeoutMs: 60_000, what: 'v2 on the leader' },
  ).catch(async (error) => {
    // What each node saw, so a failure says why.
    const records = JSON.stringify(await listed(leader).catch((e) => String(e)));
    const tails = machines.map((m) => `--- ${m.name} ---\n${m.server!.output().split('\n').slice(-40).join('\n')}`);
    throw new Error(`${(error as Error).message}\nleader's records: ${records}\n${tails.join('\n')}`);
  });
  assert.is(serving, await leaderOf(machines), 'the node serving it leads');
  if (serving !== leader) console.log('  (the lead moved during the push; the new leader built it)');
  const other = machines.find((m) => m !== serving)!;
  await waitFor(() => !existsSync(folder(other, 2)), { what: 'no preview folder on the node that does not lead' });
  const res = await fetch(`${other.server!.url}/previews/rebuild`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ repo: 'octo/site', pr: 2 }),
  });
  assert.is(res.status, 409);
});

test('kill -9 of the leader: the other node leads and serves the preview; the dead one, restarted, keeps none', async () => {
  if (!pg) return;
  const leader = await leaderOf(machines);
  const other = machines.find((m) => m !== leader)!;
  const app = processesOf(folder(leader, 2));
  assert.ok(app.length, "the leader's pr-2 runs");
  const killed = Date.now();
  leader.server!.child.kill('SIGKILL');
  await leaderOf([other]);
  await waitFor(async () => (await through(other, 2)).body === 'v2\n', {
    timeoutMs: 60_000,
    what: 'pr-2 on the new leader',
  }).catch((error) => {
    throw new Error(`${error.message}\n${other.server!.output().slice(-3000)}`, { cause: error });
  });
  const tookMs = Date.now() - killed;
  console.log(`  pr-2 served by the new leader ${tookMs} ms after kill -9 of the old one`);
  assert.ok(tookMs < 60_000);
  assert.ok(processesOf(folder(leader, 2)).length, "the dead node's preview outlived it");
  await start(leader);
  await waitFor(() => !existsSync(folder(leader, 2)) && !existsSync(route(leader, 2)), {
    timeoutMs: 20_000,
    what: "the restarted node's preview gone",
  });
  await waitFor(() => !processesOf(folder(leader, 2)).length, { what: 'its app ended' });
  assert.not.ok(await leads(leader));
  assert.is((await through(other, 2)).body, 'v2\n', 'the new leader serves on');
  const seen = (await listed(leader)).find((p) => p.pr === 2);
  assert.equal([seen?.state, seen?.head], ['live', (await listed(other)).find((p) => p.pr === 2)?.head]);
});

test('closed on the follower: the preview goes from the leader', async () => {
  if (!pg) return;
  const leader = await leaderOf(machines);
  const follower = machines.find((m) => m !== leader)!;
  const answer = await deliverGithub(follower.server!.url, 'pull_request', event('closed', 2, repo.first), SECRET);
  assert.is(answer.status, 202);
  await waitFor(() => !existsSync(folder(leader, 2)), { timeoutMs: 30_000, what: 'the folder removed' });
  await waitFor(async () => (await through(leader, 2)).status === 404, { what: 'pr-2 answered 404' });
  const row = await pg!.sql("SELECT open FROM shipkit.preview_prs WHERE repo = 'octo/site' AND pr = 2");
  assert.is(row, 'f');
});

test.run();
