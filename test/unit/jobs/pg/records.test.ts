// The fenced writes of the queue database's records (lib/jobs/pg/records.ts) on a real
// PostgreSQL: a leader that was paused while another took over (a higher term in shipkit.leader)
// marks nothing told, and says so; the leader of the current term does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { stillLeads } from '../../../../lib/jobs/pg/leader.ts';
import { markTold } from '../../../../lib/jobs/pg/records.ts';
import { ensureSchema } from '../../../../lib/db/schema.ts';
import { startPostgres } from '../../../fixtures/postgres.ts';

test('markTold is fenced: an old term writes nothing, the current one marks the ends once', async () => {
  const db = await startPostgres();
  if (!db) return;
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on('error', () => undefined);
  try {
    const client = await pool.connect();
    await ensureSchema(client, 'test');
    client.release();
    await db.sql(`INSERT INTO shipkit.jobs (id, repo, state, record) VALUES
      ('20261125-000000-aaaaaa', 'octo/site', 'succeeded', '{}'), ('20261125-000001-bbbbbb', 'octo/site', 'failed', '{}');
      INSERT INTO shipkit.leader (id, term, node, since) VALUES (1, 5, 'b', now())`);
    const ids = ['20261125-000000-aaaaaa', '20261125-000001-bbbbbb'];
    assert.is(await stillLeads(pool, 4), false, 'term 4 was taken over');
    assert.is(await markTold(pool, ids, 4), 0, 'the paused old leader marks nothing');
    assert.is(await db.sql('SELECT count(*) FROM shipkit.jobs WHERE told'), '0');
    assert.is(await stillLeads(pool, 5), true);
    assert.is(await markTold(pool, ids, 5), 2);
    assert.is(await markTold(pool, ids, 5), 0, 'an end is marked told once');
    assert.is(await db.sql('SELECT count(*) FROM shipkit.jobs WHERE told'), '2');
  } finally {
    await pool.end();
    await db.stop();
  }
});

test.run();
