// The one backoff (lib/core/retry.ts): doubling from the base, capped, jittered within its range.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffMs } from '../../../lib/core/retry.ts';

test('doubles from the base for each retry and stops at the cap', () => {
  assert.equal(
    [1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, { baseMs: 500, maxMs: 10_000 })),
    [500, 1000, 2000, 4000, 8000, 10_000],
  );
  assert.is(backoffMs(0, { baseMs: 100 }), 100, 'n below 1 is the first retry');
  assert.is(backoffMs(10_000, { baseMs: 1 }), 2 ** 30, 'no overflow to Infinity without a cap');
});

test('jitter multiplies by a factor in its range, at both ends and in between', () => {
  const b = { baseMs: 1000, jitter: [0.5, 1] as const };
  assert.is(
    backoffMs(2, b, () => 0),
    1000,
  );
  assert.ok(Math.abs(backoffMs(2, b, () => 0.999999) - 1999.999) < 0.001);
  for (let i = 0; i < 1000; i++) {
    const wait = backoffMs(3, { baseMs: 100, maxMs: 300, jitter: [0.75, 1.25] });
    assert.ok(wait >= 225 && wait <= 375, String(wait));
  }
});

test.run();
