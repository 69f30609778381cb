// fleet-routes.ts's Retry-After for a report the database could not take: spread over 5 to 15 s. The
// routes themselves run in a real hook-server: test/e2e/hook-server/fleet*.test.ts, test/e2e/ha/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { retryLater } from '../../../lib/server/fleet-routes.ts';

test('retryLater: 5 s at the lowest draw, 15 s at the highest, whole seconds between', () => {
  assert.equal(
    retryLater(() => 0),
    { 'Retry-After': '5' },
  );
  assert.equal(
    retryLater(() => 0.999_999),
    { 'Retry-After': '15' },
  );
  const seen = new Set(Array.from({ length: 2_000 }, () => Number(retryLater()['Retry-After'])));
  assert.ok(
    [...seen].every((s) => Number.isInteger(s) && s >= 5 && s <= 15),
    [...seen].join(' '),
  );
  assert.ok(seen.size > 5, 'drawn, not one value for everyone');
});

test.run();
