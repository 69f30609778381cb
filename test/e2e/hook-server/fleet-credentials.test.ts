// Each fleet host signs its reports with its own credential (docs/fleet.md "Host credentials"),
// against a real hook-server: the app's secret enrols a host once and can no longer speak for it
// (F06/F08/F09: a leaked app secret cannot rewrite or pin another host's report), a SEQ above a
// running rollout's is refused, a captured report cannot be replayed after a restart (F05), and a
// change-over of the app's secret hands every host its new credential (drill 3).
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
