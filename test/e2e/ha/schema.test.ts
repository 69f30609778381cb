// Nodes of one queue database and its schema (docs/ha.md): two hook-servers started at once on an
// empty database make the tables once and both run; a node whose shipkit knows an older schema
// than the database's refuses to start (exit 2, naming both versions) and changes nothing; an
// older schema is brought up to date.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startPostgres } from '../../fixtures/postgres.ts';
import { runScript } from '../../_helpers/common.ts';
import { queueConfig, startHookServer, worldEnv } from '../../fixtures/workers.ts';
import { SCHEMA_VERSION } from '../../../lib/db/schema.ts';

test('two nodes at once on an empty database; then a newer schema is refused by hook-server and worker, untouched', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/site': {} };
  const started = await Promise.allSettled(
    ['a', 'b'].map((name) => startHookServer(queueConfig(name, repos, { concurrency: 0 }).config, env)),
  );
  const [a, b] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  if (!a || !b) {
    await Promise.all([a?.stop(), b?.stop()]);
    throw (started.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
  }
  try {
    assert.is(await pg.sql('SELECT version FROM shipkit.schema_version'), String(SCHEMA_VERSION));
    assert.is(await pg.sql(`SELECT count(*) FROM pg_tables WHERE schemaname = 'shipkit' AND tablename = 'jobs'`), '1');
    // Intake's lookups stay plain index scans, which skip the dead entries of jobs that left 'queued'.
    assert.is(
      await pg.sql(`SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE proname = 'enqueue_batch'`),
      'enable_bitmapscan=off',
    );
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
  // An older schema (version 2 had no fleet tables) is brought up to date by the next node.
  await pg.sql(`DROP TABLE shipkit.fleet_hosts, shipkit.fleet_rollouts; UPDATE shipkit.schema_version SET version = 2`);
  const upgraded = await startHookServer(queueConfig('c', repos, { concurrency: 0 }).config, env);
  assert.is(await upgraded.stop(), 0, upgraded.output());
  assert.is(await pg.sql('SELECT version FROM shipkit.schema_version'), String(SCHEMA_VERSION));
  assert.is(
    await pg.sql(`SELECT count(*) FROM pg_tables WHERE schemaname = 'shipkit' AND tablename LIKE 'fleet_%'`),
    '2',
  );
  await pg.sql(`UPDATE shipkit.schema_version SET version = 99, shipkit = '9.9.9'`);
  const tables = `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'shipkit'`;
  const before = await pg.sql(tables);
  const { config } = queueConfig('old', repos, { concurrency: 0 });
  for (const script of ['hook-server', 'worker']) {
    const old = await runScript(script, ['--config', config, ...(script === 'worker' ? ['--name', 'old'] : [])], {
      env,
      timeoutMs: 30_000,
    });
    assert.is(old.exitCode, 2, old.stderr);
    assert.match(old.stderr, 'tables are version 99 (written by shipkit 9.9.9), newer than this shipkit');
    assert.match(old.stderr, 'nothing in the database was changed');
  }
  assert.is(await pg.sql('SELECT version FROM shipkit.schema_version'), '99');
  assert.is(await pg.sql(tables), before);
});

test.run();
