// The fleet registry of two hook-servers on one PostgreSQL (docs/ha.md): a node's earlier
// DATA/fleet/fleet.log is copied into the database at its first start with queue:; a report, a
// rollout state and a forget taken by one node are answered the same by the other; a host
// enrolled through one node cannot be spoken for with the app's secret through the other; the
// status page's /metrics of both count the same hosts. A report is taken once by all nodes, also
// after a restart and in the second of the host's next (audit 1); the app's secret pins no seen
// host on a node that has not read it yet (audit 2).
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { hostCredential } from '../../../lib/release/format/fleet-report.ts';
import { getFleet, hostId, report, send, signed } from '../../fixtures/fleet-requests.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { tmpDir, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, startHookServer, TOKEN, worldEnv } from '../../fixtures/workers.ts';

const FLEET = `fleet-${randomUUID()}`;
const withFleet = (file: string) => {
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n`);
  return file;
};
const hostsOf = async (node: Server) =>
  ((await getFleet(node, FLEET)).json.hosts as Array<{ host: string }>).map((h) => h.host).sort();
const metricsOf = async (node: Server) =>
  (await (await fetch(`${node.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text())
    .split('\n')
    .filter((line) => line.startsWith('shipkit_fleet_hosts{'))
    .join('\n');

test('two nodes, one fleet registry: copied in once, reports, rollouts and forgets answered alike, enrolment held', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg, { FLEET_WEB: FLEET });
  const repos = { 'octo/site': {} };
  // Node a ran alone, without queue:, and its hosts reported to it.
  const dirA = tmpDir();
  const configA = withFleet(writeConfig(dirA, { repos }));
  const [old1, old2] = [hostId(), hostId()];
  let a = await startHookServer(configA, env);
  for (const host of [old1, old2])
    assert.is((await send(a, signed('/fleet/reports', report(host), FLEET))).status, 202);
  assert.is(await a.stop(), 0, a.output());

  appendFileSync(configA, 'queue: env:SHIPKIT_QUEUE_URL\n');
  a = await startHookServer(configA, env);
  const b = await startHookServer(withFleet(queueConfig('b', repos, { concurrency: 0 }).config), env);
  try {
    assert.match(a.output(), /copied 2 hosts and 0 rollouts of .*fleet\.log into the queue database/);
    const log = path.join(dirA, 'data', 'fleet', 'fleet.log');
    assert.ok(!existsSync(log) && existsSync(`${log}.copied-to-queue`), 'the file is set aside, not read again');
    assert.equal(await hostsOf(b), [old1, old2].sort(), 'the other node has them at once');

    // A host enrols through b; its own credential then speaks for it on a, the app's secret does not.
    const host = hostId();
    const enrol = await send(b, signed('/fleet/reports', report(host), FLEET));
    assert.is(enrol.status, 202);
    const credential = enrol.json.credential as string;
    assert.ok(credential);
    assert.is((await send(a, signed('/fleet/reports', report(host, { seq: 4 }), credential))).status, 202);
    await waitFor(async () => (await getFleet(b, FLEET)).json.hosts.some((h: any) => h.host === host && h.seq === 4), {
      timeoutMs: 5_000,
      what: "b to read a's report",
    });
    const spoken = await send(b, signed('/fleet/reports', report(host, { seq: 5, version: '6.6' }), FLEET));
    assert.is(spoken.status, 401, JSON.stringify(spoken.json));

    // A rollout state posted to a is what b answers; a forget on b is what a answers.
    const rollout = {
      app: 'web',
      version: '1.2',
      seq: 9,
      step: 1,
      percent: 10,
      steps: [10, 100],
      state: 'running',
      reason: '',
      at: new Date().toISOString(),
    };
    assert.is((await send(a, signed('/fleet/rollouts', rollout, FLEET))).status, 202);
    await waitFor(async () => (await getFleet(b, FLEET)).json.rollout?.version === '1.2', {
      timeoutMs: 5_000,
      what: 'b to answer the rollout',
    });
    const forgot = await send(b, signed('/fleet/forget', { app: 'web', hosts: [old1] }, FLEET));
    assert.equal([forgot.status, forgot.json], [200, { ok: true, forgotten: 1 }]);
    await waitFor(async () => !(await hostsOf(a)).includes(old1), { timeoutMs: 5_000, what: 'a to forget it too' });
    assert.equal(await hostsOf(a), [old2, host].sort());
    await waitFor(async () => (await metricsOf(a)) === (await metricsOf(b)), {
      timeoutMs: 5_000,
      what: 'the same /metrics',
    });
    assert.match(await metricsOf(a), /shipkit_fleet_hosts\{app="web",version="1\.1",result="updated"\} 2/);
    assert.is(await pg.sql(`SELECT count(*) FROM shipkit.fleet_hosts WHERE entry IS NOT NULL`), '2');
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
});

test('two nodes: a report is taken once, also after a restart; the app secret cannot pin a seen host', async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg, { FLEET_WEB: FLEET });
  const repos = { 'octo/site': {} };
  const configA = withFleet(queueConfig('a', repos, { concurrency: 0 }).config);
  let a = await startHookServer(configA, env);
  const b = await startHookServer(withFleet(queueConfig('b', repos, { concurrency: 0 }).config), env);
  try {
    // Audit 1: two reports of one host in one second through a; the first replayed everywhere.
    const host = hostId();
    const credential = hostCredential(FLEET, host);
    const second = (Math.floor(Date.now() / 1000) + 2) * 1000;
    const first = signed(
      '/fleet/reports',
      report(host, { seq: 4, result: 'failed', reason: 'x' }),
      credential,
      () => second,
    );
    const next = signed('/fleet/reports', report(host, { seq: 4 }), credential, () => second + 900);
    assert.is((await send(a, first)).status, 202);
    assert.is((await send(a, next)).status, 202);
    assert.is((await send(b, first)).status, 401, 'on the other node, whatever it has read');
    assert.is(await a.stop(), 0, a.output());
    a = await startHookServer(configA, env);
    assert.is((await send(a, first)).status, 401, 'after a restart');
    assert.is((await getFleet(a, FLEET)).json.hosts.find((h: any) => h.host === host).result, 'updated');
    assert.is(await pg.sql(`SELECT cardinality(nonces) FROM shipkit.fleet_hosts WHERE host = '${host}'`), '2');

    // Audit 2: a host enrols through a with SEQ 10; b, before it reads that, is asked with the app's secret.
    const seen = hostId();
    const enrol = await send(a, signed('/fleet/reports', report(seen, { seq: 10 }), FLEET));
    assert.is(enrol.status, 202);
    const forged = await send(b, signed('/fleet/reports', report(seen, { seq: 999_999_999_999_999 }), FLEET));
    assert.is(forged.status, 401, JSON.stringify(forged.json));
    const own = await send(b, signed('/fleet/reports', report(seen, { seq: 4 }), enrol.json.credential));
    assert.is(own.status, 202, 'its credential report replaces the app-secret one, whatever the SEQ');
    await waitFor(async () => (await getFleet(a, FLEET)).json.hosts.some((h: any) => h.host === seen && h.seq === 4), {
      timeoutMs: 5_000,
      what: "a to read the host's own report",
    });
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
});

test("two nodes: a report of the step's SEQ is taken by a node that has not read that step yet", async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const env = worldEnv(pg, { FLEET_WEB: FLEET });
  const repos = { 'octo/site': {} };
  const a = await startHookServer(withFleet(queueConfig('a', repos, { concurrency: 0 }).config), env);
  const b = await startHookServer(withFleet(queueConfig('b', repos, { concurrency: 0 }).config), env);
  const step = (seq: number, percent: number) => ({
    app: 'web',
    version: '1.2',
    seq,
    step: seq - 7,
    percent,
    steps: [10, 50, 100],
    state: 'running',
    reason: '',
    at: new Date().toISOString(),
  });
  try {
    assert.is((await send(a, signed('/fleet/rollouts', step(8, 10), FLEET))).status, 202);
    await waitFor(async () => (await getFleet(b, FLEET)).json.rollout?.seq === 8, {
      timeoutMs: 5_000,
      what: 'b to read step 1',
    });
    // Step 2 through a; a host that read its VERSION reports through b at once, before b's next look.
    assert.is((await send(a, signed('/fleet/rollouts', step(9, 50), FLEET))).status, 202);
    const host = hostId();
    const taken = await send(b, signed('/fleet/reports', report(host, { version: '1.2', seq: 9 }), FLEET));
    assert.is(taken.status, 202, JSON.stringify(taken.json));
    const above = await send(b, signed('/fleet/reports', report(hostId(), { version: '1.2', seq: 10 }), FLEET));
    assert.is(above.status, 400, 'a SEQ above every step is still refused');
    assert.match(above.json.error, /seq 10 is above the highest SEQ published for web \(9\)/);
  } finally {
    assert.is(await a.stop(), 0, a.output());
    assert.is(await b.stop(), 0, b.output());
  }
});

test.run();
