// A backup's database part (lib/backup/database.ts) against two real PostgreSQL clusters: pg_dump
// of shipkit's schemas from one, pg_restore into the other in one transaction, the jobs counted
// before and after; the password never in a message; a cluster that refuses is a WorkError.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../lib/core/errors.ts';
import { dumpDatabase, jobsIn, queueDatabase, restoreDatabase } from '../../../lib/backup/database.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { tmpDir } from '../../_helpers/common.ts';

const from = await startPostgres();
const to = from && (await startPostgres());

test('dumped from one cluster, restored into another: the same jobs', async () => {
  if (!from || !to) return;
  await from.sql(
    "CREATE SCHEMA shipkit; CREATE TABLE shipkit.jobs (id text PRIMARY KEY, record jsonb); INSERT INTO shipkit.jobs VALUES ('j1', '{}'), ('j2', '{}'); CREATE SCHEMA shipkit_boss; CREATE TABLE shipkit_boss.job (id int); CREATE TABLE public.other (x int)",
  );
  const source = await queueDatabase(from.url, '/');
  const target = await queueDatabase(to.url, '/');
  assert.is(await jobsIn(source), 2);
  assert.is(await jobsIn(target), 0, 'no shipkit schema yet: 0');
  const file = path.join(tmpDir('shipkit-dump-'), 'queue.dump');
  await dumpDatabase(source, file);
  await restoreDatabase(target, file);
  assert.is(await jobsIn(target), 2);
  assert.is(await to.sql("SELECT string_agg(id, ',' ORDER BY id) FROM shipkit.jobs"), 'j1,j2');
  assert.is(
    await to.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'other'"),
    '0',
    "only shipkit's schemas",
  );
  await restoreDatabase(target, file); // again: replaced, not doubled
  assert.is(await jobsIn(target), 2);
});

test('a wrong password: a WorkError naming the database, never the password', async () => {
  if (!from) return;
  const url = new URL(from.url);
  url.password = 'not-the-password-123';
  const db = await queueDatabase(url.toString(), '/');
  for (const attempt of [() => jobsIn(db), () => dumpDatabase(db, path.join(tmpDir('shipkit-dump-'), 'x.dump'))]) {
    const error = await attempt().catch((e: unknown) => e);
    assert.instance(error, WorkError);
    assert.match(String(error), new RegExp(`127\\.0\\.0\\.1:${from.port}/postgres as shipkit`));
    assert.not.match(String(error), /not-the-password-123/);
  }
});

test.after(async () => {
  await from?.stop();
  await to?.stop();
});

test.run();
