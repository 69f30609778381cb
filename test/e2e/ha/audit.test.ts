// The audit trail with queue: (docs/audit.md): two hook-servers logging people in at once, and
// `deliveries replay` of a stored delivery whose repo holds a newline, ANSI and `..`, all append
// to shipkit.audit as one chain that `shipkit audit --verify` checks; the refused replay is
// recorded and shown escaped; an edited row makes --verify exit 2 naming it; rows re-made from
// one on, or cut from the end, are found by the head a node keeps in its DATA.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainLines, sha256Hex, type AuditEntry } from '../../../lib/audit/chain.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { runScript, startScript } from '../../_helpers/common.ts';
import { pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { queueConfig, TOKEN, worldEnv } from '../../fixtures/workers.ts';

const HOSTILE = 'evil/..\n\u001b[31mred';

function login(url: string, user: string) {
  return fetch(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: TOKEN, user }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
}

test('two nodes appending at once keep one chain; a hostile replay is refused, recorded and shown escaped', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const configA = queueConfig('a', repos, { concurrency: 0 }).config;
  const node = (config: string, name: string) =>
    startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', name], { env });
  const a = await node(configA, 'a');
  const b = await node(queueConfig('b', repos, { concurrency: 0 }).config, 'b');
  try {
    const answers = await Promise.all(
      Array.from({ length: 15 }, (_, i) => [login(a.url, `a${i}`), login(b.url, `b${i}`)]).flat(),
    );
    assert.equal(
      answers.map((r) => r.status),
      Array(30).fill(303),
    );
    assert.is(await pg.sql("SELECT count(*) || ' ' || max(n) FROM shipkit.audit"), '30 30');

    // A kept delivery whose repo is hostile (as if the config had changed since): refused, recorded.
    // JSON has no raw control characters and no single quote here: a plain SQL string holds it.
    const body = JSON.stringify(pushPayload(HOSTILE));
    assert.not.match(body, "'");
    await pg.sql(
      `INSERT INTO shipkit.deliveries (source, delivery_id, job_id, repo, event, format, body) VALUES ('github', 'd-1', 'j-1', E'evil/..\\n\\x1b[31mred', 'push', 'json', convert_to('${body}', 'UTF8'))`,
    );
    const replay = await runScript('deliveries', ['replay', 'd-1', '--config', configA], { env });
    assert.is(replay.exitCode, 1, replay.stderr);
    assert.is(await pg.sql("SELECT count(*) FROM shipkit.jobs WHERE repo LIKE 'evil%'"), '0', 'nothing queued');

    const verified = await runScript('audit', ['--verify', '--config', configA], { env });
    assert.is(verified.exitCode, 0, verified.stderr);
    assert.match(verified.stdout, 'entries 1 to 31');
    const shown = await runScript('audit', ['--since', '30', '--config', configA], { env });
    assert.is(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, 'delivery.replay_refused');
    assert.match(shown.stdout, 'evil/..\\u000a\\u001b[31mred');
    assert.not.match(shown.stdout, /\u001b/);
    const nodes = await pg.sql(
      "SELECT string_agg(DISTINCT line::jsonb->>'node', ',') FROM shipkit.audit WHERE n <= 30",
    );
    assert.is(nodes, 'a,b');

    await pg.sql(`UPDATE shipkit.audit SET line = replace(line, '"user":"a3"', '"user":"x3"') WHERE n <= 30`);
    const broken = await runScript('audit', ['--verify', '--config', configA], { env });
    assert.is(broken.exitCode, 2);
    assert.match(broken.stderr, /audit entry \d+: does not follow entry \d+/);
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
});

test("the database's trail against the head a node keeps in DATA: rows re-made from one on, or cut, exit 2", async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const { dir, config } = queueConfig('a', repos, { concurrency: 0 });
  const node = (file: string, name: string) =>
    startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0', '--name', name], { env });
  for (const [file, name, users] of [
    [config, 'a', ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']],
    [queueConfig('b', repos, { concurrency: 0 }).config, 'b', ['u7', 'u8']],
  ] as const) {
    const server = await node(file, name);
    try {
      for (const user of users) assert.is((await login(server.url, user)).status, 303);
    } finally {
      assert.is(await server.stop(), 0, server.output());
    }
  }
  const kept = JSON.parse(readFileSync(path.join(dir, 'data', 'audit-head.json'), 'utf8'));
  const rows = (await pg.sql('SELECT line FROM shipkit.audit ORDER BY n')).split('\n');
  assert.equal([kept.n, kept.hash], [6, sha256Hex(rows[5])], "node a keeps the head it appended; b's came after");
  const verify = () => runScript('audit', ['--verify', '--config', config], { env });
  const whole = await verify();
  assert.is(whole.exitCode, 0, whole.stderr);
  assert.match(whole.stdout, 'entries 1 to 8; head sha256');
  assert.match(whole.stdout, '(entry 6)');

  // Entry 2 edited, rows 3 to 8 chained anew after it: the chain verifies, the kept head does not match.
  const entries = rows.map((l) => JSON.parse(l) as AuditEntry);
  const rest = entries.slice(1).map(({ n: _n, prev: _p, ...e }, i) => (i === 0 ? { ...e, detail: { user: 'x' } } : e));
  const remade = chainLines(rest, { n: 1, hash: sha256Hex(rows[0]) }).lines;
  const put = (lines: string[], from: number) =>
    pg.sql(lines.map((l, i) => `UPDATE shipkit.audit SET line = $L$${l}$L$ WHERE n = ${from + i};`).join('\n'));
  await put(remade, 2);
  const rewritten = await verify();
  assert.is(rewritten.exitCode, 2, rewritten.stdout);
  assert.match(rewritten.stderr, 'the audit trail was rewritten: entry 6 is not the one whose sha256');

  // Put back, then the end cut below the kept head.
  await put(rows, 1);
  assert.is((await verify()).exitCode, 0);
  await pg.sql('DELETE FROM shipkit.audit WHERE n > 4');
  const cut = await verify();
  assert.is(cut.exitCode, 2, cut.stdout);
  assert.match(cut.stderr, 'the audit trail was cut: it ends at entry 4');
  assert.match(cut.stderr, 'entries 5 to 6 were removed from its end');
});

test.run();
