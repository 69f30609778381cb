// @deno
// readAtMost: the first N bytes of a body, and the stream hung up on past them (never read on).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readAtMost } from '../../../lib/http/read-at-most.ts';

/** A stream of `count` chunks of `size` bytes ('a', 'b', …); counts the pulls and notes a cancel. */
function chunked(count: number, size: number) {
  const seen = { pulls: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (seen.pulls === count) return controller.close();
        controller.enqueue(new Uint8Array(size).fill(97 + (seen.pulls % 26)));
        seen.pulls++;
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

test('a body shorter than the cap comes whole; no body is empty', async () => {
  const { stream, seen } = chunked(3, 10);
  assert.is((await readAtMost(stream, 100)).toString(), 'a'.repeat(10) + 'b'.repeat(10) + 'c'.repeat(10));
  assert.not.ok(seen.cancelled);
  assert.is((await readAtMost(null, 100)).byteLength, 0);
});

test('a longer body is cut at the cap, inside a chunk, and cancelled there: the rest is never pulled', async () => {
  const { stream, seen } = chunked(1000, 10);
  const got = await readAtMost(stream, 25);
  assert.is(got.toString(), 'a'.repeat(10) + 'b'.repeat(10) + 'c'.repeat(5));
  assert.ok(seen.cancelled, 'hung up on');
  assert.ok(seen.pulls <= 4, `${seen.pulls} chunks pulled`);
});

test('a body of exactly the cap is whole', async () => {
  const { stream } = chunked(2, 10);
  assert.is((await readAtMost(stream, 20)).byteLength, 20);
});

test('an error while reading is thrown as it is: the hang-up after it does not hide it', async () => {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(5));
    },
    pull(controller) {
      controller.error(new Error('reset'));
    },
    cancel() {
      cancelled = true;
    },
  });
  await readAtMost(stream, 100).then(
    () => assert.unreachable('should throw'),
    (error) => assert.is((error as Error).message, 'reset'),
  );
  assert.not.ok(cancelled, 'an errored stream is not cancelled again');
});

test.run();
