// The audit trail with queue: (docs/audit.md): two hook-servers logging people in at once, and
// `deliveries replay` of a stored delivery whose repo holds a newline, ANSI and `..`, all append
// to shipkit.audit as one chain that `shipkit audit --verify` checks; the refused replay is
// recorded and shown escaped; an edited row makes --verify exit 2 naming it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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

test.run();
