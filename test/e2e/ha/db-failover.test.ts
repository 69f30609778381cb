// `queue:` as a list, a primary and its synchronous standby (docs/ha.md): a login refused on one
// entry is skipped and named, never with its password; a list of standbys only is refused at the
// start (exit 2, each named), a bad list too (its file and line). Then two hook-servers and a worker take signed deliveries while the
// primary is killed -9 and the standby promoted: 503 with Retry-After in the gap, writes again
// within 15 s, every delivery acked 2xx built exactly once, none lost, and a build running across
// the failover finishes once. The old primary started again as a second writable server is
// refused (split brain): 503 and a log line naming both.
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, readRuns, releasePayload } from '../../fixtures/hooks/deliveries.ts';
import { startPostgresPair, type PostgresPair } from '../../fixtures/postgres-standby.ts';
import { runScript, startScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startWorker, waitForState, worldEnv, type Worker } from '../../fixtures/workers.ts';

const repos = { 'octo/site': {}, 'octo/hold': {} };
const LIST = '[env:SHIPKIT_PG_PRIMARY, env:SHIPKIT_PG_STANDBY]';
let pair: PostgresPair | undefined;

test.before(async () => {
  pair = await startPostgresPair();
});

test.after(async () => {
  await pair?.standby.stop();
  await pair?.primary.stop();
});

/** The world's environment with the two servers' URLs (`standby` replaced when given). */
function envOf(p: PostgresPair, standby = p.standby.url): Record<string, string> {
  return { ...worldEnv(p.primary), SHIPKIT_PG_PRIMARY: p.primary.url, SHIPKIT_PG_STANDBY: standby };
}

function startListNode(name: string, env: Record<string, string>): Promise<Server> {
  const { config } = queueConfig(name, repos, { concurrency: 0, queue: LIST });
  return startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', name], { env });
}

async function health(node: Server): Promise<{ status: number; retry: string | null; leader: boolean }> {
  const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
  const body = await res.json();
  return { status: res.status, retry: res.headers.get('retry-after'), leader: body.leader === true };
}

test('a wrong password on one entry: skipped and named, its password never shown; standbys only: exit 2', async () => {
  if (!pair) return;
  const wrong = `wrong-${randomUUID()}`;
  const env = envOf(pair, pair.standby.url.replace(encodeURIComponent(pair.standby.password), wrong));
  const node = await startListNode('wrong-password', env);
  try {
    assert.is((await health(node)).status, 200);
    const where = `127.0.0.1:${pair.standby.port}/postgres as shipkit`;
    await waitFor(() => node.output().includes(`${where}: the password was refused`), { what: 'the entry named' });
    assert.match(node.output(), 'it is skipped until that is fixed');
    for (const secret of [wrong, pair.primary.password]) assert.not.match(node.output(), secret);
  } finally {
    assert.is(await node.stop(), 0, node.output());
  }
  // A one-off command reads the list as the nodes do.
  const listed = await runScript(
    'deliveries',
    ['list', '--config', queueConfig('cli', repos, { queue: LIST }).config],
    {
      env: envOf(pair),
    },
  );
  assert.is(listed.exitCode, 0, listed.stderr);
  const { config } = queueConfig('standbys-only', repos, { concurrency: 0, queue: '[env:SHIPKIT_PG_STANDBY]' });
  const refused = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: envOf(pair),
  });
  assert.is(refused.exitCode, 2, refused.stderr);
  assert.match(
    refused.stderr,
    `no server of queue: accepts writes (127.0.0.1:${pair.standby.port}/postgres as shipkit is a standby)`,
  );
});

test('a bad list exits 2 naming its file and line, whichever program reads it', async () => {
  const { config } = queueConfig('bad-list', repos, {
    concurrency: 0,
    queue: '\n  - postgres://shipkit@127.0.0.1:1/x\n  - mysql://shipkit:hunter2@127.0.0.1/x',
  });
  const line = readFileSync(config, 'utf8').split('\n').indexOf('  - mysql://shipkit:hunter2@127.0.0.1/x') + 1;
  for (const [script, args] of [
    ['hook-server', ['--config', config, '--listen', '127.0.0.1:0']],
    ['worker', ['--config', config]],
  ] as const) {
    const res = await runScript(script, [...args]);
    assert.is(res.exitCode, 2, res.stderr);
    assert.match(res.stderr, `${config}:${line}: queue[1]: is not a PostgreSQL URL`);
    assert.not.match(res.stderr, 'hunter2');
  }
});

interface Sent {
  delivery: string;
  payload: unknown;
  /** Each answer: status, Retry-After, job, and when (ms since the start). */
  answers: Array<{ status: number; retry: string | null; job?: string; at: number }>;
}

/** Signed release events to `nodes` in turn every 25 ms, a tag each: each is a job, and none supersedes another. */
function sendReleases(nodes: Server[], t0: number) {
  const sent: Sent[] = [];
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const send = (s: Sent, node: Server): Promise<void> => {
    const done = deliverGithub(node.url, 'release', s.payload, SECRET, { delivery: s.delivery })
      .then((res) => {
        const retry = res.headers.get('retry-after');
        s.answers.push({ status: res.status, retry, job: res.json?.job, at: performance.now() - t0 });
      })
      .catch(() => void s.answers.push({ status: 0, retry: null, at: performance.now() - t0 }));
    inFlight.add(done);
    return done.finally(() => inFlight.delete(done));
  };
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const s: Sent = {
        delivery: randomUUID(),
        payload: releasePayload('octo/site', { tag: `v1.0.${i}` }),
        answers: [],
      };
      sent.push(s);
      void send(s, nodes[i % nodes.length]);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    sent,
    send,
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(inFlight);
    },
  };
}

const acked = (s: Sent) => s.answers.find((a) => a.status >= 200 && a.status < 300);

test('the primary killed -9, the standby promoted: writes again within 15 s, every ack built once; split brain refused', async () => {
  if (!pair) return;
  const env = envOf(pair);
  const nodes: Server[] = [];
  let worker: Worker | undefined;
  const w = queueConfig('worker', repos, { concurrency: 2, queue: LIST });
  try {
    for (const name of ['a', 'b']) nodes.push(await startListNode(name, env));
    worker = await startWorker(w.config, 'w1', env);
    // A build running across the failover (it waits for the file `hold`): finished once, not run again.
    writeFileSync(path.join(w.dir, 'hold'), '');
    const held = await deliverGithub(nodes[0].url, 'release', releasePayload('octo/hold', { tag: 'v9' }), SECRET);
    assert.is(held.status, 202, JSON.stringify(held.json));
    await waitForState(nodes[0], held.json.job, ['running']);
    const termBefore = Number(await waitFor(() => pair!.primary.sql('SELECT term FROM shipkit.leader')));
    const t0 = performance.now();
    const flow = sendReleases(nodes, t0);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const killedAt = performance.now() - t0;
    await pair.primary.kill();
    for (const node of nodes)
      await waitFor(async () => (await health(node)).status === 503, { what: '503 without a primary' });
    for (const node of nodes)
      await waitFor(() => node.output().includes('no server of queue: accepts writes'), { what: 'the log line' });
    await pair.standby.promote();
    const promotedAt = performance.now() - t0;
    const firstWrites = await Promise.all(
      nodes.map((node, n) =>
        waitFor(() => flow.sent.find((s, i) => i % 2 === n && acked(s) && acked(s)!.at > promotedAt), {
          timeoutMs: 15_000,
          intervalMs: 20,
          what: `a delivery acked by node ${n} after the promotion`,
        }).then((s) => acked(s!)!.at - promotedAt),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await flow.stop();
    console.log(
      `killed at ${Math.round(killedAt)} ms, promoted ${Math.round(promotedAt - killedAt)} ms later; first ack ` +
        `after the promotion: ${firstWrites.map((ms) => `${Math.round(ms)} ms`).join(', ')}; ` +
        `${flow.sent.filter(acked).length} of ${flow.sent.length} deliveries acked while they flowed`,
    );
    checkAnswers(flow.sent);
    // The forge sends again what was not acknowledged: each is then acked, once or as a duplicate.
    for (const [i, s] of flow.sent.entries())
      if (!acked(s)) await waitFor(async () => (await flow.send(s, nodes[i % 2]), acked(s)), { what: 'a redelivery' });
    await checkBuiltOnce(pair, flow.sent, w.dir);
    rmSync(path.join(w.dir, 'hold'));
    await waitForState(nodes[1], held.json.job, ['succeeded'], 30_000);
    assert.is(readRuns(w.dir).started.filter((id) => id === held.json.job).length, 1, 'the held build ran once');
    assert.ok(Number(await pair.standby.sql('SELECT term FROM shipkit.leader')) > termBefore, 'a new fencing term');
    const leaders = async () => (await Promise.all(nodes.map(health))).filter((h) => h.leader).length;
    await waitFor(async () => (await leaders()) === 1, { what: 'one leader on the promoted server' });
    await checkSplitBrainRefused(pair, nodes);
  } finally {
    await worker?.stop();
    for (const node of nodes) await node.stop();
  }
});

/** Every answer an ack, or a 503 that says when to try again; and some of each. */
function checkAnswers(sent: Sent[]): void {
  const answers = sent.flatMap((s) => s.answers);
  for (const a of answers)
    assert.ok((a.status >= 200 && a.status < 300) || (a.status === 503 && a.retry), JSON.stringify(a));
  assert.ok(answers.some((a) => a.status === 503));
}

/** Each acked delivery's job in the promoted server, built exactly once. */
async function checkBuiltOnce(p: PostgresPair, sent: Sent[], workerDir: string): Promise<void> {
  const jobs = [...new Set(sent.map((s) => acked(s)!.job!))];
  assert.is(jobs.length, sent.length, 'one job per delivery');
  const list = jobs.map((id) => `'${id}'`).join(',');
  await waitFor(
    async () =>
      Number(await p.standby.sql(`SELECT count(*) FROM shipkit.jobs WHERE id IN (${list}) AND state = 'succeeded'`)) ===
      jobs.length,
    { timeoutMs: 60_000, intervalMs: 200, what: 'every acked job built' },
  );
  const started = readRuns(workerDir).started;
  for (const id of jobs) assert.is(started.filter((s) => s === id).length, 1, `job ${id} built once`);
}

/** The old primary back as a second writable server: refused, said, and served again once it is gone. */
async function checkSplitBrainRefused(p: PostgresPair, nodes: Server[]): Promise<void> {
  await p.primary.start();
  const before = await p.primary.sql('SELECT count(*) FROM shipkit.jobs');
  for (const node of nodes) {
    await waitFor(async () => (await health(node)).status === 503, { what: '503 in a split brain' });
    await waitFor(() => node.output().includes('both accept writes (split brain)'), { what: 'the split brain said' });
    assert.match(node.output(), `127.0.0.1:${p.primary.port}/postgres as shipkit and 127.0.0.1:${p.standby.port}`);
  }
  const refused = await deliverGithub(nodes[0].url, 'release', releasePayload('octo/site', { tag: 'v-split' }), SECRET);
  assert.equal([refused.status, Boolean(refused.headers.get('retry-after'))], [503, true]);
  assert.is(await p.primary.sql('SELECT count(*) FROM shipkit.jobs'), before, 'nothing written to the old primary');
  await p.primary.stop();
  for (const node of nodes)
    await waitFor(async () => (await health(node)).status === 200, { what: 'the node serving again' });
}

test.run();
