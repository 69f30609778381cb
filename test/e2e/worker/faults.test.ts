// @deno
// Faults of the PostgreSQL queue (docs/design.md), each with real processes and a real PostgreSQL:
// the database down at start and during work, a wrong password, a worker killed with -9
// mid-build (and its orphaned build ended when it starts again), a worker cut off from the
// database mid-build, SIGTERM of a worker (finishes, or hands back after its grace).
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload, readRuns } from '../../fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { closedPort, runScript, waitFor } from '../../_helpers/common.ts';
import { processesUsing } from '../../fixtures/processes.ts';
import {
  jobOf,
  queueConfig,
  SECRET,
  startHookServer,
  startWorker,
  waitForState,
  worldEnv,
} from '../../fixtures/workers.ts';

let pg: Postgres | undefined;

test.before(async () => {
  pg = await startPostgres();
});

test('database unreachable or wrong password at start: hook-server and worker exit 2 naming the host, never the password', async () => {
  if (!pg) return;
  const closed = await closedPort();
  const wrong = 'not-the-Password-42';
  const cases = [
    {
      url: `postgres://shipkit:${wrong}@127.0.0.1:${closed}/postgres`,
      says: /127\.0\.0\.1:\d+\/postgres as shipkit: connection refused/,
    },
    {
      url: pg.url.replace(encodeURIComponent(pg.password), wrong),
      says: new RegExp(`127\\.0\\.0\\.1:${pg.port}/postgres as shipkit: the password was refused`),
    },
  ];
  for (const { url, says } of cases) {
    const { config } = queueConfig('server', { 'octo/site': {} });
    const env = worldEnv(pg, { SHIPKIT_QUEUE_URL: url });
    for (const [script, args] of [
      ['hook-server', ['--listen', '127.0.0.1:0']],
      ['worker', []],
    ] as const) {
      const run = await runScript(script, ['--config', config, ...args], { env, timeoutMs: 30_000 });
      assert.is(run.exitCode, 2, `${script}: ${run.stderr}`);
      assert.match(run.stderr, says, script);
      assert.not.ok(
        run.stderr.includes(wrong) || run.stdout.includes(wrong),
        `${script} printed the password: ${run.stderr}`,
      );
    }
  }
  const usage = await runScript(
    'worker',
    ['--config', queueConfig('plain', { 'octo/site': {} }).config, '--queue', 'mysql://u:pw@h/db'],
    { env: worldEnv(pg) },
  );
  assert.is(usage.exitCode, 2);
  assert.match(usage.stderr, /not a PostgreSQL URL/);
});

test("database down during work: 503 with Retry-After and nothing acknowledged; the running build's end is written once it is back; workers resume", async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(
    queueConfig('server', { 'octo/hold': {}, 'octo/site': {} }, { concurrency: 0 }).config,
    env,
  );
  const builder = queueConfig('builder', { 'octo/hold': {}, 'octo/site': {} });
  writeFileSync(path.join(builder.dir, 'hold'), '');
  const worker = await startWorker(builder.config, 'builder', env);
  try {
    const running = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
    await waitForState(server, running.json.job, ['running']);
    await pg.stop();
    const refused = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: 'b'.repeat(40) }), SECRET, {
      delivery: 'while-down',
    });
    assert.is(refused.status, 503, JSON.stringify(refused.json));
    assert.is(refused.headers.get('retry-after'), '10');
    rmSync(path.join(builder.dir, 'hold')); // the build ends while the database is away
    await new Promise((r) => setTimeout(r, 1500));
    await pg.start();
    assert.is((await waitForState(server, running.json.job, ['succeeded'], 40_000)).worker, 'builder');
    assert.equal((await jobOf(server, running.json.job)).attempts, 1, 'it was not run again');
    // The refused delivery was not kept: the forge's retry is a new job, and it runs.
    const retried = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: 'b'.repeat(40) }), SECRET, {
      delivery: 'while-down',
    });
    assert.is(retried.status, 202, JSON.stringify(retried.json));
    await waitForState(server, retried.json.job, ['succeeded'], 40_000);
    assert.match(worker.output(), /trying again in/);
  } finally {
    assert.is(await worker.stop(), 0, worker.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('a worker killed with -9 mid-build: the job is interrupted within 60 s and runs again on another worker', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(queueConfig('server', { 'octo/hold': {} }, { concurrency: 0 }).config, env);
  const doomed = queueConfig('doomed', { 'octo/hold': {} });
  const rescuer = queueConfig('rescuer', { 'octo/hold': {} });
  writeFileSync(path.join(doomed.dir, 'hold'), '');
  const a = await startWorker(doomed.config, 'doomed', env);
  const res = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
  assert.is((await waitForState(server, res.json.job, ['running'])).worker, 'doomed');
  const b = await startWorker(rescuer.config, 'rescuer', env);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(readRuns(rescuer.dir).started, [], 'the rescuer does not take a repo that runs elsewhere');
    const killed = Date.now();
    a.child.kill('SIGKILL');
    const job = await waitForState(server, res.json.job, ['succeeded'], 60_000);
    const seconds = (Date.now() - killed) / 1000;
    assert.ok(seconds < 60, `${seconds} s`);
    assert.is(job.worker, 'rescuer');
    assert.is(job.attempts, 2);
    assert.equal(readRuns(rescuer.dir).started, [res.json.job]);
    console.log(`kill -9 to the job done on another worker: ${seconds.toFixed(1)} s`);
    // Its build outlived it on its machine; started again, the worker ends it.
    const data = path.join(doomed.dir, 'data');
    assert.ok(processesUsing(data).length > 0, 'the orphaned build still runs');
    const again = await startWorker(doomed.config, 'doomed', env);
    await waitFor(() => processesUsing(data).length === 0, { what: 'the orphaned build to be ended' });
    assert.match(again.output(), /ending a build a previous run of this worker left behind/);
    assert.is(await again.stop(), 0, again.output());
  } finally {
    rmSync(path.join(doomed.dir, 'hold'), { force: true }); // lets the orphaned build end
    assert.is(await b.stop(), 0, b.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

/**
 * A TCP relay to PostgreSQL that can cut every connection through it and refuse new ones (a worker
 * cut off). The cut closes the sockets, so the server ends the sessions at once; a link that goes
 * silent instead is ended by the sessions' TCP keepalives (about 25 s more; not tested here).
 */
async function relay(port: number): Promise<{ port: number; cut(): void; restore(): void; close(): void }> {
  const sockets = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      refusing = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('a worker cut off from the database mid-build: the job runs again on another worker within 60 s; back, the first does not write its end', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(queueConfig('server', { 'octo/hold': {} }, { concurrency: 0 }).config, env);
  const link = await relay(pg.port);
  const cutOff = queueConfig('cutoff', { 'octo/hold': {} });
  writeFileSync(path.join(cutOff.dir, 'hold'), '');
  const a = await startWorker(cutOff.config, 'cutoff', {
    ...env,
    SHIPKIT_QUEUE_URL: pg.url.replace(`:${pg.port}/`, `:${link.port}/`),
  });
  const res = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
  assert.is((await waitForState(server, res.json.job, ['running'])).worker, 'cutoff');
  const b = await startWorker(queueConfig('other', { 'octo/hold': {} }).config, 'other', env);
  try {
    const cut = Date.now();
    link.cut();
    const job = await waitForState(server, res.json.job, ['succeeded'], 60_000);
    console.log(`cut off to the job done on another worker: ${((Date.now() - cut) / 1000).toFixed(1)} s`);
    assert.is(job.worker, 'other');
    assert.is(job.attempts, 2);
    link.restore();
    rmSync(path.join(cutOff.dir, 'hold')); // its own build ends now
    await waitFor(() => /given to another worker meanwhile/.test(a.output()), {
      timeoutMs: 30_000,
      what: 'the cut-off worker to find its job gone',
    });
    const after = await jobOf(server, res.json.job);
    assert.equal(
      [after.state, after.worker, after.attempts],
      ['succeeded', 'other', 2],
      'its late end changed nothing',
    );
  } finally {
    link.close();
    rmSync(path.join(cutOff.dir, 'hold'), { force: true });
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test('SIGTERM of a worker: a job that ends within the grace finishes there; one that does not is handed back and runs on another worker', async () => {
  if (!pg) return;
  const env = worldEnv(pg);
  const server = await startHookServer(
    queueConfig('server', { 'octo/site': {}, 'octo/hold': {} }, { concurrency: 0 }).config,
    env,
  );
  const first = queueConfig('first', { 'octo/site': {}, 'octo/hold': {} });
  writeFileSync(path.join(first.dir, 'sleep'), '1');
  writeFileSync(path.join(first.dir, 'hold'), '');
  const a = await startWorker(first.config, 'first', env, ['--concurrency', '2', '--grace', '3']);
  const site = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
  const hold = await deliverGithub(server.url, 'push', pushPayload('octo/hold'), SECRET);
  await waitForState(server, site.json.job, ['running']);
  await waitForState(server, hold.json.job, ['running']);
  assert.is(await a.stop('SIGTERM'), 0, a.output());
  const finished = await jobOf(server, site.json.job);
  assert.is(finished.state, 'succeeded', 'finished within the grace');
  assert.is(finished.worker, 'first');
  const handed = await jobOf(server, hold.json.job);
  assert.is(handed.state, 'queued');
  assert.match(handed.reason, /worker first stopped while it ran/);
  assert.match(a.output(), /handed back/);
  const second = queueConfig('second', { 'octo/hold': {} });
  const b = await startWorker(second.config, 'second', env);
  try {
    const job = await waitForState(server, hold.json.job, ['succeeded'], 30_000);
    assert.is(job.worker, 'second');
    assert.ok(!existsSync(path.join(first.dir, `hang-pid-${hold.json.job}`)));
  } finally {
    rmSync(path.join(first.dir, 'hold'), { force: true });
    assert.is(await b.stop(), 0, b.output());
    assert.is(await server.stop(), 0, server.output());
  }
});

test.after(async () => {
  await pg?.stop();
});

test.run();
