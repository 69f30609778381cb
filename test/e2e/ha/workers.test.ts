// Delivery workers (`workers: 2`) in front of a queue: database (docs/hook-server.md): a delivery a
// worker takes reaches the database whole (its body crosses IPC to the primary, which keeps it
// under its delivery id), a retry is answered with the first job, and the kept delivery replays.
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { runScript, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startHookServer, waitForState, worldEnv } from '../../fixtures/workers.ts';

let pg: Postgres | undefined;
let server: Server | undefined;
let config = '';

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  config = queueConfig('a', { 'octo/site': {} }, { concurrency: 1 }).config;
  appendFileSync(config, 'workers: 2\n');
  server = await startHookServer(config, worldEnv(pg));
});

test.after(async () => {
  if (server) assert.is(await server.stop(), 0, server.output().slice(-2000));
});

test('a delivery taken by a worker is kept whole in the database, deduplicated and replayed', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const delivery = randomUUID();
  const payload = pushPayload('octo/site', { sha: '7'.repeat(40) });
  const first = await deliverGithub(server!.url, 'push', payload, SECRET, { delivery });
  assert.is(first.status, 202, JSON.stringify(first.json));
  const again = await deliverGithub(server!.url, 'push', payload, SECRET, { delivery });
  assert.is(again.status, 200, JSON.stringify(again.json));
  assert.equal([again.json.duplicate, again.json.job], [true, first.json.job]);
  await waitForState(server!, first.json.job, ['succeeded']);

  const listed = await runScript('deliveries', ['list', '--config', config, '--json'], { env });
  assert.is(listed.exitCode, 0, listed.stderr);
  const mine = JSON.parse(listed.stdout).find((d: { id: string }) => d.id === delivery);
  assert.equal([mine.source, mine.job, mine.event], ['github', first.json.job, 'push']);
  assert.is(mine.bytes, Buffer.byteLength(JSON.stringify(payload)), 'the body is kept byte for byte');
  assert.is(Number(await pg.sql(`SELECT count(*) FROM shipkit.jobs`)), 1);

  const replayed = await runScript('deliveries', ['replay', delivery, '--config', config, '--json'], { env });
  assert.is(replayed.exitCode, 0, replayed.stderr);
  const done = await waitForState(server!, JSON.parse(replayed.stdout).job, ['succeeded']);
  assert.is(done.sha, '7'.repeat(40));
});

test.run();
