// Two hook-servers on one PostgreSQL (docs/ha.md): a delivery retried on the other node makes no
// second job (200 {"duplicate": true, "job": ID}), also once its job has ended; GitLab's
// Idempotency-Key is the key; a reused delivery id with another body is still refused by its
// signature; the same deliveries sent to both nodes at once make one job each; a kept delivery is
// replayed as a new job (`shipkit deliveries replay`), and one that cannot be is refused;
// deliveries to several repos commit together, and one repo's failure is not the others'.
import { createHash, randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, post, pushPayload, readRuns } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { runScript, waitFor, type Server } from '../../_helpers/common.ts';
import {
  queueConfig,
  SECRET,
  startHookServer,
  startWorker,
  TOKEN,
  waitForState,
  worldEnv,
  type Worker,
} from '../../fixtures/workers.ts';

let pg: Postgres | undefined;
let a: Server | undefined;
let b: Server | undefined;
let worker: Worker | undefined;
let workerDir = '';
let configA = '';
const repos = { 'octo/site': {}, 'group/app': {}, 'octo/ticker': {} };

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg);
  configA = queueConfig('a', repos, { concurrency: 0 }).config;
  a = await startHookServer(configA, env);
  b = await startHookServer(queueConfig('b', repos, { concurrency: 0 }).config, env);
  const w = queueConfig('worker', repos, { concurrency: 2 });
  workerDir = w.dir;
  worker = await startWorker(w.config, 'w1', env);
});

test.after(async () => {
  await worker?.stop();
  await a?.stop();
  await b?.stop();
});

const jobCount = async (where = 'true') => Number(await pg!.sql(`SELECT count(*) FROM shipkit.jobs WHERE ${where}`));

test('a delivery retried on the other node is answered with the first job, before and after it ran', async () => {
  if (!pg) return;
  const delivery = randomUUID();
  const payload = pushPayload('octo/site', { sha: '1'.repeat(40) });
  const first = await deliverGithub(a!.url, 'push', payload, SECRET, { delivery });
  assert.is(first.status, 202, JSON.stringify(first.json));
  const again = await deliverGithub(b!.url, 'push', payload, SECRET, { delivery });
  assert.is(again.status, 200, JSON.stringify(again.json));
  assert.equal([again.json.duplicate, again.json.job], [true, first.json.job]);
  await waitForState(a!, first.json.job, ['succeeded']);
  const late = await deliverGithub(b!.url, 'push', payload, SECRET, { delivery });
  assert.equal([late.status, late.json.duplicate, late.json.job], [200, true, first.json.job]);
  assert.is(await jobCount(`record->>'deliveryId' = '${delivery}'`), 1);
  assert.is(readRuns(workerDir).started.filter((id) => id === first.json.job).length, 1, 'built once');
});

test("GitLab's Idempotency-Key is the key: a retry on the other node makes no job", async () => {
  if (!pg) return;
  const body = JSON.stringify({
    object_kind: 'push',
    ref: 'refs/heads/main',
    after: '2'.repeat(40),
    checkout_sha: '2'.repeat(40),
    project: { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' },
  });
  const key = randomUUID();
  const headers = (uuid: string) => ({
    'Content-Type': 'application/json',
    'X-Gitlab-Event': 'Push Hook',
    'X-Gitlab-Token': SECRET,
    'Idempotency-Key': key,
    // GitLab sends a new event UUID with each retry; the idempotency key stays.
    'X-Gitlab-Event-UUID': uuid,
  });
  const first = await post(`${a!.url}/hooks/gitlab`, body, headers(randomUUID()));
  assert.is(first.status, 202, JSON.stringify(first.json));
  const retry = await post(`${b!.url}/hooks/gitlab`, body, headers(randomUUID()));
  assert.equal([retry.status, retry.json.duplicate, retry.json.job], [200, true, first.json.job]);
  assert.is(await jobCount(`record->>'deliveryId' = '${key}'`), 1);
});

test('a delivery id reused with another body: the signature still decides, and a signed one is a duplicate', async () => {
  if (!pg) return;
  const delivery = randomUUID();
  const first = await deliverGithub(a!.url, 'push', pushPayload('octo/site', { sha: '3'.repeat(40) }), SECRET, {
    delivery,
  });
  assert.is(first.status, 202);
  const before = await jobCount();
  const forged = await deliverGithub(
    b!.url,
    'push',
    pushPayload('octo/site', { sha: '4'.repeat(40) }),
    'not-the-secret',
    {
      delivery,
    },
  );
  assert.is(forged.status, 401, 'an unsigned body never gets past the key');
  const signed = await deliverGithub(b!.url, 'push', pushPayload('octo/site', { sha: '4'.repeat(40) }), SECRET, {
    delivery,
  });
  assert.equal([signed.status, signed.json.duplicate, signed.json.job], [200, true, first.json.job]);
  assert.is(await jobCount(), before, 'no job was made');
});

test('the same 20 deliveries sent to both nodes at once make 20 jobs', async () => {
  if (!pg) return;
  const sends = Array.from({ length: 20 }, (_, i) => ({
    delivery: randomUUID(),
    payload: pushPayload('octo/site', { sha: String(i).padStart(40, 'b') }),
  }));
  const answers = await Promise.all(
    sends.flatMap(({ delivery, payload }) =>
      [a!, b!].map((node) => deliverGithub(node.url, 'push', payload, SECRET, { delivery })),
    ),
  );
  for (const res of answers) assert.ok([200, 202].includes(res.status), JSON.stringify(res.json));
  assert.is(answers.filter((r) => r.status === 202).length, 20, 'one 202 per delivery');
  for (let i = 0; i < answers.length; i += 2)
    assert.is(answers[i].json.job, answers[i + 1].json.job, 'both nodes name one job');
  const keys = sends.map((s) => `'${s.delivery}'`).join(',');
  assert.is(await jobCount(`record->>'deliveryId' IN (${keys})`), 20);
  // Each body kept is the one its delivery carried: a batch's bodies travel as one value, cut apart again.
  const kept = await pg!.sql(
    `SELECT string_agg(delivery_id || ' ' || md5(body), ',' ORDER BY delivery_id COLLATE "C") FROM shipkit.deliveries WHERE delivery_id IN (${keys})`,
  );
  const sent = sends
    .map((s) => `${s.delivery} ${createHash('md5').update(JSON.stringify(s.payload)).digest('hex')}`)
    .sort()
    .join(',');
  assert.is(kept, sent);
});

test('deliveries list shows what is kept; replay queues a kept delivery again as a new job; bad ids are refused', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const delivery = randomUUID();
  const first = await deliverGithub(b!.url, 'push', pushPayload('octo/site', { sha: '5'.repeat(40) }), SECRET, {
    delivery,
  });
  await waitForState(a!, first.json.job, ['succeeded']);
  const listed = await runScript('deliveries', ['list', '--config', configA, '--json', '--repo', 'octo/site'], { env });
  assert.is(listed.exitCode, 0, listed.stderr);
  const kept = JSON.parse(listed.stdout);
  const mine = kept.find((d: { id: string }) => d.id === delivery);
  assert.equal([mine.source, mine.job, mine.repo, mine.event], ['github', first.json.job, 'octo/site', 'push']);
  assert.ok(mine.bytes > 1000, 'the body is kept');
  assert.ok(kept.every((d: { repo: string }) => d.repo === 'octo/site'));

  const replayed = await runScript('deliveries', ['replay', first.json.job, '--config', configA, '--json'], { env });
  assert.is(replayed.exitCode, 0, replayed.stderr);
  const { job } = JSON.parse(replayed.stdout);
  assert.is.not(job, first.json.job);
  const done = await waitForState(b!, job, ['succeeded']);
  assert.is(done.sha, '5'.repeat(40));
  // An operator who replays wants a run: the job is forced past the up-to-date check.
  assert.is(done.force, true, 'a replayed job is forced');

  const before = await jobCount();
  for (const bad of ['no-such-delivery', "'; DROP TABLE shipkit.jobs; --"]) {
    const refused = await runScript('deliveries', ['replay', bad, '--config', configA], { env });
    assert.is(refused.exitCode, 1, refused.stderr);
    assert.match(refused.stderr, 'is kept: give a delivery id or a job id');
  }
  assert.is(await jobCount(), before, 'nothing queued');
});

test('a job taken by one node, built on a worker: both nodes have its whole log; the leader deletes the chunks after', async () => {
  if (!pg) return;
  const res = await deliverGithub(a!.url, 'push', pushPayload('octo/ticker', { sha: '6'.repeat(40) }), SECRET);
  assert.is(res.status, 202);
  await waitForState(b!, res.json.job, ['succeeded']);
  for (const node of [a!, b!]) {
    const log = await waitFor(
      async () => {
        const text = await (
          await fetch(`${node.url}/jobs/${res.json.job}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } })
        ).text();
        return text.includes('tick 20 of 20') ? text : undefined;
      },
      { what: 'the whole log on each node' },
    );
    for (let i = 1; i <= 20; i++) assert.match(log!, `tick ${i} of 20`);
  }
  await waitFor(
    async () => (await pg!.sql(`SELECT count(*) FROM shipkit.job_output WHERE job_id = '${res.json.job}'`)) === '0',
    { what: 'the chunks to be deleted' },
  );
});

test('deliveries past their 14 days are forgotten; younger ones are kept', async () => {
  if (!pg) return;
  const { default: pgModule } = await import('pg');
  const { forgetOldDeliveries } = await import('../../../lib/jobs/pg/records.ts');
  const kept = Number(await pg.sql('SELECT count(*) FROM shipkit.deliveries'));
  assert.ok(kept >= 3);
  await pg.sql(
    `UPDATE shipkit.deliveries SET received = now() - interval '15 days' WHERE delivery_id IN (SELECT delivery_id FROM shipkit.deliveries ORDER BY received LIMIT 2)`,
  );
  const client = new pgModule.Client({ connectionString: pg.url });
  await client.connect();
  try {
    assert.is(await forgetOldDeliveries(client), 2);
  } finally {
    await client.end();
  }
  assert.is(Number(await pg.sql('SELECT count(*) FROM shipkit.deliveries')), kept - 2);
});

test("deliveries to two repos at once commit together; one repo's failing statement fails only its own", async () => {
  if (!pg) return;
  // A job of octo/ticker cannot be stored: its batch's statement fails, in whichever transaction.
  await pg.sql(`ALTER TABLE shipkit.jobs ADD CONSTRAINT no_ticker CHECK (repo <> 'octo/ticker') NOT VALID`);
  const sends = ['octo/site', 'octo/ticker'].flatMap((repo) =>
    Array.from({ length: 12 }, (_, i) => ({
      repo,
      delivery: randomUUID(),
      payload: pushPayload(repo, { sha: String(i).padStart(40, 'c') }),
    })),
  );
  const answers = await Promise.all(
    sends.map(({ delivery, payload }) => deliverGithub(a!.url, 'push', payload, SECRET, { delivery })),
  );
  answers.forEach((res, i) => {
    const { repo } = sends[i];
    assert.is(res.status, repo === 'octo/ticker' ? 503 : 202, `${repo}: ${JSON.stringify(res.json)}`);
  });
  const keysOf = (repo: string) =>
    sends
      .filter((s) => s.repo === repo)
      .map((s) => `'${s.delivery}'`)
      .join(',');
  assert.is(await jobCount(`record->>'deliveryId' IN (${keysOf('octo/site')})`), 12);
  assert.is(await jobCount(`record->>'deliveryId' IN (${keysOf('octo/ticker')})`), 0, 'nothing of the failed repo');
  assert.is(
    await pg.sql(`SELECT count(*) FROM shipkit.deliveries WHERE delivery_id IN (${keysOf('octo/ticker')})`),
    '0',
  );
});

test('deliveries without queue: exits 2 naming the setting', async () => {
  const { config } = queueConfig('plain', {}, {});
  const noQueue = config.replace(/shipkit\.yml$/, 'plain.yml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(noQueue, 'data: ./data\nrepos: {}\n');
  const res = await runScript('deliveries', ['list', '--config', noQueue]);
  assert.is(res.exitCode, 2, res.stderr);
  assert.match(res.stderr, 'has no queue: setting');
});

test.run();
