// shipkit backup and restore with `queue:` (docs/backup.md): the job records in a real PostgreSQL
// go into the backup through pg_dump and come back in another cluster (a new machine), where a
// new hook-server shows the same jobs; a database that already holds shipkit jobs is refused
// without --force (or left alone with --no-database); no pg_dump on the PATH is a clear exit 2;
// the password is never in the backup's manifest or the output.
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { queueConfig, SECRET, startHookServer, TOKEN, waitForState, worldEnv } from '../../fixtures/workers.ts';
import { runScript, tmpDir } from '../../_helpers/common.ts';

let first: Postgres | undefined;
let second: Postgres | undefined;

test.before(async () => {
  first = await startPostgres();
  second = first && (await startPostgres());
});

async function jobsOf(url: string): Promise<string[]> {
  const res = await fetch(`${url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return ((await res.json()) as { jobs: Array<{ id: string; state: string }> }).jobs
    .map((j) => `${j.id} ${j.state}`)
    .sort();
}

test('the queue database goes into the backup and comes back in a new cluster with the same jobs', async () => {
  if (!first || !second) return;
  const { dir, config } = queueConfig('old', { 'octo/a': {}, 'octo/b': {} });
  const env = worldEnv(first);
  const server = await startHookServer(config, env);
  let jobs: string[];
  try {
    for (const repo of ['octo/a', 'octo/b']) {
      const sent = await deliverGithub(server.url, 'push', pushPayload(repo), SECRET);
      assert.is(sent.status, 202, JSON.stringify(sent.json));
      await waitForState(server, sent.json.job, ['succeeded'], 60_000);
    }
    jobs = await jobsOf(server.url);
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
  assert.is(jobs.length, 2);

  const to = path.join(dir, 'backup');
  const backup = await runScript('backup', ['--config', config, '--to', to], { env });
  assert.is(backup.exitCode, 0, backup.stderr);
  const manifest = JSON.parse(readFileSync(path.join(to, 'MANIFEST.json'), 'utf8'));
  assert.ok(
    manifest.parts.some((p: { path: string }) => p.path === 'database/queue.dump'),
    'the database part',
  );
  assert.is(manifest.database, `127.0.0.1:${first.port}/postgres as shipkit`);
  for (const text of [readFileSync(path.join(to, 'MANIFEST.json'), 'utf8'), backup.stdout, backup.stderr])
    assert.not.ok(text.includes(first.password), 'no password');

  // A new machine: another cluster, the same config; the URL in its own environment.
  const newEnv = worldEnv(second);
  const target = path.join(tmpDir(), 'new');
  const restore = await runScript('restore', ['--from', to, '--to', target], { env: newEnv });
  assert.is(restore.exitCode, 0, restore.stderr);
  assert.match(restore.stdout, `the queue database: 127.0.0.1:${second.port}/postgres as shipkit`);
  const again = await startHookServer(path.join(target, 'shipkit.yml'), newEnv);
  try {
    assert.equal(await jobsOf(again.url), jobs, 'the same jobs, from the new database');
  } finally {
    assert.is(await again.stop(), 0, again.output());
  }

  // The new cluster holds jobs now: a second restore into it is refused, nothing written…
  const elsewhere = path.join(tmpDir(), 'again');
  const refused = await runScript('restore', ['--from', to, '--to', elsewhere], { env: newEnv });
  assert.is(refused.exitCode, 2, refused.stderr);
  assert.match(refused.stderr, /already holds 2 shipkit jobs: pass --no-database .* or --force/);
  assert.is((await runScript('backup', ['verify', to])).exitCode, 0);
  assert.not.ok(existsSync(elsewhere), 'nothing written');
  // …and with --no-database the files come back and the database is left as it is.
  const kept = await runScript('restore', ['--from', to, '--to', elsewhere, '--no-database', '--json'], {
    env: newEnv,
  });
  assert.is(kept.exitCode, 0, kept.stderr);
  assert.is(JSON.parse(kept.stdout).database, 'left as it is');
});

test('no pg_dump on the PATH: exit 2 naming postgresql-client, nothing written; --no-database leaves it out', async () => {
  if (!first) return;
  const { dir, config } = queueConfig('nopgdump', { 'octo/a': {} });
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, path.join(bin, 'node'));
  const env = { ...worldEnv(first), PATH: bin };
  const to = path.join(dir, 'backup');
  const run = await runScript('backup', ['--config', config, '--to', to], { env });
  assert.is(run.exitCode, 2, run.stderr);
  assert.match(run.stderr, /needs pg_dump, which is not on the PATH.*apt-get install postgresql-client.*--no-database/);
  assert.not.ok(existsSync(to), 'nothing written');
  const without = await runScript('backup', ['--config', config, '--to', to, '--no-database', '--json'], { env });
  assert.is(without.exitCode, 0, without.stderr);
  const manifest = JSON.parse(readFileSync(path.join(to, 'MANIFEST.json'), 'utf8'));
  assert.not.ok('database' in manifest);
});

test.run();
