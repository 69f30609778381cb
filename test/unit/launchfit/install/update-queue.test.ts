// The order of work in `launchfit run`: one at a time, in order, past failures; check requests
// coalesce (joined while waiting, one more once started); a forced request forces the waiting check.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UpdateQueue } from '../../../../lib/launchfit/install/update-queue.ts';
import type { CheckResult } from '../../../../lib/launchfit/install/context.ts';

/** A queue whose checks wait until released, recording each check's `force`. */
function gatedQueue() {
  const checks: boolean[] = [];
  const gates: Array<() => void> = [];
  const queue = new UpdateQueue(async (force) => {
    checks.push(force);
    await new Promise<void>((r) => gates.push(r));
    return { action: 'up-to-date', message: `check ${checks.length}` } satisfies CheckResult;
  });
  return { queue, checks, gates };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
/** Let the oldest waiting work go on (once it has had the chance to start). */
const release = async (gates: Array<() => void>) => {
  await tick();
  gates.shift()!();
};

test('exclusive: one at a time, in order, and a failure does not stop the next', async () => {
  const queue = new UpdateQueue(async () => ({ action: 'up-to-date', message: '' }));
  const seen: string[] = [];
  const slow = queue.exclusive(async () => {
    seen.push('a start');
    await tick();
    seen.push('a end');
  });
  const failing = queue.exclusive(async () => {
    seen.push('b');
    throw new Error('b failed');
  });
  const last = queue.exclusive(async () => {
    seen.push('c');
    return 3;
  });
  await slow;
  await failing.then(
    () => assert.unreachable('b should fail'),
    (error: Error) => assert.match(error.message, /b failed/),
  );
  assert.is(await last, 3);
  assert.equal(seen, ['a start', 'a end', 'b', 'c']);
  await queue.idle(); // settles, never rejects
});

test('requests while a check waits to start join it; once started, they queue one more', async () => {
  const { queue, checks, gates } = gatedQueue();
  const blocker = queue.exclusive(() => new Promise<void>((r) => gates.push(r)));
  const first = queue.requestCheck();
  assert.is(queue.requestCheck(), first, 'joined while waiting');
  await release(gates);
  await blocker;
  await tick();
  assert.equal(checks, [false], 'the first check started');
  const second = queue.requestCheck();
  assert.is.not(second, first, 'a request after the start queues one more');
  assert.is(queue.requestCheck(), second);
  await release(gates);
  assert.is((await first).message, 'check 1');
  await release(gates);
  assert.is((await second).message, 'check 2');
  assert.equal(checks, [false, false]);
});

test('a forced request makes the waiting check a forced one, and only that one', async () => {
  const { queue, checks, gates } = gatedQueue();
  const blocker = queue.exclusive(() => new Promise<void>((r) => gates.push(r)));
  const joined = queue.requestCheck();
  assert.is(queue.requestCheck({ force: true }), joined);
  await release(gates);
  await blocker;
  await release(gates);
  await joined;
  const next = queue.requestCheck();
  await release(gates);
  await next;
  assert.equal(checks, [true, false]);
});

test('a verdict comes when the check tells it, before its end; else at its end; a failed check fails it', async () => {
  const gates: Array<() => void> = [];
  const seen: string[] = [];
  let n = 0;
  const queue = new UpdateQueue(async (_force, verdict) => {
    n++;
    if (n === 3) throw new Error('check 3 failed');
    if (n === 1) verdict({ action: 'installed', message: 'serving; the old one drains' });
    await new Promise<void>((r) => gates.push(r));
    seen.push(`check ${n} ended`);
    return { action: 'up-to-date', message: `check ${n}` };
  });
  const early = queue.requestVerdict({ force: true });
  const whole = queue.requestCheck();
  assert.is((await early).message, 'serving; the old one drains');
  assert.equal(seen, [], 'before the check ended');
  await release(gates);
  assert.is((await whole).message, 'check 1', 'the same check, to its end');
  const late = queue.requestVerdict();
  await release(gates);
  assert.is((await late).message, 'check 2', 'no early verdict: the result at the end');
  await queue.requestVerdict().then(
    () => assert.unreachable('check 3 should fail'),
    (error: Error) => assert.match(error.message, /check 3 failed/),
  );
});

test.run();
