// @deno
// hook-server with `queue:` (a real PostgreSQL) and `shipkit worker`s (docs/design.md): jobs run on
// the workers with the same runner, the worker's name on /jobs; two workers never run one repo at
// once; a queued push is superseded while an older one runs on another worker; a worker whose
// config lacks a repo leaves its jobs alone. Faults: test/e2e/worker/faults.test.ts.
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload, readRuns, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { openEventStream } from '../../fixtures/hooks/event-stream.ts';
import { startReceiver } from '../../fixtures/hooks/receiver.ts';
import { makeBareRepo, rootBuildUser, runCommand, runScript, RUNTIME, tmpDir, waitFor } from '../../_helpers/common.ts';
import {
  jobOf,
  queueConfig,
  SECRET,
  startHookServer,
  startWorker,
  TOKEN,
  waitForState,
  worldEnv,
} from '../../fixtures/workers.ts';

let pg: Postgres | undefined;

test.before(async () => {
  pg = await startPostgres();
});

test('hook-server with concurrency 0 builds nothing itself; two workers build, each named on /jobs, never one repo twice at once', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const repos = { 'octo/a': {}, 'octo/b': {}, 'octo/c': {} };
  const server = await startHookServer(queueConfig('server', repos, { concurrency: 0 }).config, env);
  const one = queueConfig('one', repos);
  const two = queueConfig('two', repos);
  for (const { dir } of [one, two]) writeFileSync(path.join(dir, 'sleep'), '0.5');
  const workers = [await startWorker(one.config, 'one', env), await startWorker(two.config, 'two', env)];
  try {
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      const sent = await Promise.all(
        Object.keys(repos).map((repo) =>
          deliverGithub(server.url, 'push', pushPayload(repo, { sha: String(round + 1).repeat(40) }), SECRET),
        ),
      );
      for (const res of sent) assert.is(res.status, 202, JSON.stringify(res.json));
      ids.push(...sent.map((r) => r.json.job));
      // Each round runs before the next is sent, so no push supersedes another: all six run.
      await Promise.all(sent.map((r) => waitForState(server, r.json.job, ['running', 'succeeded'])));
    }
    const ran = await Promise.all(ids.map((id) => waitForState(server, id, ['succeeded'], 60_000)));
    for (const job of ran) assert.ok(['one', 'two'].includes(job.worker), `job ${job.id} ran on ${job.worker}`);
    assert.ok(ran.some((j) => j.worker === 'one') && ran.some((j) => j.worker === 'two'), 'both workers built');
    // Never two jobs of one repo at once, across both workers: their run intervals do not overlap.
    for (const repo of Object.keys(repos)) {
      const spans = ran
        .filter((j) => j.repo === repo)
        .map((j) => [Date.parse(j.started), Date.parse(j.finished)])
        .sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++)
        assert.ok(spans[i][0] >= spans[i - 1][1], `${repo}: a job started before the one before it ended`);
    }
    const metrics = await (
      await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).text();
    for (const name of ['one', 'two']) {
      const count = ran.filter((j) => j.worker === name).length;
      assert.match(metrics, `shipkit_worker_jobs_total{worker="${name}",state="succeeded"} ${count}\n`);
    }
    const page = await (
      await fetch(`${server.url}/jobs/${ran[0].id}`, {
        headers: { Authorization: `Bearer ${TOKEN}`, Accept: 'text/html' },
      })
    ).text();
    assert.match(page, `<dt>Worker</dt><dd><bdi>${ran[0].worker}</bdi></dd>`);
    const runs = [...readRuns(one.dir).started, ...readRuns(two.dir).started];
    assert.is(runs.length, ran.length, 'each job ran once, on one worker');
  } finally {
    for (const w of workers) assert.is(await w.stop(), 0, w.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('a queued push is superseded while an older one runs on a worker; a worker without the repo does not take it', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(
    queueConfig('server', { 'octo/hold': {}, 'octo/other': {} }, { concurrency: 0 }).config,
    env,
  );
  const builder = queueConfig('builder', { 'octo/hold': {} });
  const stranger = queueConfig('stranger', { 'octo/other': {} });
  writeFileSync(path.join(builder.dir, 'hold'), '');
  const workers = [
    await startWorker(builder.config, 'builder', env),
    await startWorker(stranger.config, 'stranger', env),
  ];
  try {
    const first = await deliverGithub(server.url, 'push', pushPayload('octo/hold', { sha: '1'.repeat(40) }), SECRET);
    assert.is((await waitForState(server, first.json.job, ['running'])).worker, 'builder');
    const second = await deliverGithub(server.url, 'push', pushPayload('octo/hold', { sha: '2'.repeat(40) }), SECRET);
    const third = await deliverGithub(server.url, 'push', pushPayload('octo/hold', { sha: '3'.repeat(40) }), SECRET);
    assert.is(second.status, 202);
    assert.is(third.status, 202);
    const superseded = await jobOf(server, second.json.job);
    assert.is(superseded.state, 'superseded');
    assert.match(superseded.reason, third.json.job);
    assert.is((await jobOf(server, first.json.job)).state, 'running', 'the running one is never superseded');
    // The stranger has free slots and no octo/hold in its config: the third stays queued.
    await new Promise((r) => setTimeout(r, 1500));
    assert.is((await jobOf(server, third.json.job)).state, 'queued');
    rmSync(path.join(builder.dir, 'hold'));
    assert.is((await waitForState(server, third.json.job, ['succeeded'], 30_000)).worker, 'builder');
    assert.equal(readRuns(builder.dir).started, [first.json.job, third.json.job], 'the superseded push never ran');
    assert.equal(readRuns(stranger.dir).started, []);
  } finally {
    for (const w of workers) assert.is(await w.stop(), 0, w.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('a burst of pushes to one branch while one runs: each answered once it is committed, exactly one left queued, the rest superseded; a repeated delivery is a duplicate', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(queueConfig('server', { 'octo/hold': {} }, { concurrency: 0 }).config, env);
  const builder = queueConfig('builder', { 'octo/hold': {} });
  writeFileSync(path.join(builder.dir, 'hold'), '');
  const worker = await startWorker(builder.config, 'builder', env);
  try {
    const first = await deliverGithub(server.url, 'push', pushPayload('octo/hold', { sha: '1'.repeat(40) }), SECRET);
    await waitForState(server, first.json.job, ['running']);
    // Sent at once, they commit together (group commit).
    const burst = await Promise.all(
      Array.from({ length: 11 }, (_, i) =>
        deliverGithub(
          server.url,
          'push',
          pushPayload('octo/hold', { sha: ((i % 8) + 2).toString().repeat(40) }),
          SECRET,
          { delivery: `burst-${i}` },
        ),
      ),
    );
    assert.ok(
      burst.every((r) => r.status === 202),
      JSON.stringify(burst.map((r) => r.status)),
    );
    // One delivery sent twice at once is one job, whether the two share a transaction or not.
    const twins = await Promise.all(
      [0, 1].map(() =>
        deliverGithub(server.url, 'push', pushPayload('octo/hold', { sha: '9'.repeat(40) }), SECRET, {
          delivery: 'twin',
        }),
      ),
    );
    assert.equal(twins.map((r) => r.status).sort(), [200, 202], JSON.stringify(twins.map((r) => r.json)));
    assert.is(twins[0].json.job, twins[1].json.job);
    const accepted = [...burst, twins.find((r) => r.status === 202)!];
    const jobs = await Promise.all(accepted.map((r) => jobOf(server, r.json.job)));
    const queued = jobs.filter((j) => j.state === 'queued');
    assert.is(queued.length, 1, JSON.stringify(jobs.map((j) => j.state)));
    assert.ok(jobs.every((j) => j.state === 'queued' || (j.state === 'superseded' && /superseded by /.test(j.reason))));
    assert.is((await jobOf(server, first.json.job)).state, 'running');
    rmSync(path.join(builder.dir, 'hold'));
    await waitForState(server, queued[0].id, ['succeeded'], 30_000);
    assert.equal(readRuns(builder.dir).started, [first.json.job, queued[0].id]);
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('hook-server with queue: and concurrency 1 builds itself too, named after its host; SIGTERM lets its job finish', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const { dir, config } = queueConfig('server', { 'octo/site': {} }, { concurrency: 1 });
  writeFileSync(path.join(dir, 'sleep'), '1');
  const server = await startHookServer(config, env);
  const res = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
  const running = await waitForState(server, res.json.job, ['running']);
  assert.match(running.worker, /\(hook-server\)$/);
  assert.is(await server.stop('SIGTERM'), 0, server.output());
  assert.ok(readRuns(dir).done.includes(res.json.job), 'the running job finished before exit');
  assert.equal(await pg.sql(`SELECT state FROM shipkit.jobs WHERE id = '${res.json.job}'`), 'succeeded');
});

test('jobs built on workers are told as hook-server tells its own: a signed webhook notification for a failure and a success, a badge, and a job that ended while hook-server was down once it is back', async () => {
  if (!pg) return;
  const env = { ...worldEnv(pg), NOTIFY_SECRET: 'notify-secret-for-workers' };
  // The tests before this one share the database: a job of theirs that ended as its hook-server
  // stopped was never told, and is told (rightly) by the next hook-server that starts, this one.
  // Taken as told here, so that the notifications counted below are this test's own.
  await pg.sql(
    `DO $$ BEGIN IF to_regclass('shipkit.jobs') IS NOT NULL THEN UPDATE shipkit.jobs SET told = true; END IF; END $$`,
  );
  const hook = await startReceiver();
  const { config } = queueConfig('server', { 'octo/fail': {}, 'octo/site': {} }, { concurrency: 0 });
  appendFileSync(
    config,
    [
      'ui: public',
      'notify:',
      `  - webhook: ${hook.base}/hooks/shipkit`,
      '    secret: env:NOTIFY_SECRET',
      '    on: [success, failure]',
      '',
    ].join('\n'),
  );
  const server = await startHookServer(config, env);
  const remote = queueConfig('remote', { 'octo/fail': {}, 'octo/site': {} }).config;
  let worker = await startWorker(remote, 'remote', env);
  try {
    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/fail'), SECRET);
    const ok = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    await waitForState(server, failed.json.job, ['failed']);
    await waitForState(server, ok.json.job, ['succeeded']);
    await waitFor(() => hook.received.length >= 2, { what: 'the notifications' });
    const events = hook.received.map((r) => JSON.parse(r.body));
    assert.equal(events.map((e) => `${e.job.repo} ${e.event}`).sort(), ['octo/fail failure', 'octo/site success']);
    assert.equal(events.map((e) => e.job.id).sort(), [failed.json.job, ok.json.job].sort(), 'each job told once');
    assert.ok(hook.received.every((r) => /^sha256=[0-9a-f]{64}$/.test(String(r.headers['x-shipkit-signature']))));
    const badge = await (await fetch(`${server.url}/badge/octo/site.svg`)).text();
    assert.match(badge, /passing/);
    // A job that ends while hook-server is down is told when it starts again, once. The worker
    // is away while the push is taken, so the job cannot end before that hook-server stops.
    assert.is(await server.stop(), 0, server.output());
    assert.is(await worker.stop(), 0, worker.output());
    const queuedWhileUp = await startHookServer(config, env);
    const late = await deliverGithub(
      queuedWhileUp.url,
      'push',
      pushPayload('octo/site', { sha: 'c'.repeat(40) }),
      SECRET,
    );
    assert.is(await queuedWhileUp.stop(), 0);
    worker = await startWorker(remote, 'remote', env);
    await waitFor(
      async () => (await pg!.sql(`SELECT state FROM shipkit.jobs WHERE id = '${late.json.job}'`)) === 'succeeded',
      { what: 'the job to end while hook-server is down' },
    );
    assert.is(hook.received.length, 2, 'nothing told while hook-server is down');
    const again = await startHookServer(config, env);
    await waitFor(() => hook.received.length >= 3, { what: 'the late notification' });
    assert.equal(JSON.parse(hook.received[2].body).job.id, late.json.job);
    await new Promise((r) => setTimeout(r, 500));
    assert.is(await again.stop(), 0, again.output());
    assert.not.match(again.output(), /listener failed/);
    const third = await startHookServer(config, env);
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(hook.received.length, 3, 'told once, not again at the next start');
    assert.is(await third.stop(), 0);
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    await server.stop();
    await hook.close();
  }
});

test('a repo with user: on a worker run as root: built as that user, its work tree and first clone belong to it', async () => {
  if (!pg) return;
  const as = await rootBuildUser('building as another user needs root (uid/gid on spawn)');
  if (!as) return;
  const env = worldEnv(pg);
  const server = await startHookServer(queueConfig('server', { 't/owned': {} }, { concurrency: 0 }).config, env);
  const remote = queueConfig('remote', {});
  chmodSync(path.dirname(remote.dir), 0o755);
  chmodSync(remote.dir, 0o1777); // the fake build, running as the user, records its runs here
  const bare = await makeBareRepo(path.join(remote.dir, 'git'), 'owned');
  chmodSync(path.join(remote.dir, 'git'), 0o755);
  assert.is((await runCommand('chown', ['-R', as.user, bare.bare])).exitCode, 0);
  const { config } = queueConfig(
    'remote',
    { 't/owned': { user: as.user, url: `file://${bare.bare}` } },
    { in: remote.dir },
  );
  chmodSync(config, 0o644);
  const worker = await startWorker(config, 'remote', env);
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('t/owned', { sha: bare.first }), SECRET);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed'], 30_000);
    assert.is(job.state, 'succeeded', worker.output());
    assert.ok(readRuns(remote.dir).lines.includes(`start ${job.id} t/owned ${as.uid}`), 'the build ran as the user');
    const work = path.join(remote.dir, 'data/repos/t__owned');
    assert.is(statSync(path.join(work, 'built.txt')).uid, as.uid);
    assert.is(statSync(path.join(work, '.git')).uid, as.uid, 'the first clone was made as the user');
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test("a job running on a worker: its output follows live on hook-server's job page, is there in full once it ends, and leaves the database", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(queueConfig('server', { 'octo/ticker': {} }, { concurrency: 0 }).config, env);
  const remote = queueConfig('remote', { 'octo/ticker': {} });
  writeFileSync(path.join(remote.dir, 'ticker-lines'), '12');
  writeFileSync(path.join(remote.dir, 'ticker-pause'), '0.25');
  const worker = await startWorker(remote.config, 'remote', env);
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('octo/ticker'), SECRET);
    await waitForState(server, res.json.job, ['running']);
    const stream = await openEventStream(`${server.url}/jobs/${res.json.job}/log?follow=1`, {
      Authorization: `Bearer ${TOKEN}`,
    });
    assert.is(stream.status, 200, stream.body);
    await stream.waitFor((s) => /tick 2 of 12/.test(s.text()), 15_000, 'the first ticks, live');
    assert.not.match(stream.text(), /tick 12 of 12/, 'seen while it runs, not after');
    assert.is((await jobOf(server, res.json.job)).state, 'running');
    await stream.ended;
    await waitForState(server, res.json.job, ['succeeded']);
    const log = await (
      await fetch(`${server.url}/jobs/${res.json.job}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).text();
    for (let i = 1; i <= 12; i++) assert.match(log, `tick ${i} of 12`);
    assert.match(log, new RegExp(`job ${res.json.job} attempt 1:`));
    await waitFor(
      async () => (await pg!.sql(`SELECT count(*) FROM shipkit.job_output WHERE job_id = '${res.json.job}'`)) === '0',
      { what: 'the chunks to be deleted' },
    );
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('hostile rows in the database: a job id or an output id that is a path is refused on worker and hook-server, nothing written outside DATA; the worker builds on', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = queueConfig('server', { 'octo/site': {} }, { concurrency: 0 });
  const hook = await startHookServer(server.config, env);
  const remote = queueConfig('remote', { 'octo/site': {} });
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    const queued = await deliverGithub(hook.url, 'push', pushPayload('octo/site', { sha: '4'.repeat(40) }), SECRET);
    assert.is(queued.status, 202);
    const id = queued.json.job;
    // Its id made a path by someone who can write the database, and output planted under paths.
    await pg.sql(
      `UPDATE shipkit.jobs SET id = '../../escape', record = jsonb_set(record, '{id}', '"../../escape"') WHERE id = '${id}'`,
    );
    await pg.sql(
      `INSERT INTO shipkit.job_output VALUES ('../../planted', 1, 0, 'evil'), ('../../escape', 1, 0, 'evil'); NOTIFY shipkit_output, '../../planted'; NOTIFY shipkit_output, '../../escape'`,
    );
    worker = await startWorker(remote.config, 'remote', env);
    await waitFor(
      async () => (await pg!.sql(`SELECT state FROM shipkit.jobs WHERE id = '../../escape'`)) === 'failed',
      {
        what: 'the hostile job to be refused',
      },
    );
    assert.match(await pg.sql(`SELECT record->>'reason' FROM shipkit.jobs WHERE id = '../../escape'`), /not a job id/);
    const next = await deliverGithub(hook.url, 'push', pushPayload('octo/site', { sha: '5'.repeat(40) }), SECRET);
    assert.is((await waitForState(hook, next.json.job, ['succeeded', 'failed'], 30_000)).state, 'succeeded');
    assert.equal(readRuns(remote.dir).started, [next.json.job], 'the hostile job never ran');
    for (const dir of [server.dir, remote.dir])
      for (const name of ['escape', 'planted'])
        assert.not.ok(existsSync(path.join(dir, name)), `${path.join(dir, name)} was written`);
    assert.match(worker.output(), /refused a job whose id is not a job id/);
    await waitFor(() => /refused job output under an id that is not a job id/.test(hook.output()), {
      what: "hook-server's refusal",
    });
  } finally {
    if (worker) assert.is(await worker.stop(), 0, worker.output());
    assert.is(await hook.stop(), 0, hook.output());
  }
});

test('hostile output in the database: hook-server keeps at most 8 MB of an attempt, skips a chunk that does not follow on, and one of an attempt the job has not reached', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = queueConfig('server', { 'octo/quiet': {}, 'octo/flood': {} }, { concurrency: 0 });
  const hook = await startHookServer(server.config, env);
  try {
    const ids: Record<string, string> = {};
    for (const repo of ['octo/quiet', 'octo/flood']) {
      const res = await deliverGithub(hook.url, 'push', pushPayload(repo), SECRET);
      assert.is(res.status, 202);
      ids[repo] = res.json.job;
    }
    // No worker builds them: their output is what the database says, attempt 1.
    await pg.sql(
      `UPDATE shipkit.jobs SET record = jsonb_set(record, '{attempts}', '1') WHERE id IN ('${ids['octo/quiet']}', '${ids['octo/flood']}')`,
    );
    const quiet = ids['octo/quiet'];
    await pg.sql(
      `INSERT INTO shipkit.job_output VALUES ('${quiet}', 1, 0, 'genuine-a\n'), ('${quiet}', 1, 1000000000, 'PLANTED-FAR\n'), ('${quiet}', 2, 0, 'PLANTED-ATTEMPT\n'); NOTIFY shipkit_output, '${quiet}'`,
    );
    const file = path.join(server.dir, 'data', 'jobs', quiet, 'output.log');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('genuine-a'), {
      what: 'the first chunk',
    });
    await pg.sql(
      `INSERT INTO shipkit.job_output VALUES ('${quiet}', 1, 10, 'genuine-b\n'); NOTIFY shipkit_output, '${quiet}'`,
    );
    await waitFor(() => readFileSync(file, 'utf8').includes('genuine-b'), { what: 'the chunk after the planted one' });
    assert.is(readFileSync(file, 'utf8'), 'genuine-a\ngenuine-b\n');
    // Many planted chunks that do not follow on do not hold back the job's next attempt.
    await pg.sql(
      `INSERT INTO shipkit.job_output SELECT '${quiet}', 1, 100000 + g, 'PLANTED-MANY' FROM generate_series(1, 100) g;
       UPDATE shipkit.jobs SET record = jsonb_set(record, '{attempts}', '2') WHERE id = '${quiet}';
       DELETE FROM shipkit.job_output WHERE job_id = '${quiet}' AND attempt = 2;
       INSERT INTO shipkit.job_output VALUES ('${quiet}', 2, 0, 'second-attempt\n'); NOTIFY shipkit_output, '${quiet}'`,
    );
    await waitFor(() => readFileSync(file, 'utf8').includes('second-attempt'), { what: 'the second attempt' });
    assert.is(readFileSync(file, 'utf8'), 'genuine-a\ngenuine-b\nsecond-attempt\n');
    // 40 MB in 256 KB chunks, each following on: 8 MB are kept.
    const flood = ids['octo/flood'];
    await pg.sql(
      `INSERT INTO shipkit.job_output SELECT '${flood}', 1, g * 262144, decode(repeat('78', 262144), 'hex') FROM generate_series(0, 159) g; NOTIFY shipkit_output, '${flood}'`,
    );
    const flooded = path.join(server.dir, 'data', 'jobs', flood, 'output.log');
    await waitFor(() => existsSync(flooded) && statSync(flooded).size >= 8 * 1024 * 1024, { what: '8 MB written' });
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(statSync(flooded).size, 8 * 1024 * 1024);
  } finally {
    assert.is(await hook.stop(), 0, hook.output());
  }
});

test("a build on a worker cannot read the queue's password: not in its environment, nor in the command line or environment of the processes above it (--queue given literally)", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const hook = await startHookServer(queueConfig('server', { 'octo/envgrep': {} }, { concurrency: 0 }).config, env);
  const remote = queueConfig('remote', { 'octo/envgrep': {} });
  const worker = await startWorker(remote.config, 'remote', { ...env, SHIPKIT_QUEUE_URL: '' }, ['--queue', pg.url]);
  try {
    const res = await deliverGithub(hook.url, 'push', pushPayload('octo/envgrep'), SECRET);
    assert.is((await waitForState(hook, res.json.job, ['succeeded', 'failed'], 30_000)).state, 'succeeded');
    const own = readFileSync(path.join(remote.dir, `env-${res.json.job}.txt`), 'utf8');
    assert.not.ok(own.includes(pg.password), "the password is in the build's environment");
    assert.not.match(own, /SHIPKIT_QUEUE|postgres:/);
    if (RUNTIME === 'deno') return; // Deno cannot rewrite its command line (docs/security.md)
    const above = readFileSync(path.join(remote.dir, `ancestry-${res.json.job}.txt`), 'utf8');
    assert.match(above, /\bworker(\.ts)? --config /, "the worker's command line was read");
    assert.not.ok(above.includes(pg.password), 'the password is readable above the build');
    assert.match(above, /--queue postgres:\/\/\*\*\*@127\.0\.0\.1/);
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await hook.stop(), 0, hook.output());
  }
});

test("a worker given hook-server's own shipkit.yml refuses its data folder (exit 2); a worker's start line says its concurrency and data folder; concurrency: 0 is hook-server's, not a worker's", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = queueConfig('server', { 'octo/site': {} }, { concurrency: 0 });
  const hook = await startHookServer(server.config, env);
  try {
    const shared = await runScript('worker', ['--config', server.config, '--name', 'shared'], {
      env,
      timeoutMs: 30_000,
    });
    assert.is(shared.exitCode, 2, shared.stderr);
    assert.match(
      shared.stderr,
      `${path.join(server.dir, 'data')} (data: in ${server.config}) is the data folder of a running hook-server`,
    );
    const remote = queueConfig('remote', { 'octo/site': {} }, { concurrency: 3 });
    const worker = await startWorker(remote.config, 'remote', env);
    assert.is(await worker.stop(), 0, worker.output());
    assert.match(worker.output(), `, 3 at once, data in ${path.join(remote.dir, 'data')}`);
    // A copy of hook-server's shipkit.yml (concurrency: 0, its own data:) on a worker: the 0 is
    // hook-server's, and the worker builds with its own default, saying so (audit: it took none).
    const copy = queueConfig('copy', { 'octo/site': {} }, { concurrency: 0 });
    const builder = await startWorker(copy.config, 'copy', env);
    try {
      assert.match(builder.output(), `, 1 at once, data in ${path.join(copy.dir, 'data')}`);
      assert.match(builder.output(), `concurrency: 0 in ${copy.config} is hook-server's`);
      const res = await deliverGithub(hook.url, 'push', pushPayload('octo/site'), SECRET);
      const done = await waitForState(hook, res.json.job, ['succeeded', 'failed']);
      assert.is(done.worker, 'copy');
    } finally {
      assert.is(await builder.stop(), 0, builder.output());
    }
  } finally {
    assert.is(await hook.stop(), 0, hook.output());
  }
});

test("a job built on a worker with its own data folder: hook-server's job page shows its steps, and its log has the commands' output from the worker's logs.txt", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const hook = await startHookServer(queueConfig('server', { 'octo/sectioned': {} }, { concurrency: 0 }).config, env);
  const worker = await startWorker(queueConfig('remote', { 'octo/sectioned': {} }).config, 'remote', env);
  try {
    const res = await deliverGithub(hook.url, 'push', pushPayload('octo/sectioned'), SECRET);
    assert.is((await waitForState(hook, res.json.job, ['succeeded', 'failed'], 30_000)).state, 'succeeded');
    const auth = { Authorization: `Bearer ${TOKEN}` };
    await waitFor(
      async () =>
        /SECTION-LINE-compile-output/.test(
          await (await fetch(`${hook.url}/jobs/${res.json.job}/log`, { headers: auth })).text(),
        ),
      { what: "the worker's section on hook-server" },
    );
    const page = await (
      await fetch(`${hook.url}/jobs/${res.json.job}`, { headers: { ...auth, Accept: 'text/html' } })
    ).text();
    assert.not.match(page, 'No steps in the log.');
    assert.match(page, 'SECTION-LINE-pull-output');
    assert.match(page, /compile/);
    // Deleted by the leader a few seconds after the end (every hook-server writes its copy first).
    await waitFor(
      async () => (await pg!.sql(`SELECT count(*) FROM shipkit.job_sections WHERE job_id = '${res.json.job}'`)) === '0',
      { what: 'the section to be deleted' },
    );
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await hook.stop(), 0, hook.output());
  }
});

test('turning on queue: keeps the earlier jobs: the local journal is copied into PostgreSQL once, at the first start with queue:', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const dir = path.join(tmpDir(), 'server');
  mkdirSync(dir);
  const config = writeConfig(dir, { repos: { 'octo/before': {} } });
  const local = await startHookServer(config, env);
  const res = await deliverGithub(local.url, 'push', pushPayload('octo/before'), SECRET);
  await waitForState(local, res.json.job, ['succeeded']);
  assert.is(await local.stop(), 0, local.output());
  appendFileSync(config, 'queue: env:SHIPKIT_QUEUE_URL\n');
  for (let start = 0; start < 2; start++) {
    const hook = await startHookServer(config, env);
    try {
      const job = await jobOf(hook, res.json.job);
      assert.is(job.state, 'succeeded', JSON.stringify(job));
      const listed = await (
        await fetch(`${hook.url}/jobs?repo=octo/before`, { headers: { Authorization: `Bearer ${TOKEN}` } })
      ).json();
      assert.equal(
        listed.jobs.map((j: { id: string }) => j.id),
        [res.json.job],
      );
      const log = await (
        await fetch(`${hook.url}/jobs/${res.json.job}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } })
      ).text();
      assert.match(log, `job ${res.json.job} attempt 1`);
    } finally {
      assert.is(await hook.stop(), 0, hook.output());
    }
    assert.is(start === 0, /copied into the queue database, once/.test(hook.output()), hook.output());
  }
  assert.is(await pg.sql(`SELECT count(*) FROM shipkit.jobs WHERE id = '${res.json.job}'`), '1');
  assert.is(await pg.sql(`SELECT jobs FROM shipkit.imports WHERE source LIKE '%${dir}/%'`), '1');
});

test.after(async () => {
  await pg?.stop();
});

test.run();
