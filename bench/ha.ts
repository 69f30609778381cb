// npm run bench:ha — several hook-servers on one PostgreSQL behind Debian's haproxy (docs/ha.md),
// as shipped (the one file), against Debian's webhook 2.8 behind the same haproxy:
//  (a) signed deliveries acknowledged per second through haproxy with 1, 2 and 3 nodes, each
//      ack a committed job (PostgreSQL with its defaults: a commit waits for its WAL fsync), vs
//      webhook 2.8 (checks the same HMAC, runs /bin/true, keeps nothing); rounds alternate sides.
//      Every delivery to one repo (all nodes take turns on its lock), and again spread over
//      --repos repos (8), whose batches commit side by side;
//  (b) failover: deliveries sent every 20 ms through haproxy to 2 nodes, the leader killed -9:
//      the time until the other node leads, until a new delivery is acked, and deliveries lost
//      (acked 2xx without a job in the database);
//  (c) database failover: the same, with `queue:` listing a primary and its synchronous standby;
//      the primary killed -9, the standby promoted once both nodes answer 503: the time from the
//      promotion to the first ack, and acks lost (not in the promoted database).
//   tsx bench/ha.ts [--rounds 3] [--seconds 5] [--warmup 5] [--connections 50] [--repos 8] [--bundle FILE]
//   --failover-only: (b) and (c) alone.
//   (HA_CPU_PROF=DIR: profile the nodes)
//   --one-target: haproxy sends every delivery to node 1 and the others only follow (what a
//   node that takes no deliveries costs); one repo, no failover.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { sign } from '@octokit/webhooks-methods';
import { pushPayload } from '../test/fixtures/hooks/deliveries.ts';
import { startHaproxy, type Haproxy } from '../test/fixtures/haproxy.ts';
import { startPostgres } from '../test/fixtures/postgres.ts';
import { startPostgresPair } from '../test/fixtures/postgres-standby.ts';
import { SECRET, worldEnv } from '../test/fixtures/workers.ts';
import { waitFor } from '../test/_helpers/common.ts';
import {
  cpuSpent,
  ONE_REPO,
  postgresCpu,
  processCpu,
  profileFlags,
  signedLoad,
  startHookNode,
  stopHookNode,
  type HookNode,
  type LoadRound,
} from './ha-load.ts';
import { loadAverage, reportResult } from './result.ts';
import { shippedShipkit } from './shipped.ts';
import { startWebhookPeer } from './webhook-peer.ts';

const args = minimist(process.argv.slice(2), {
  string: ['rounds', 'seconds', 'connections', 'repos', 'bundle', 'warmup'],
  boolean: ['one-target', 'failover-only'],
});
const ONE_TARGET = Boolean(args['one-target']);
const ROUNDS = Number(args.rounds ?? 3);
const SECONDS = Number(args.seconds ?? 5);
// Each side first takes this long of the same load, not counted: a node's JIT compiles its hot
// code in the first seconds (a quarter of a fresh node's CPU then), which a node that has run
// for a day does not pay; webhook gets the same.
const WARMUP = Number(args.warmup ?? 5);
const CONNECTIONS = Number(args.connections ?? 50);
const SPREAD = Number(args.repos ?? 8);
const BUNDLE = path.resolve(args.bundle ?? shippedShipkit());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const NEEDS = args['failover-only'] ? 'command -v haproxy' : 'command -v haproxy && command -v webhook';
if (spawnSync('sh', ['-c', NEEDS]).status !== 0) {
  console.log('skipped: bench:ha needs haproxy and webhook (apt-get install haproxy webhook)');
  process.exit(0);
}
const started = await startPostgres({ durable: true });
if (!started) process.exit(0);
const pg = started;
const env = {
  ...process.env,
  ...worldEnv(pg),
  SHIPKIT_BUILD_COMMAND: '/bin/true',
  LOG_FORMAT: 'json',
};
const MANY_REPOS = Array.from({ length: SPREAD }, (_, i) => (i === 0 ? 'octo/site' : `octo/site-${i + 1}`));

type Node = HookNode;

/** A hook-server of the one file (bench/ha-load.ts), profiled with HA_CPU_PROF=DIR, more node flags from HA_NODE_FLAGS. */
function startNode(
  name: string,
  repos = ONE_REPO,
  { queue, env: nodeEnv = env }: { queue?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Node> {
  // HA_CPU_PROF=DIR: each node writes a V8 CPU profile there when it stops; HA_NODE_FLAGS: more
  // flags for node (`--perf-basic-prof` for `perf record`, which counts CPU time, not waits).
  const flags = process.env.HA_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  return startHookNode(name, { bundle: BUNDLE, env: nodeEnv, repos, queue, nodeFlags: [...profileFlags(), ...flags] });
}

const stopNode = stopHookNode;

/** One load's answers; shipkit's also the CPU its nodes and PostgreSQL spent per delivery acked, in ms. */
interface Round extends LoadRound {
  cpuMs?: number;
  /** Of which PostgreSQL's. */
  cpuPgMs?: number;
}

const load = (url: string, repos = ONE_REPO, seconds = SECONDS): Promise<Round> =>
  signedLoad(url, { repos, seconds, connections: CONNECTIONS });

/** CPU time (user + system, ms) of each process: the nodes', and PostgreSQL's (its postmaster and every child). */
function cpuTimes(nodes: Node[]): Map<number, number> {
  const times = postgresCpu(path.join(pg.dir, 'data'));
  for (const pid of nodes.map((n) => n.child.pid!)) times.set(pid, processCpu(pid)?.ms ?? 0);
  return times;
}

async function shipkitRound(count: number, repos = ONE_REPO) {
  const nodes: Node[] = [];
  for (let i = 1; i <= count; i++) nodes.push(await startNode(`n${i}`, repos));
  const haproxy = (await startHaproxy(ONE_TARGET ? nodes.slice(0, 1) : nodes))!;
  try {
    if (WARMUP) await load(`${haproxy.url}/hooks/github`, repos, WARMUP);
    const before = cpuTimes(nodes);
    const result = await load(`${haproxy.url}/hooks/github`, repos);
    const after = cpuTimes(nodes);
    const ofNodes = (times: Map<number, number>) =>
      new Map([...times].filter(([pid]) => nodes.some((n) => n.child.pid === pid)));
    const cpuMs = cpuSpent(before, after) / result.acked;
    return { ...result, cpuMs, cpuPgMs: cpuMs - cpuSpent(ofNodes(before), ofNodes(after)) / result.acked };
  } finally {
    await haproxy.stop();
    for (const node of nodes) await stopNode(node);
  }
}

async function webhookRound() {
  const webhook = (await startWebhookPeer(SECRET))!;
  const haproxy = (await startHaproxy([{ name: 'webhook', port: webhook.port }], { check: false }))!;
  try {
    if (WARMUP) await load(`${haproxy.url}/hooks/site`, ONE_REPO, WARMUP);
    return await load(`${haproxy.url}/hooks/site`);
  } finally {
    await haproxy.stop();
    webhook.stop();
  }
}

async function benchThroughput() {
  const runs = new Map<string, Round[]>();
  const add = (key: string, r: Round) => runs.set(key, [...(runs.get(key) ?? []), r]);
  for (let round = 0; round < ROUNDS; round++) {
    // Sides alternate: webhook first in even rounds, last in odd ones.
    if (round % 2 === 0) add('webhook', await webhookRound());
    for (const count of [1, 2, 3]) add(`${count}`, await shipkitRound(count));
    if (!ONE_TARGET) for (const count of [1, 2, 3]) add(`${count}x${SPREAD}`, await shipkitRound(count, MANY_REPOS));
    if (round % 2 === 1) add('webhook', await webhookRound());
  }
  const rps = (key: string) => median(runs.get(key)!.map((r) => r.rps));
  const p99 = (key: string) => median(runs.get(key)!.map((r) => r.p99));
  console.log(
    `\n(a) signed deliveries acked/s through haproxy: autocannon, ${CONNECTIONS} connections, ${SECONDS} s after ${WARMUP} s not counted, medians of ${ROUNDS} (load ${loadAverage()}, ${os.cpus().length} cores)`,
  );
  const cpu = (key: string, of: 'cpuMs' | 'cpuPgMs') =>
    key === 'webhook' ? '–' : median(runs.get(key)!.map((r) => r[of]!)).toFixed(2);
  console.log(
    '| behind haproxy | repos | acked/s | p99 ms | CPU ms per ack (nodes + PostgreSQL) | of which PostgreSQL | non-2xx (all rounds) |\n|---|---|---|---|---|---|---|',
  );
  const name = (key: string) => {
    if (key === 'webhook') return 'webhook 2.8 (runs /bin/true, keeps nothing) | –';
    const [count, spread] = key.split('x');
    const all = ONE_TARGET && count !== '1' ? ', every delivery to node 1' : '';
    return `shipkit, ${count} node${count === '1' ? '' : 's'}${all} | ${spread ?? 1}`;
  };
  const spread = (n: number) => `${n}x${SPREAD}`;
  const keys = ONE_TARGET ? ['1', '2', '3', 'webhook'] : ['1', '2', '3', spread(1), spread(2), spread(3), 'webhook'];
  for (const key of keys)
    console.log(
      `| ${name(key)} | ${rps(key).toFixed(0)} | ${p99(key)} | ${cpu(key, 'cpuMs')} | ${cpu(key, 'cpuPgMs')} | ${runs.get(key)!.reduce((n, r) => n + r.non2xx, 0)} |`,
    );
  // Nodes that only follow say nothing about the goals, which are for deliveries spread over them.
  if (ONE_TARGET) return;
  reportResult({
    work: 'signed deliveries acked/s through haproxy, 2 nodes vs webhook 2.8',
    shipkit: Math.round(rps('2')),
    peer: Math.round(rps('webhook')),
    unit: 'req/s',
    ratio: rps('2') / rps('webhook'),
    goal: '≥ 1.0×',
    met: rps('2') >= rps('webhook'),
    note: `p99 ${p99('2')} ms vs webhook ${p99('webhook')} ms; each ack a committed job`,
  });
  reportResult({
    work: 'deliveries acked/s, 2 nodes vs 1 node',
    shipkit: Math.round(rps('2')),
    peer: Math.round(rps('1')),
    unit: 'req/s',
    ratio: rps('2') / rps('1'),
    goal: '≥ 1.6× (with the cores)',
    met: rps('2') >= 1.6 * rps('1'),
    note: `${os.cpus().length} cores for PostgreSQL, haproxy, the nodes and autocannon; per core: ${(rps('2') / os.cpus().length).toFixed(0)}/s`,
  });
  reportResult({
    work: `deliveries over ${SPREAD} repos acked/s through haproxy, 2 nodes vs webhook 2.8`,
    shipkit: Math.round(rps(spread(2))),
    peer: Math.round(rps('webhook')),
    unit: 'req/s',
    ratio: rps(spread(2)) / rps('webhook'),
    goal: '≥ 1.0×',
    met: rps(spread(2)) >= rps('webhook'),
    note: `p99 ${p99(spread(2))} ms vs webhook ${p99('webhook')} ms`,
  });
  reportResult({
    work: `deliveries over ${SPREAD} repos acked/s, 2 nodes vs 1 node`,
    shipkit: Math.round(rps(spread(2))),
    peer: Math.round(rps(spread(1))),
    unit: 'req/s',
    ratio: rps(spread(2)) / rps(spread(1)),
    goal: '≥ 1.6× (with the cores)',
    met: rps(spread(2)) >= 1.6 * rps(spread(1)),
    note: `${os.cpus().length} cores for PostgreSQL, haproxy, the nodes and autocannon`,
  });
}

/** Deliveries every 20 ms through haproxy to 2 nodes; kill -9 of the leader after 2 s. */
async function benchFailover() {
  const nodes = [await startNode('f1'), await startNode('f2')];
  const haproxy: Haproxy = (await startHaproxy(nodes))!;
  const health = async (node: Node) =>
    (await fetch(`http://127.0.0.1:${node.port}/healthz`).catch(() => undefined))?.json().catch(() => undefined);
  try {
    const leader: Node = await waitFor(
      async () => {
        for (const node of nodes) if ((await health(node))?.leader) return node;
        return undefined;
      },
      { what: 'a leader' },
    ).then((node) => node!);
    const other = nodes.find((n) => n !== leader)!;
    const flow = sendEvery20ms(`${haproxy.url}/hooks/github`);
    await new Promise((r) => setTimeout(r, 2_000));
    const killedAt = performance.now();
    leader.child.kill('SIGKILL');
    await waitFor(async () => (await health(other))?.leader, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: 'the new leader',
    });
    const ledMs = Math.round(performance.now() - killedAt);
    await new Promise((r) => setTimeout(r, 2_000));
    await flow.stop();
    const { acked } = flow;
    const firstAck = acked.find((a) => a.at > killedAt + 50);
    const keys = acked.map((a) => `'${a.delivery}'`).join(',');
    const kept = Number(await pg.sql(`SELECT count(*) FROM shipkit.jobs WHERE record->>'deliveryId' IN (${keys})`));
    const lost = acked.length - kept;
    console.log(`\n(b) failover: kill -9 of the leader of 2 nodes while deliveries go every 20 ms through haproxy`);
    console.log(
      `the other node led ${ledMs} ms after; the first delivery acked after the kill came ${firstAck ? Math.round(firstAck.at - killedAt) : 'never'} ms after it; ${acked.length} acked, ${lost} lost`,
    );
    reportResult({
      work: 'failover: kill -9 of the leader → the other node leads',
      shipkit: ledMs,
      peer: null,
      unit: 'ms',
      goal: '≤ 10000 ms',
      met: ledMs <= 10_000,
      note: `first ack after the kill at +${firstAck ? Math.round(firstAck.at - killedAt) : '∞'} ms`,
    });
    reportResult({
      work: 'failover: deliveries acked 2xx but lost',
      shipkit: lost,
      peer: null,
      unit: 'deliveries',
      goal: '0',
      met: lost === 0,
      note: `${acked.length} acked while the leader was killed`,
    });
  } finally {
    await haproxy.stop();
    for (const node of nodes) await stopNode(node);
  }
}

/** Signed pushes every 20 ms to `url`, each with a delivery id of its own; what was acked, and when. */
function sendEvery20ms(url: string) {
  const acked: Array<{ delivery: string; at: number }> = [];
  let refused = 0;
  let stop = false;
  const sender = (async () => {
    const body = JSON.stringify(pushPayload('octo/site'));
    const signature = await sign(SECRET, body);
    const inFlight: Array<Promise<void>> = [];
    while (!stop) {
      const delivery = randomUUID();
      inFlight.push(
        fetch(url, {
          method: 'POST',
          body,
          headers: {
            'content-type': 'application/json',
            'x-github-event': 'push',
            'x-github-delivery': delivery,
            'x-hub-signature-256': signature,
          },
        })
          .then(async (res) => {
            await res.arrayBuffer();
            if (res.ok) acked.push({ delivery, at: performance.now() });
            else refused++;
          })
          .catch(() => void refused++),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all(inFlight);
  })();
  return {
    acked,
    refused: () => refused,
    async stop() {
      stop = true;
      await sender;
    },
  };
}

/** (c): 2 nodes on a primary and its synchronous standby; the primary killed -9, the standby promoted. */
async function benchDatabaseFailover() {
  const pair = await startPostgresPair({ durable: true });
  if (!pair) return;
  const pairEnv = { ...env, SHIPKIT_PG_PRIMARY: pair.primary.url, SHIPKIT_PG_STANDBY: pair.standby.url };
  const queue = '[env:SHIPKIT_PG_PRIMARY, env:SHIPKIT_PG_STANDBY]';
  const nodes = [await startNode('d1', ONE_REPO, { queue, env: pairEnv })];
  nodes.push(await startNode('d2', ONE_REPO, { queue, env: pairEnv }));
  const haproxy: Haproxy = (await startHaproxy(nodes))!;
  const status = async (node: Node) =>
    (await fetch(`http://127.0.0.1:${node.port}/healthz`).catch(() => undefined))?.status;
  try {
    const flow = sendEvery20ms(`${haproxy.url}/hooks/github`);
    await new Promise((r) => setTimeout(r, 2_000));
    const killedAt = performance.now();
    await pair.primary.kill();
    for (const node of nodes)
      await waitFor(async () => (await status(node)) === 503, {
        intervalMs: 20,
        what: `${node.name} without a primary`,
      });
    const seenAt = performance.now();
    await pair.standby.promote();
    const promotedAt = performance.now();
    const first = await waitFor(() => flow.acked.find((a) => a.at > promotedAt), {
      timeoutMs: 30_000,
      intervalMs: 10,
      what: 'an ack after the promotion',
    });
    await new Promise((r) => setTimeout(r, 2_000));
    await flow.stop();
    const keys = flow.acked.map((a) => `'${a.delivery}'`).join(',');
    const kept = Number(
      await pair.standby.sql(`SELECT count(*) FROM shipkit.jobs WHERE record->>'deliveryId' IN (${keys})`),
    );
    const lost = flow.acked.length - kept;
    const firstMs = Math.round(first!.at - promotedAt);
    console.log(
      `\n(c) database failover: 2 nodes with queue: [primary, synchronous standby] (fsync on), deliveries every 20 ms through haproxy; the primary killed -9`,
    );
    console.log(
      `both nodes answered 503 ${Math.round(seenAt - killedAt)} ms after the kill; pg_ctl promote took ${Math.round(promotedAt - seenAt)} ms; ` +
        `the first ack came ${firstMs} ms after it; ${flow.acked.length} acked, ${flow.refused()} refused (5xx, sent again by a forge), ${lost} acks lost`,
    );
    reportResult({
      work: 'database failover: pg_ctl promote → first delivery acked',
      shipkit: firstMs,
      peer: null,
      unit: 'ms',
      goal: '≤ 15000 ms',
      met: firstMs <= 15_000,
      note: `kill -9 of the primary → both nodes 503 in ${Math.round(seenAt - killedAt)} ms; promote ${Math.round(promotedAt - seenAt)} ms`,
    });
    reportResult({
      work: 'database failover: deliveries acked 2xx but lost',
      shipkit: lost,
      peer: null,
      unit: 'deliveries',
      goal: '0',
      met: lost === 0,
      note: `${flow.acked.length} acked while the primary was killed and the standby promoted (synchronous replication)`,
    });
  } finally {
    await haproxy.stop();
    for (const node of nodes) await stopNode(node);
    await pair.standby.stop();
  }
}

try {
  if (!args['failover-only']) await benchThroughput();
  if (!ONE_TARGET) await benchFailover();
  if (!ONE_TARGET) await benchDatabaseFailover();
} finally {
  await pg.stop();
}
