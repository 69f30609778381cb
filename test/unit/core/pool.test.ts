// Bounded concurrency (lib/core/pool.ts): mapLimit over a list, createLimiter for work that arrives.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLimiter, mapLimit } from '../../../lib/core/pool.ts';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('createLimiter: at most N at once, every call runs, in arrival order, errors free the slot', async () => {
  const gate = createLimiter(3);
  let now = 0;
  let most = 0;
  const order: number[] = [];
  const calls = Array.from({ length: 20 }, (_, i) =>
    gate.run(async () => {
      order.push(i);
      most = Math.max(most, ++now);
      await tick(5);
      now--;
      if (i % 7 === 0) throw new Error(`boom ${i}`);
      return i;
    }),
  );
  assert.is(gate.active, 3);
  assert.is(gate.waiting, 17);
  const settled = await Promise.allSettled(calls);
  assert.is(most, 3);
  assert.equal(
    order,
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.is(settled.filter((s) => s.status === 'rejected').length, 3);
  assert.is(gate.active, 0);
  assert.is(gate.waiting, 0);
});

test('mapLimit: results in order, at most N in flight', async () => {
  let now = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
    most = Math.max(most, ++now);
    await tick(n);
    now--;
    return n * 10;
  });
  assert.equal(out, [50, 10, 40, 20, 30]);
  assert.is(most, 2);
});

test.run();
