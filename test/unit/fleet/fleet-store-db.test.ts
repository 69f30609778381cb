// The fleet registry in PostgreSQL (lib/fleet/fleet-store-db.ts), two nodes on one real database:
// what one writes the other reads within its next look; the database keeps the rules a node with
// an older view cannot (a lower SEQ, a report taken before, the app's secret for a seen host,
// forgetting a host that reported meanwhile); a forgotten host enrols again; a node's fleet.log is
// copied in once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { ensureSchema } from '../../../lib/db/schema.ts';
import { createLogger } from '../../../lib/core/log.ts';
import { FleetStore } from '../../../lib/fleet/fleet-store.ts';
import type { HostEntry, RolloutRecord } from '../../../lib/release/format/fleet-report.ts';
import { SharedFleet } from '../../../lib/fleet/fleet-store-db.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';
import { hostId } from '../../fixtures/fleet-requests.ts';

let db: Postgres | undefined;
let pool: pg.Pool;
const log = createLogger({ stream: { write: () => true } as unknown as NodeJS.WritableStream });

function entry(host: string, fields: Partial<HostEntry> = {}): HostEntry {
  return {
    host,
    version: '1.1',
    previous: '1.0',
    seq: 3,
    bucket: 50,
    claimed_bucket: 50,
    result: 'updated',
    reason: '',
    seconds: 1,
    at: Date.now(),
    signed_at: Math.floor(Date.now() / 1000),
    nonces: [randomBytes(16).toString('hex')],
    enrolled: true,
    ...fields,
  };
}

const rollout: RolloutRecord = {
  version: '1.1',
  seq: 3,
  step: 1,
  percent: 5,
  steps: [5, 100],
  state: 'running',
  reason: '',
  at: '2026-11-25T10:00:00Z',
  received: 1,
};

test.before(async () => {
  db = await startPostgres();
  if (!db) return;
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  // An idle connection cut when the database stops at the end is expected, not a failure.
  pool.on('error', () => undefined);
  const client = await pool.connect();
  await ensureSchema(client, 'test');
  client.release();
});

test.after(async () => {
  await pool?.end();
  await db?.stop();
});

const open = (everyMs = 100) => SharedFleet.open(pool, { log, everyMs, leads: () => true });

test('a report, a rollout and a forget on one node are read by the other within its next look', async () => {
  if (!db) return;
  const [a, b] = [await open(), await open()];
  try {
    const host = hostId();
    assert.is(await a.addReport('web', entry(host)), 'added');
    assert.is(a.count('web'), 1, 'the writer knows at once');
    await waitFor(() => b.host('web', host)?.version === '1.1', { timeoutMs: 3_000, what: 'b to read the report' });
    await b.setRollout('web', rollout);
    await waitFor(() => a.rollout('web')?.percent === 5, { timeoutMs: 3_000, what: 'a to read the rollout' });
    assert.equal(a.tally('web'), [{ version: '1.1', result: 'updated', hosts: 1 }]);
    assert.is(await b.forget('web', [host, hostId()]), 1, 'only the host it has is counted');
    await waitFor(() => a.count('web') === 0, { timeoutMs: 3_000, what: 'a to drop the forgotten host' });
    assert.is(await db.sql(`SELECT count(*) FROM shipkit.fleet_hosts WHERE entry IS NULL`), '1');
    assert.is(await a.addReport('web', entry(host, { seq: 1 })), 'added', 'a forgotten host enrols again, any SEQ');
    await waitFor(() => b.host('web', host)?.seq === 1, { timeoutMs: 3_000, what: 'b to see it back' });
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a node that has not read the latest yet cannot undo it: older SEQ, older signature, app secret for a seen host', async () => {
  if (!db) return;
  const [a, stale] = [await open(), await open(60_000)];
  try {
    const host = hostId();
    const now = Math.floor(Date.now() / 1000);
    assert.is(await a.addReport('web', entry(host, { seq: 5, signed_at: now, enrolled: true })), 'added');
    assert.is(stale.host('web', host), undefined, 'the stale node has not looked');
    const attempts: Array<[string, Partial<HostEntry>, string]> = [
      ['a lower SEQ', { seq: 4, signed_at: now + 1, enrolled: true }, 'older'],
      ['an older signature', { seq: 6, signed_at: now - 10, enrolled: true }, 'replay'],
      ["the app's secret for a seen host", { seq: 6, signed_at: now + 1, enrolled: false }, 'enrolled'],
    ];
    for (const [what, fields, outcome] of attempts)
      assert.is(await stale.addReport('web', entry(host, { version: '6.6', ...fields })), outcome, what);
    assert.is(await db.sql(`SELECT entry->>'version' FROM shipkit.fleet_hosts WHERE host = '${host}'`), '1.1');
    assert.is(await stale.addReport('web', entry(host, { seq: 6, signed_at: now + 1, enrolled: true })), 'added');
  } finally {
    await Promise.all([a.close(), stale.close()]);
  }
});

test('a report taken once: the same one again, on any node and after a restart, is refused (audit 1)', async () => {
  if (!db) return;
  const a = await open();
  try {
    const host = hostId();
    const second = Math.floor(Date.now() / 1000);
    const first = entry(host, { seq: 4, result: 'failed', signed_at: second });
    assert.is(await a.addReport('web', first), 'added');
    assert.is(await a.addReport('web', entry(host, { seq: 4, signed_at: second, at: first.at + 1 })), 'added');
    assert.is(await a.addReport('web', first), 'replay', 'the same report again, the same second');
    await a.close();
    // A node that starts now reads the nonces from the database; one that has not looked is refused by it.
    const [restarted, stale] = [await open(), await open(60_000)];
    await stale.close(); // opened before the next write, never looks again
    assert.is(await restarted.addReport('web', first), 'replay');
    assert.is(await stale.addReport('web', { ...first, seq: 5 }), 'replay');
    assert.is(restarted.host('web', host)?.result, 'updated');
    assert.is(restarted.host('web', host)?.nonces?.length, 2);
    await restarted.close();
  } finally {
    await a.close();
  }
});

test("a host's credential report replaces an app-secret one whatever its SEQ; the app's secret then cannot (audit 2)", async () => {
  if (!db) return;
  const [a, stale] = [await open(), await open(60_000)];
  try {
    const host = hostId();
    const second = Math.floor(Date.now() / 1000);
    assert.is(await a.addReport('web', entry(host, { seq: 2 ** 53 - 1, enrolled: false, signed_at: second })), 'added');
    assert.is(await stale.addReport('web', entry(host, { seq: 3, enrolled: true, signed_at: second })), 'added');
    assert.is(await db.sql(`SELECT seq || ' ' || enrolled FROM shipkit.fleet_hosts WHERE host = '${host}'`), '3 true');
    await waitFor(() => a.host('web', host)?.seq === 3, { timeoutMs: 3_000, what: 'a to read it' });
    const forged = entry(host, { seq: 9, enrolled: false, signed_at: second + 1 });
    assert.is(await a.addReport('web', forged), 'enrolled');
    assert.is(await stale.addReport('web', forged), 'enrolled', 'the database refuses it too');
  } finally {
    await Promise.all([a.close(), stale.close()]);
  }
});

test('forgetting silent hosts spares one that reported to another node meanwhile', async () => {
  if (!db) return;
  const [a, stale] = [await open(), await open(60_000)];
  try {
    const [quiet, back] = [hostId(), hostId()];
    const old = Date.now() - 10 * 86_400_000;
    for (const host of [quiet, back]) assert.is(await a.addReport('api', entry(host, { at: old })), 'added');
    const late = await open(60_000); // reads both as silent
    assert.equal(late.silentSince('api', Date.now() - 86_400_000).sort(), [quiet, back].sort());
    assert.is(await a.addReport('api', entry(back, { seq: 4 })), 'added');
    const cutoff = Date.now() - 86_400_000;
    assert.is(await late.forget('api', late.silentSince('api', cutoff), { silentBefore: cutoff }), 1);
    await waitFor(() => a.count('api') === 1 && a.host('api', back) !== undefined, {
      timeoutMs: 3_000,
      what: 'only the silent one gone',
    });
    await late.close();
  } finally {
    await Promise.all([a.close(), stale.close()]);
  }
});

test("max_hosts counts what the node has read and what it is writing; an app's other hosts still report", async () => {
  if (!db) return;
  const a = await open();
  try {
    const hosts = Array.from({ length: 5 }, hostId);
    const outcomes = await Promise.all(hosts.map((h) => a.addReport('capped', entry(h), { maxHosts: 3 })));
    assert.is(outcomes.filter((o) => o === 'added').length, 3);
    assert.is(outcomes.filter((o) => o === 'full').length, 2);
    const kept = hosts.filter((_, i) => outcomes[i] === 'added');
    assert.is(await a.addReport('capped', entry(kept[0], { seq: 9 }), { maxHosts: 3 }), 'added');
    assert.is(await db.sql(`SELECT count(*) FROM shipkit.fleet_hosts WHERE app = 'capped'`), '3');
  } finally {
    await a.close();
  }
});

test("a node's fleet.log is copied in when the database has no registry yet, and only then", async () => {
  if (!db) return;
  await db.sql('DELETE FROM shipkit.fleet_hosts; DELETE FROM shipkit.fleet_rollouts');
  const dir = tmpDir();
  const local = await FleetStore.open(dir);
  const hosts = Array.from({ length: 2_500 }, hostId);
  for (const host of hosts) await local.addReport('web', entry(host));
  await local.setRollout('web', rollout);
  const fleet = await open();
  try {
    assert.equal(await fleet.adopt(local, ['web']), { hosts: 2_500, rollouts: 1 });
    assert.is(fleet.count('web'), 2_500);
    assert.is(fleet.rollout('web')?.percent, 5);
    assert.is(await fleet.adopt(local, ['web']), undefined, 'a database with a registry keeps it');
  } finally {
    await Promise.all([fleet.close(), local.close()]);
  }
});

test.run();
