// Sync work in slices (lib/core/work-slices.ts): no turn of the event loop inside a slice, one
// once the slice has run its time, so a timer or a socket waiting meanwhile is served.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { workSlices } from '../../../lib/core/work-slices.ts';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('inside a slice pause is nothing to wait for; past it, the event loop gets a turn', async () => {
  const pause = workSlices(20);
  assert.is(pause(), undefined, 'a fresh slice has time left');
  let served = false;
  setImmediate(() => (served = true));
  busy(25);
  const turn = pause();
  assert.ok(turn instanceof Promise, 'the slice ran out: pause yields');
  assert.is(served, false, 'nothing ran during the sync work');
  await turn;
  assert.is(served, true, 'what waited ran during the pause');
  assert.is(pause(), undefined, 'a new slice starts after the turn');
});

test('a walk of many small pieces that pauses lets a timer due meanwhile fire before it ends', async () => {
  const pause = workSlices(8);
  let firedAfter = -1;
  let done = 0;
  setTimeout(() => (firedAfter = done), 1);
  // 40 pieces of at least 2 ms each: slices of 8 ms end every 4 pieces or sooner.
  for (; done < 40; done++) {
    busy(2);
    await pause();
  }
  assert.ok(firedAfter >= 0, 'the timer fired during the walk');
  assert.ok(firedAfter <= 12, `the timer waited for ${firedAfter} pieces, not for the walk to end`);
});

test.run();
