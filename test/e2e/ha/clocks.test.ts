// Two hook-servers on one PostgreSQL whose clocks are 5 minutes apart (docs/ha.md), node b's
// moved ahead with Debian's faketime (LD_PRELOAD): a retried delivery still makes one job, a
// status-page cookie issued by the node ahead opens the page on the other and a logout on it ends
// it there, and the lead moves within 10 s when its holder is killed: none of it reads a clock.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { waitFor, type Server } from '../../_helpers/common.ts';
import { SECRET, startNode, TOKEN, worldEnv } from '../../fixtures/workers.ts';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

test('clocks 5 minutes apart: one job per delivery, sessions across nodes, the lead moves', async () => {
  if (!existsSync(LIBFAKETIME))
    return void console.log('  skipped: faketime is not installed (apt-get install faketime)');
  const pg = await startPostgres();
  if (!pg) return;
  const repos = { 'octo/site': {} };
  const start = (name: string, extra: Record<string, string>) => startNode(name, repos, { ...worldEnv(pg), ...extra });
  const a = await start('a', {});
  const b = await start('b', { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+5m', FAKETIME_DONT_RESET: '1' });
  const nodes: Server[] = [a, b];
  try {
    const clockOf = async (node: Server) => Date.parse((await fetch(`${node.url}/healthz`)).headers.get('date')!);
    const skew = (await clockOf(b)) - (await clockOf(a));
    console.log(`  node b's clock is ${Math.round(skew / 1000)} s ahead of node a's`);
    assert.ok(skew > 4 * 60_000, 'faketime moved b ahead');

    const delivery = randomUUID();
    const payload = pushPayload('octo/site', { sha: '7'.repeat(40) });
    const first = await deliverGithub(b.url, 'push', payload, SECRET, { delivery });
    assert.is(first.status, 202);
    const again = await deliverGithub(a.url, 'push', payload, SECRET, { delivery });
    assert.equal([again.status, again.json.duplicate, again.json.job], [200, true, first.json.job]);

    const login = await fetch(`${b.url}/login`, {
      method: 'POST',
      body: new URLSearchParams({ token: TOKEN }).toString(),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      redirect: 'manual',
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    const page = (node: Server) =>
      fetch(`${node.url}/`, { headers: { Accept: HTML, Cookie: cookie }, redirect: 'manual' });
    assert.is((await page(a)).status, 200, 'a cookie issued 5 minutes "later" opens the page on the node behind');
    await fetch(`${a.url}/logout`, { method: 'POST', headers: { Cookie: cookie }, redirect: 'manual' });
    await waitFor(async () => (await page(b)).status === 401, {
      timeoutMs: 5_000,
      what: 'b to refuse the ended session',
    });

    const leading = async () => {
      for (const node of nodes) {
        const health = await fetch(`${node.url}/healthz`).then(
          (r) => r.json(),
          () => undefined,
        );
        if (health?.leader) return node;
      }
      return undefined;
    };
    const leader = (await waitFor(leading, { what: 'a leader' }))!;
    leader.child.kill('SIGKILL');
    const other = leader === a ? b : a;
    const killed = Date.now();
    await waitFor(async () => (await leading()) === other, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'the other to lead',
    });
    console.log(`  the other node led ${Date.now() - killed} ms after kill -9 of the leader`);
  } finally {
    for (const node of nodes) await node.stop();
  }
});

test.run();
