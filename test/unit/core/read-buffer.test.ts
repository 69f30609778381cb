// Reused read buffers (lib/core/read-buffer.ts): one per read in flight, given back when it settles
// (thrown or not), and the same buffers taken again instead of new ones.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { READ_STEP, withReadBuffer } from '../../../lib/core/read-buffer.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

test('withReadBuffer: READ_STEP bytes, a different buffer for each read in flight', async () => {
  const held: Buffer[] = [];
  await Promise.all(
    Array.from({ length: 4 }, () =>
      withReadBuffer(async (buffer) => {
        held.push(buffer);
        await tick();
      }),
    ),
  );
  assert.is(held.length, 4);
  assert.ok(held.every((b) => b.length === READ_STEP));
  assert.is(new Set(held).size, 4);
});

test('withReadBuffer: a buffer given back, also by a use that throws, is the one taken next', async () => {
  let first: Buffer | undefined;
  await withReadBuffer(async (buffer) => {
    first = buffer;
    throw new Error('read failed');
  }).catch((error: Error) => assert.is(error.message, 'read failed'));
  const again = await withReadBuffer(async (buffer) => buffer);
  assert.is(again, first);
});

test.run();
