// Two hook-servers lose their PostgreSQL for a while (docs/ha.md): /healthz answers 503 with
// Retry-After on both and a delivery is refused 503 (nothing acknowledged); when the database is
// back both serve again on their own, one leads under a new fencing term, and deliveries are
// taken again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { waitFor, type Server } from '../../_helpers/common.ts';
import { SECRET, startNode, worldEnv } from '../../fixtures/workers.ts';

// 30 s: longer than every timer that could hide a fault (the lead is tried every 2 s, the pool's
// connections time out after 10 s), so each node must come back on its own.
const OUTAGE_MS = 30_000;

test(`the database away for ${OUTAGE_MS / 1000} s: 503 on both nodes, then both serve again, one leads under a new term`, async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const nodes: Server[] = [];
  for (const name of ['a', 'b']) nodes.push(await startNode(name, repos, env));
  const health = async (node: Server) => {
    const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, retry: res.headers.get('retry-after'), body: await res.json() };
  };
  const leaders = async () => (await Promise.all(nodes.map(health))).filter((h) => h.body.leader).length;
  try {
    await waitFor(async () => (await leaders()) === 1, { what: 'one leader' });
    const termBefore = Number(await pg.sql('SELECT term FROM shipkit.leader'));
    await pg.stop();
    for (const node of nodes) {
      const down = await waitFor(
        async () => {
          const h = await health(node);
          return h.status === 503 ? h : undefined;
        },
        { what: '503 while the database is away' },
      );
      assert.equal([down!.body.db, down!.retry], ['unreachable', '5']);
    }
    const refused = await deliverGithub(nodes[0].url, 'push', pushPayload('octo/site'), SECRET);
    assert.is(refused.status, 503, 'nothing is acknowledged without the database');
    assert.ok(refused.headers.get('retry-after'));
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await pg.start();
    for (const node of nodes)
      await waitFor(async () => (await health(node)).status === 200, { timeoutMs: 30_000, what: 'the node back' });
    await waitFor(async () => (await leaders()) === 1, { timeoutMs: 15_000, what: 'one leader again' });
    assert.ok(Number(await pg.sql('SELECT term FROM shipkit.leader')) > termBefore, 'a new fencing term');
    const taken = await deliverGithub(nodes[1].url, 'push', pushPayload('octo/site', { sha: 'f'.repeat(40) }), SECRET);
    assert.is(taken.status, 202, JSON.stringify(taken.json));
  } finally {
    for (const node of nodes) assert.is(await node.stop(), 0, node.output());
  }
});

test.run();
