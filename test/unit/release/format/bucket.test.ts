// @deno
// The rollout bucket (docs/design.md): sha256(host id + " " + version), first 8 bytes
// big-endian / 2^64 * 100. Vectors computed outside our code (Python's hashlib and int.from_bytes).
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HOST_ID_PATTERN, inRollout, rolloutBucket } from '../../../../lib/release/format/bucket.ts';

test('rolloutBucket matches vectors computed by Python from the contract text', () => {
  assert.ok(Math.abs(rolloutBucket('0123456789abcdef0123456789abcdef', '1.2.0') - 16.99754247344741) < 1e-9);
  assert.ok(Math.abs(rolloutBucket('ffffffffffffffffffffffffffffffff', '10.0') - 29.730144354531767) < 1e-9);
});

test('inRollout: bucket below the percent; every host at 100; about P% of many hosts at P', () => {
  assert.is(inRollout('0123456789abcdef0123456789abcdef', '1.2.0', 17), true);
  assert.is(inRollout('0123456789abcdef0123456789abcdef', '1.2.0', 16.99), false);
  let inTen = 0;
  for (let i = 0; i < 10_000; i++) {
    const id = randomBytes(16).toString('hex');
    assert.is(inRollout(id, '1.0', 100), true);
    if (inRollout(id, '1.0', 10)) inTen++;
  }
  assert.ok(inTen > 800 && inTen < 1200, `${inTen} of 10000 at 10%`);
});

test('HOST_ID_PATTERN: 32 lowercase hex characters only', () => {
  assert.ok(HOST_ID_PATTERN.test('0123456789abcdef0123456789abcdef'));
  for (const bad of [
    '0123456789ABCDEF0123456789ABCDEF',
    '0123',
    `${'a'.repeat(32)}\n`,
    '../../etc/passwd',
    'g'.repeat(32),
  ])
    assert.not.ok(HOST_ID_PATTERN.test(bad), bad);
});

test.run();
