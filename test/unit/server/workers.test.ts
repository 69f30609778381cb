// `workers:` as a count of processes taking deliveries (lib/server/workers.ts); the worker
// processes themselves are tested in test/e2e/hook-server/workers.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { workerCount } from '../../../lib/server/workers.ts';

test('a number is taken as it is', () => {
  assert.is(workerCount(1, 8), 1);
  assert.is(workerCount(3, 2), 3);
});

test('auto: one process per core counting hook-server, hook-server alone on two cores or fewer', () => {
  assert.is(workerCount('auto', 1), 1);
  assert.is(workerCount('auto', 2), 1);
  assert.is(workerCount('auto', 3), 2);
  assert.is(workerCount('auto', 16), 15);
});

test.run();
