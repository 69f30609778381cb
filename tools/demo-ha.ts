// npm run demo -- --nodes N: several hook-servers on one PostgreSQL (docs/ha.md), on loopback in a
// temp folder. A throwaway PostgreSQL, N hook-servers with `queue:` behind Debian's haproxy (the
// config docs/ha.md shows), one `shipkit worker`; 40 signed pushes go through haproxy, each sent
// twice (a forge's retry); the leader is killed with -9 halfway. It prints which node led, how
// soon another took over, and that each push made one job; then stops everything.
import { randomUUID } from 'node:crypto';
import { deliverGithub, pushPayload } from '../test/fixtures/hooks/deliveries.ts';
import { startHaproxy, type Haproxy } from '../test/fixtures/haproxy.ts';
import { startPostgres, type Postgres } from '../test/fixtures/postgres.ts';
import { queueConfig, SECRET, startWorker, waitForState, worldEnv, type Worker } from '../test/fixtures/workers.ts';
import { startScript, tmpDir, type Server } from '../test/_helpers/common.ts';
import { killProcessesUsing } from '../test/fixtures/processes.ts';

const say = (line: string) => console.log(line);
const REPOS = ['demo/site1', 'demo/site2', 'demo/site3', 'demo/site4'];

interface World {
  pg?: Postgres;
  nodes: Server[];
  worker?: Worker;
  haproxy?: Haproxy;
}

const healthOf = async (node: Server) =>
  (await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined))?.json();

async function leaderOf(nodes: Server[], timeoutMs: number): Promise<{ node: Server; name: string } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const node of nodes) {
      const h = await healthOf(node).catch(() => undefined);
      if (h?.leader) return { node, name: h.node };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/** 20 pushes through haproxy, each sent twice with one delivery id; the job ids answered. */
async function pushes(url: string, round: number): Promise<string[]> {
  const jobs: string[] = [];
  for (let i = 0; i < 20; i++) {
    const delivery = randomUUID();
    const payload = pushPayload(REPOS[i % REPOS.length], { sha: `${round}${i}`.padStart(40, 'a') });
    for (let copy = 0; copy < 2; copy++) {
      for (let tries = 0; tries < 10; tries++) {
        const res = await deliverGithub(url, 'push', payload, SECRET, { delivery }).catch(() => undefined);
        if (res && res.status < 300) {
          if (copy === 0) jobs.push(res.json.job);
          break;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }
  return jobs;
}

export async function runHaDemo(count: number): Promise<void> {
  const started = Date.now();
  const base = tmpDir('shipkit-demo-ha-');
  const world: World = { nodes: [] };
  say(`shipkit demo: ${count} hook-servers on one PostgreSQL behind haproxy, everything in ${base}`);
  try {
    world.pg = await startPostgres();
    if (!world.pg) throw new Error('PostgreSQL is not installed (apt-get install postgresql): the demo needs it.');
    const env = worldEnv(world.pg);
    const repos = Object.fromEntries(REPOS.map((r) => [r, {}]));
    for (let i = 1; i <= count; i++) {
      const { config } = queueConfig(`node${i}`, repos, { concurrency: 0, in: `${base}/node${i}` });
      world.nodes.push(
        await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', `node${i}`], {
          env,
        }),
      );
      say(`node${i}: hook-server on ${world.nodes[i - 1].url}`);
    }
    world.worker = await startWorker(queueConfig('worker', repos, { in: `${base}/worker` }).config, 'worker', env);
    world.haproxy = await startHaproxy(world.nodes.map((n, i) => ({ name: `node${i + 1}`, port: n.port })));
    if (!world.haproxy) throw new Error('haproxy is not installed (apt-get install haproxy): the demo needs it.');
    say(`haproxy on ${world.haproxy.url} sends webhooks to the ${count} nodes in turn`);
    const first = await leaderOf(world.nodes, 10_000);
    say(`\n${first?.name} leads (it alone sends commit statuses and notifications)`);
    const before = await pushes(world.haproxy.url, 1);
    say(`20 pushes, each delivered twice through haproxy: ${new Set(before).size} jobs`);
    const killed = Date.now();
    first!.node.child.kill('SIGKILL');
    say(`kill -9 ${first?.name}`);
    const next = await leaderOf(
      world.nodes.filter((n) => n !== first!.node),
      15_000,
    );
    say(`${next?.name} leads ${Date.now() - killed} ms later`);
    const after = await pushes(world.haproxy.url, 2);
    say(`20 more pushes, each delivered twice: ${new Set(after).size} jobs`);
    const ended = await Promise.all(
      [...before, ...after].map((id) => waitForState(next!.node, id, ['succeeded', 'superseded', 'failed'], 60_000)),
    );
    const made = Number(await world.pg.sql(`SELECT count(*) FROM shipkit.jobs`));
    say(
      `\n${made} jobs in the database for 40 pushes sent 80 times; ${ended.filter((j) => j.state === 'succeeded').length} built, ${ended.filter((j) => j.state === 'superseded').length} superseded by a newer push`,
    );
    if (made !== 40) throw new Error(`expected 40 jobs, found ${made}`);
  } finally {
    await world.haproxy?.stop();
    await world.worker?.stop();
    for (const node of world.nodes) await node.stop();
    await world.pg?.stop();
    await killProcessesUsing(base);
    say(`demo done in ${((Date.now() - started) / 1000).toFixed(1)} s; everything it started is stopped`);
  }
}
