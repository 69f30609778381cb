// Batcher (lib/core/batch.ts): one run at a time; what comes while a run runs goes in the next
// one together; each item gets its own outcome; a run that throws rejects its items only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Batcher, perTurn } from '../../../lib/core/batch.ts';

test('items that come while a run runs share the next run; each gets its own answer', async () => {
  const runs: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const batcher = new Batcher<number, number>(async (items) => {
    runs.push(items);
    if (runs.length === 1) await gate;
    return items.map((i) => (i === 4 ? { error: new Error('four') } : { value: i * 10 }));
  });
  const first = batcher.add(1);
  const rest = [2, 3, 4, 5].map((i) => batcher.add(i).catch((e: Error) => e.message));
  release();
  assert.is(await first, 10);
  assert.equal(await Promise.all(rest), [20, 30, 'four', 50]);
  assert.equal(runs, [[1], [2, 3, 4, 5]]);
});

test('a run that throws rejects its items; the next run goes on', async () => {
  let calls = 0;
  const batcher = new Batcher<string, string>(async (items) => {
    if (++calls === 1) throw new Error('database away');
    return items.map((value) => ({ value }));
  });
  assert.is(await batcher.add('a').catch((e: Error) => e.message), 'database away');
  assert.is(await batcher.add('b'), 'b');
});

test('perTurn: what comes in one turn of the event loop is handed on once, together', async () => {
  const flushed: number[][] = [];
  const add = perTurn<number>((items) => flushed.push(items));
  add(1);
  add(2);
  await Promise.resolve();
  add(3);
  assert.equal(flushed, [], 'nothing before the turn is over');
  await new Promise((r) => setImmediate(r));
  assert.equal(flushed, [[1, 2, 3]]);
  add(4);
  await new Promise((r) => setImmediate(r));
  assert.equal(flushed, [[1, 2, 3], [4]]);
});

test.run();
