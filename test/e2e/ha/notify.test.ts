// Notifications of two hook-servers on one PostgreSQL (docs/ha.md): a leader paused (SIGSTOP) while
// it retries a notification, its lead taken by the other node, sends nothing once it resumes
// (SIGCONT): it asks the database before each attempt. The new leader tells the end the paused one
// never marked told, and that second message carries the same X-Shipkit-Delivery id.
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startReceiver } from '../../fixtures/hooks/receiver.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { startScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startWorker, waitForState, worldEnv, type Worker } from '../../fixtures/workers.ts';

const repos = { 'octo/a': {} };
let pg: Postgres | undefined;
let worker: Worker | undefined;
let env: Record<string, string>;
// The first message about each job is refused (503): its sender waits 2 s before trying again.
const hook = await startReceiver((req, res, n) => {
  res.statusCode = n === 1 ? 503 : 200;
  res.end(n === 1 ? 'busy' : 'ok');
});

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  env = { ...worldEnv(pg), NOTIFY_SECRET: 'notify-secret-for-ha' };
  worker = await startWorker(queueConfig('worker', repos, { concurrency: 1 }).config, 'w', env);
});

test.after(async () => {
  await worker?.stop();
  await hook.close();
});

function startNode(name: string): Promise<Server> {
  const { config } = queueConfig(name, repos, { concurrency: 0 });
  appendFileSync(
    config,
    [
      'notify:',
      `  - webhook: ${hook.base}/hooks/shipkit`,
      '    secret: env:NOTIFY_SECRET',
      '    on: [success]',
      '',
    ].join('\n'),
  );
  return startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', name], { env });
}

const leads = async (node: Server) => (await (await fetch(`${node.url}/healthz`)).json()).leader === true;
const about = (job: string) => hook.received.filter((r) => JSON.parse(r.body).job.id === job);

test('a paused leader sends nothing after it resumes; the new leader sends the end again under the same id', async () => {
  if (!pg) return;
  const a = await startNode('a');
  const b = await startNode('b');
  try {
    const leader = (await waitFor(async () => ((await leads(a)) ? a : (await leads(b)) ? b : undefined), {
      what: 'a leader',
    }))!;
    const other = leader === a ? b : a;
    const name = leader === a ? 'a' : 'b';
    const res = await deliverGithub(other.url, 'push', pushPayload('octo/a', { sha: '1'.repeat(40) }), SECRET);
    assert.is(res.status, 202);
    const job = res.json.job as string;
    await waitForState(other, job, ['succeeded']);
    await waitFor(() => about(job).length === 1, { what: "the leader's first attempt (refused)" });

    // Paused within its 2 s backoff; its session ended as a dead peer's would be.
    leader.child.kill('SIGSTOP');
    await pg.sql(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shipkit hook-server ${name} (leader)'`,
    );
    await waitFor(() => leads(other), { what: 'the other node to lead', timeoutMs: 10_000 });
    await waitFor(() => about(job).length === 2, { what: "the new leader's message" });
    leader.child.kill('SIGCONT');
    // Its retry was due while it was paused: it either gives it up or sends it.
    await waitFor(() => about(job).length > 2 || /notification left to the node that leads now/.test(leader.output()), {
      what: 'the resumed node to give its retry up',
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.is(about(job).length, 2, 'nothing sent by the resumed node');
    const ids = about(job).map((r) => r.headers['x-shipkit-delivery']);
    assert.equal(ids, [`${job}-success`, `${job}-success`], 'one id for both sends');
  } finally {
    for (const node of [a, b]) node.child.kill('SIGCONT');
    await a.stop();
    await b.stop();
  }
});

test.run();
