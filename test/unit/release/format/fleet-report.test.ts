// Fleet report rules (lib/release/format/fleet-report.ts): what a host report must hold, the computed
// bucket beside the claimed one, which report a host's entry keeps, rollout states, and what a
// request to forget hosts must hold.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import {
  checkForget,
  checkReport,
  checkRollout,
  MAX_FORGET_HOSTS,
  reportBody,
  supersedes,
} from '../../../../lib/release/format/fleet-report.ts';
import { rolloutBucket } from '../../../../lib/release/format/bucket.ts';

const HOST = '0123456789abcdef0123456789abcdef';
const good = {
  app: 'my-app',
  host: HOST,
  version: '1.2.0',
  previous: '1.1.0',
  seq: 42,
  bucket: 12.5,
  result: 'updated',
  reason: '',
  seconds: 3.2,
  extra: 'ignored',
};

test('a good report: bucket computed, claimed kept beside it, unknown keys dropped', () => {
  const entry = checkReport(good, 1000);
  assert.is(entry.bucket, rolloutBucket(HOST, '1.2.0'));
  assert.is(entry.claimed_bucket, 12.5);
  assert.is(entry.app, 'my-app');
  assert.is(entry.seq, 42);
  assert.is(entry.at, 1000);
  assert.not.ok('extra' in entry);
  assert.equal([entry.way, entry.bytes], ['', null], 'an older host names no way');
  const delta = checkReport({ ...good, way: 'patch', bytes: 8192 }, 1000);
  assert.equal([delta.way, delta.bytes], ['patch', 8192]);
});

test('reportBody carries the way an update took and the bytes it fetched', () => {
  const body = JSON.parse(
    reportBody({ app: 'a', host: HOST, version: '1.1', result: 'updated', way: 'patch', bytes: 805 }),
  );
  assert.equal([body.way, body.bytes], ['patch', 805]);
  assert.equal(checkReport(body, 1).way, 'patch');
});

const hostile: Array<[string, unknown, RegExp]> = [
  ['not an object', [good], /JSON object/],
  ['app with a slash', { ...good, app: '../etc' }, /app is not a valid name/],
  ['host not hex', { ...good, host: 'Z'.repeat(32) }, /host must be/],
  ['host too short', { ...good, host: 'ab' }, /host must be/],
  ['version with a newline', { ...good, version: '1.2\n0' }, /version/],
  ['unknown result', { ...good, result: 'exploded' }, /result must be one of/],
  ['reason too long', { ...good, reason: 'x'.repeat(501) }, /reason must be/],
  ['negative seq', { ...good, seq: -1 }, /seq must be/],
  ['bucket a string', { ...good, bucket: '12' }, /bucket must be/],
  ['unknown way', { ...good, way: 'teleport' }, /way must be one of reuse, patch, files, full/],
  ['negative bytes', { ...good, bytes: -5 }, /bytes must be a number/],
];
for (const [label, body, message] of hostile) {
  test(`refused: ${label}`, () => {
    try {
      checkReport(body, 0);
      assert.unreachable('accepted');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  });
}

test('latest report per host: higher seq wins, same seq the later one', () => {
  const a = checkReport({ ...good, seq: 5 }, 100);
  const older = checkReport({ ...good, seq: 4 }, 200);
  const sameLater = checkReport({ ...good, seq: 5, result: 'failed' }, 300);
  assert.ok(supersedes(a, undefined));
  assert.not.ok(supersedes(older, a));
  assert.ok(supersedes(sameLater, a));
  assert.not.ok(supersedes(a, sameLater));
});

const rollout = {
  app: 'my-app',
  version: '1.2.0',
  seq: 7,
  step: 2,
  percent: 10,
  steps: [1, 10, 100],
  state: 'running',
  reason: '',
  at: '2026-11-23T10:00:00.000Z',
  extra: 1,
};

test('a rollout state: kept with the time it was received, unknown keys dropped', () => {
  const record = checkRollout(rollout, 5);
  assert.equal(record, {
    app: 'my-app',
    version: '1.2.0',
    seq: 7,
    step: 2,
    percent: 10,
    steps: [1, 10, 100],
    state: 'running',
    reason: '',
    at: '2026-11-23T10:00:00.000Z',
    received: 5,
  });
});

const hostileRollouts: Array<[string, unknown, RegExp]> = [
  ['an array', [rollout], /JSON object/],
  ['app with a slash', { ...rollout, app: 'a/b' }, /app is not a valid name/],
  ['unknown state', { ...rollout, state: 'exploded' }, /state must be one of/],
  ['step past the steps', { ...rollout, step: 4 }, /step must be/],
  ['step 0', { ...rollout, step: 0 }, /step must be/],
  ['percent 0', { ...rollout, percent: 0 }, /percent must be/],
  ['percent over 100', { ...rollout, percent: 101 }, /percent must be/],
  ['steps with a string', { ...rollout, steps: [1, '10', 100] }, /steps must be/],
  ['21 steps', { ...rollout, steps: Array.from({ length: 21 }, (_, i) => i + 1) }, /steps must be/],
  ['seq a float', { ...rollout, seq: 1.5 }, /seq must be/],
  ['reason too long', { ...rollout, reason: 'x'.repeat(501) }, /reason must be/],
  ['at too long', { ...rollout, at: 'x'.repeat(41) }, /at must be/],
];
for (const [label, body, message] of hostileRollouts) {
  test(`rollout refused: ${label}`, () => {
    try {
      checkRollout(body, 0);
      assert.unreachable('accepted');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  });
}

test('a forget request: named hosts, or days silent; unknown keys dropped', () => {
  assert.equal(checkForget({ app: 'my-app', hosts: [HOST], extra: 1 }), { app: 'my-app', hosts: [HOST] });
  assert.equal(checkForget({ app: 'my-app', silent_for_days: 7 }), { app: 'my-app', silentForDays: 7 });
});

const hostileForgets: Array<[string, unknown, RegExp]> = [
  ['an array', [{ app: 'my-app', hosts: [HOST] }], /forget must be a JSON object/],
  ['null', null, /forget must be a JSON object/],
  ['app with a slash', { app: '../x', hosts: [HOST] }, /forget app is not a valid name/],
  ['neither', { app: 'my-app' }, /either hosts .* or silent_for_days/],
  ['both', { app: 'my-app', hosts: [HOST], silent_for_days: 3 }, /not both/],
  ['hosts not a list', { app: 'my-app', hosts: HOST }, /hosts must be a list of 1 to 1000/],
  ['no hosts', { app: 'my-app', hosts: [] }, /hosts must be a list of 1 to 1000/],
  [
    'too many hosts',
    { app: 'my-app', hosts: Array.from({ length: MAX_FORGET_HOSTS + 1 }, () => HOST) },
    /hosts must be a list of 1 to 1000/,
  ],
  ['a host not hex', { app: 'my-app', hosts: [HOST, 'Z'.repeat(32)] }, /"Z{32}" is not a host id/],
  ['a host a number', { app: 'my-app', hosts: [12] }, /"12" is not a host id/],
  ['a path as host', { app: 'my-app', hosts: ['../../etc/passwd'] }, /is not a host id/],
  ['0 days', { app: 'my-app', silent_for_days: 0 }, /silent_for_days must be a whole number of days from 1 to 36500/],
  ['days a string', { app: 'my-app', silent_for_days: '7' }, /silent_for_days must be/],
  ['days a fraction', { app: 'my-app', silent_for_days: 1.5 }, /silent_for_days must be/],
  ['days negative', { app: 'my-app', silent_for_days: -3 }, /silent_for_days must be/],
];
for (const [label, body, message] of hostileForgets) {
  test(`forget refused: ${label}`, () => {
    try {
      checkForget(body);
      assert.unreachable('accepted');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  });
}

test.run();
