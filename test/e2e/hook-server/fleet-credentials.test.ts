// Each fleet host signs its reports with its own credential (docs/fleet.md "Host credentials"),
// against a real hook-server: the app's secret enrols a host once and can no longer speak for it
// (F06/F08/F09: a leaked app secret cannot rewrite or pin another host's report), a SEQ above a
// running rollout's is refused, a captured report cannot be replayed after a restart (F05), not even
// one signed in the same second as the host's next (audit 1), the app's secret cannot pin a host
// that has not signed with its credential yet (audit 2), and a change-over of the app's secret
// hands every host its new credential (drill 3).
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostCredential } from '../../../lib/release/format/fleet-report.ts';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { hostId, report, send, signed } from '../../fixtures/fleet-requests.ts';
import { startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const OLD = `fleet-old-${randomUUID()}`;
const NEW = `fleet-new-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `s-${randomUUID()}`, HOOK_TOKEN: TOKEN, FLEET_OLD: OLD, FLEET_NEW: NEW };

function config(dir: string, secret: string): string {
  const file = writeConfig(dir, { repos: { 'octo/site': {} } });
  const base = readFileSync(file, 'utf8').replace(/fleet:[\s\S]*$/, '');
  writeFileSync(file, `${base}fleet:\n  web:\n    secret: ${secret}\n`);
  return file;
}

const postReport = (server: Server, body: unknown, key: string, now?: () => number) =>
  send(server, signed('/fleet/reports', body, key, now));

async function hostsOf(server: Server): Promise<Map<string, any>> {
  const res = await fetch(`${server.url}/fleet/web`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return new Map(((await res.json()) as any).hosts.map((h: any) => [h.host, h]));
}

const start = (file: string) => startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0'], { env });

test("the app's secret enrols a host once; then only the host's own credential speaks for it", async () => {
  const file = config(tmpDir(), 'env:FLEET_OLD');
  const server = await start(file);
  try {
    const [a, b] = [hostId(), hostId()];
    const enrol = await postReport(server, report(a), OLD);
    assert.is(enrol.status, 202);
    assert.is(enrol.json.credential, hostCredential(OLD, a), "the host's credential is in the answer");
    const own = await postReport(server, report(a, { seq: 4 }), enrol.json.credential);
    assert.equal([own.status, own.json], [202, { ok: true }], 'no credential handed out again');
    assert.is((await hostsOf(server)).get(a).enrolled, true);

    // Whoever holds the app secret (any host, or a thief) tries to pin a's entry (F06) or to
    // report it failed (F09), or updated (F08): refused, and a's entry is unchanged.
    for (const forged of [report(a, { seq: 2 ** 53 - 1 }), report(a, { seq: 5, result: 'failed', reason: 'x' })]) {
      const answer = await postReport(server, forged, OLD);
      assert.is(answer.status, 401);
      assert.match(JSON.stringify(answer.json), /unauthorized/);
    }
    // Another host's credential cannot sign for a either.
    await postReport(server, report(b), OLD);
    assert.is((await postReport(server, report(a, { seq: 6 }), hostCredential(OLD, b))).status, 401);
    const kept = (await hostsOf(server)).get(a);
    assert.equal([kept.seq, kept.result], [4, 'updated']);
    assert.match(server.output(), /host [0-9a-f]{32} is enrolled: its reports are signed with its own credential/);
  } finally {
    await server.stop();
  }
});

test("while a rollout runs, a report with a SEQ above the rollout's is refused (F06)", async () => {
  const server = await start(config(tmpDir(), 'env:FLEET_OLD'));
  try {
    const rollout = {
      app: 'web',
      version: '1.1',
      seq: 7,
      step: 1,
      percent: 10,
      steps: [10, 100],
      state: 'waiting',
      reason: '',
      at: new Date().toISOString(),
    };
    assert.is((await send(server, signed('/fleet/rollouts', rollout, OLD))).status, 202);
    const a = hostId();
    const above = await postReport(server, report(a, { seq: 8 }), OLD);
    assert.is(above.status, 400);
    assert.match(above.json.error, /seq 8 is above the highest SEQ published for web \(7\)/);
    assert.is((await hostsOf(server)).has(a), false, 'nothing kept');
    assert.is((await postReport(server, report(a, { seq: 7 }), OLD)).status, 202);
  } finally {
    await server.stop();
  }
});

test('a captured report replayed after a restart is refused (F05); the newer one stands', async () => {
  const file = config(tmpDir(), 'env:FLEET_OLD');
  let server = await start(file);
  const a = hostId();
  try {
    const credential = (await postReport(server, report(a, { seq: 1, result: 'running' }), OLD)).json.credential;
    const captured = signed('/fleet/reports', report(a, { seq: 4, result: 'failed', reason: 'disk' }), credential);
    assert.is((await send(server, captured)).status, 202);
    const later = () => Date.now() + 5000;
    assert.is((await postReport(server, report(a, { seq: 4, result: 'updated' }), credential, later)).status, 202);
    assert.is(await server.stop(), 0);
    server = await start(file);
    const replay = await send(server, captured);
    assert.is(replay.status, 401);
    assert.is((await hostsOf(server)).get(a).result, 'updated');
    assert.match(server.output(), /older than the host's last report/);
  } finally {
    await server.stop();
  }
});

test('two reports in one second: the first replayed before and after a restart is refused (audit 1)', async () => {
  const file = config(tmpDir(), 'env:FLEET_OLD');
  let server = await start(file);
  const a = hostId();
  try {
    const credential = (await postReport(server, report(a, { seq: 1, result: 'running' }), OLD)).json.credential;
    const second = (Math.floor(Date.now() / 1000) + 2) * 1000; // the next second but one, for both
    const captured = signed(
      '/fleet/reports',
      report(a, { seq: 4, result: 'failed', reason: 'disk' }),
      credential,
      () => second,
    );
    const next = signed('/fleet/reports', report(a, { seq: 4, result: 'updated' }), credential, () => second + 999);
    assert.is(captured.headers['X-Shipkit-Timestamp'], next.headers['X-Shipkit-Timestamp'], 'one second');
    assert.is((await send(server, captured)).status, 202);
    assert.is((await send(server, next)).status, 202);
    assert.is((await send(server, captured)).status, 401, 'replayed before the restart');
    assert.is(await server.stop(), 0);
    server = await start(file);
    const replay = await send(server, captured);
    assert.equal([replay.status, replay.json.error], [401, 'unauthorized'], 'replayed after the restart');
    const kept = (await hostsOf(server)).get(a);
    assert.equal([kept.seq, kept.result], [4, 'updated']);
    assert.not.ok('nonces' in kept, 'the nonces kept against a replay are not shown');
    assert.match(server.output(), /a report of host [0-9a-f]{32} taken before, or older than the host's last report/);
    // A report of the same second the host had not sent yet is taken.
    const third = signed('/fleet/reports', report(a, { seq: 5 }), credential, () => second + 500);
    assert.is((await send(server, third)).status, 202);
  } finally {
    await server.stop();
  }
});

test("the app's secret cannot pin a seen host; its credential report is taken whatever the SEQ (audit 2)", async () => {
  const server = await start(config(tmpDir(), 'env:FLEET_OLD'));
  try {
    const a = hostId();
    const enrol = await postReport(server, report(a, { seq: 10 }), OLD);
    assert.is(enrol.status, 202);
    // Its credential was issued: a report forged with the app's secret is refused, even before
    // the host has signed with it, and whatever its SEQ.
    for (const seq of [2 ** 53 - 1, 11]) {
      const forged = await postReport(server, report(a, { seq, result: 'failed', reason: 'forged' }), OLD);
      assert.is(forged.status, 401, `SEQ ${seq}`);
    }
    // A SEQ above any VERSION's (15 digits) is refused from a new host too, signed with anything.
    const huge = await postReport(server, report(hostId(), { seq: 2 ** 53 - 1 }), OLD);
    assert.equal(huge.status, 400);
    assert.match(huge.json.error, /seq 9007199254740991 is above the largest SEQ a VERSION can carry/);
    // The host's own report, with a lower SEQ than its app-secret one, replaces it.
    assert.is((await postReport(server, report(a, { seq: 4 }), enrol.json.credential)).status, 202);
    const kept = (await hostsOf(server)).get(a);
    assert.equal([kept.seq, kept.result, kept.enrolled], [4, 'updated', true]);
    assert.match(server.output(), /host [0-9a-f]{32} is enrolled: its reports are signed with its own credential/);
  } finally {
    await server.stop();
  }
});

test("a change-over of the app's secret hands each enrolled host its new credential, touching no host", async () => {
  const dir = tmpDir();
  let server = await start(config(dir, 'env:FLEET_OLD'));
  const a = hostId();
  try {
    const oldCredential = (await postReport(server, report(a, { seq: 1 }), OLD)).json.credential;
    assert.is(await server.stop(), 0);
    server = await start(config(dir, '[env:FLEET_NEW, env:FLEET_OLD]'));
    const answer = await postReport(server, report(a, { seq: 2 }), oldCredential);
    assert.is(answer.status, 202, 'the old credential still works during the change-over');
    assert.is(answer.json.credential, hostCredential(NEW, a), 'and the answer carries the new one');
    assert.equal((await postReport(server, report(a, { seq: 3 }), answer.json.credential)).json, { ok: true });
    assert.is(await server.stop(), 0);
    server = await start(config(dir, 'env:FLEET_NEW'));
    assert.is((await postReport(server, report(a, { seq: 4 }), oldCredential)).status, 401, 'the old secret is gone');
    assert.is((await postReport(server, report(a, { seq: 4 }), answer.json.credential)).status, 202);
  } finally {
    await server.stop();
  }
});

test.run();
