// A start's probation alone: passed at once, by its timer, by its check; failed by an exit or a
// rejecting check; settled once, so a late check cannot change the answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Probation } from '../../../../lib/launchfit/app/probation.ts';

const never = new Promise<void>(() => {});
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test('no time and no check: passed at once, nothing pending', async () => {
  const p = new Probation(0, undefined, never);
  assert.not.ok(p.pending());
  assert.is(await p.passed, true);
});

test('a timer passes the app when it runs out', async () => {
  const p = new Probation(30, undefined, never);
  assert.ok(p.pending());
  assert.is(await p.passed, true);
  assert.not.ok(p.pending());
});

test('an exit before the timer fails it, and the timer no longer counts', async () => {
  const p = new Probation(30, undefined, never);
  p.fail();
  assert.not.ok(p.pending());
  assert.is(await p.passed, false);
  await tick(50);
  assert.is(await p.passed, false);
});

test('a check decides, is handed the exit, and a rejection is a failure', async () => {
  const exited = Promise.resolve();
  let handed: Promise<void> | undefined;
  assert.is(
    await new Probation(
      0,
      async (e) => {
        handed = e;
        return true;
      },
      exited,
    ).passed,
    true,
  );
  assert.is(handed, exited);
  assert.is(await new Probation(0, async () => false, never).passed, false);
  assert.is(
    await new Probation(
      0,
      async () => {
        throw new Error('probe crashed');
      },
      never,
    ).passed,
    false,
  );
});

test('settled once: a check that ends after the exit does not change the answer', async () => {
  let answer!: (ok: boolean) => void;
  const p = new Probation(
    0,
    () =>
      new Promise<boolean>((r) => {
        answer = r;
      }),
    never,
  );
  await tick();
  assert.ok(p.pending());
  p.fail();
  answer(true);
  await tick();
  assert.is(await p.passed, false);
});

test.run();
