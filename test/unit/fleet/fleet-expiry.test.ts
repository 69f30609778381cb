// Silent hosts leave the fleet registry on their own (lib/fleet/fleet-expiry.ts): at start and on
// each sweep after, per app by its forget_after (0 = never), logged with the count, durable, and
// a timer that keeps no process alive and stops when told.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FleetStore } from '../../../lib/fleet/fleet-store.ts';
import { forgetSilentHosts, startFleetExpiry } from '../../../lib/fleet/fleet-expiry.ts';
import type { HostEntry } from '../../../lib/release/format/fleet-report.ts';
import type { Logger } from '../../../lib/core/log.ts';
import { tmpDir } from '../../_helpers/common.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-23T10:00:00Z');

function entry(daysAgo: number): HostEntry {
  return {
    host: randomBytes(16).toString('hex'),
    version: '1.0',
    previous: '',
    seq: 1,
    bucket: 50,
    claimed_bucket: null,
    result: 'running',
    reason: '',
    seconds: null,
    at: NOW - daysAgo * DAY,
  };
}

function recordingLog() {
  const lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  const at =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void =>
      void lines.push({ level, message, fields });
  const log = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } as unknown as Logger;
  return { log, lines };
}

test('forgetSilentHosts: per app, hosts older than its forget_after; 0 keeps every host', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const web = [entry(31), entry(29), entry(400)];
  const api = [entry(400)];
  for (const h of web) await store.addReport('web', h);
  for (const h of api) await store.addReport('api', h);
  const forgotten = await forgetSilentHosts(
    store,
    new Map([
      ['web', 30],
      ['api', 0],
    ]),
    NOW,
  );
  assert.equal([...forgotten], [['web', 2]]);
  assert.equal(
    store.hosts('web').map((e) => e.host),
    [web[1].host],
  );
  assert.is(store.count('api'), 1, 'forget_after: 0 is never');
  await store.close();
  const again = await FleetStore.open(dir);
  assert.is(again.count('web'), 1, 'durable');
  await again.close();
});

test('startFleetExpiry: sweeps at start (logged with the count), then on its timer; stop ends it', async () => {
  const store = await FleetStore.open(tmpDir());
  await store.addReport('web', entry(31));
  await store.addReport('web', entry(1));
  let now = NOW;
  const { log, lines } = recordingLog();
  const expiry = await startFleetExpiry({
    store,
    forgetAfterDays: new Map([['web', 30]]),
    log,
    now: () => now,
    intervalMs: 20,
  });
  assert.is(store.count('web'), 1, 'the first sweep is done when it resolves');
  assert.equal(lines, [
    { level: 'info', message: 'fleet: forgot 1 host silent for over 30 days', fields: { app: 'web', hosts: 1 } },
  ]);
  now += 30 * DAY;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.is(store.count('web'), 0, 'a later sweep');
  assert.match(lines[1].message, 'forgot 1 host');
  await expiry.stop();
  await store.addReport('web', entry(365));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.is(store.count('web'), 1, 'no sweep after stop');
  await store.close();
});

test('startFleetExpiry: nothing to forget is not logged; a sweep that fails is logged and does not throw', async () => {
  const store = await FleetStore.open(tmpDir());
  await store.addReport('web', entry(40));
  const quiet = recordingLog();
  const none = await startFleetExpiry({
    store,
    forgetAfterDays: new Map([['web', 0]]),
    log: quiet.log,
    now: () => NOW,
  });
  await none.stop();
  assert.is(store.count('web'), 1);
  assert.equal(quiet.lines, []);
  await store.close();
  const failing = recordingLog();
  // A closed registry refuses the write, as a full disk would.
  const expiry = await startFleetExpiry({
    store,
    forgetAfterDays: new Map([['web', 30]]),
    log: failing.log,
    now: () => NOW,
  });
  await expiry.stop();
  assert.is(failing.lines.length, 1);
  assert.is(failing.lines[0].level, 'warn');
  assert.match(failing.lines[0].message, 'could not forget silent hosts');
});

test.run();
