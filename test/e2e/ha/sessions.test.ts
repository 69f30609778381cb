// Status-page sessions across two hook-servers on one PostgreSQL (docs/ha.md): a cookie issued by
// one node opens the page on the other; a logout on either ends the session on both within a
// couple of seconds; another session lives on; `hook-server --end-sessions` ends them all on both.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startPostgres } from '../../fixtures/postgres.ts';
import { runScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, startHookServer, TOKEN, worldEnv } from '../../fixtures/workers.ts';
import { logIn } from '../../fixtures/session.ts';

const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

async function page(server: Server, cookie: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${server.url}/`, { headers: { Accept: HTML, Cookie: cookie }, redirect: 'manual' });
  return { status: res.status, body: await res.text() };
}

const login = (server: Server) => logIn(server, TOKEN);

test('a session from one node opens the other; a logout on either ends it on both; another lives on', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const configA = queueConfig('a', repos, { concurrency: 0 }).config;
  const a = await startHookServer(configA, env);
  const b = await startHookServer(queueConfig('b', repos, { concurrency: 0 }).config, env);
  try {
    const cookie = await login(a);
    const other = await login(b);
    for (const node of [a, b]) {
      const answer = await page(node, cookie);
      assert.is(answer.status, 200);
      assert.match(answer.body, 'action="/logout"');
    }
    const out = await fetch(`${b.url}/logout`, { method: 'POST', headers: { Cookie: cookie }, redirect: 'manual' });
    assert.is(out.status, 303);
    assert.is((await page(b, cookie)).status, 401, 'ended at once where it logged out');
    const started = Date.now();
    await waitFor(async () => (await page(a, cookie)).status === 401, {
      timeoutMs: 5_000,
      what: 'the other node to refuse the ended session',
    });
    console.log(`  the other node refused the session ${Date.now() - started} ms after the logout`);
    for (const node of [a, b]) assert.is((await page(node, other)).status, 200, 'another session lives on');
    assert.is(await pg.sql('SELECT count(*) FROM shipkit.ended_sessions'), '1');

    // `hook-server --end-sessions` run on one node's machine ends every session on both.
    const fresh = await login(b);
    const ended = await runScript('hook-server', ['--end-sessions', '--config', configA], { env });
    assert.is(ended.exitCode, 0, ended.stderr);
    assert.match(ended.stderr, 'are ended on every hook-server of the queue database');
    await waitFor(
      async () =>
        (await Promise.all([a, b].flatMap((n) => [page(n, other), page(n, fresh)]))).every((p) => p.status === 401),
      { timeoutMs: 5_000, what: 'both nodes to refuse every session' },
    );
    assert.is((await page(a, await login(a))).status, 200, 'a new login opens the page');
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
});

test.run();
