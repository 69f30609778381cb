// Poll timing (lib/launchfit/install/poll-delay.ts): ±10 % around the interval; after failures, growing
// and bounded with jitter over the upper half; back to the interval at 0 failures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { maxBackoffMs, nextPollDelayMs } from '../../../../lib/launchfit/install/poll-delay.ts';

const at = (r: number) => () => r;

test('no failure: the interval ±10 %', () => {
  assert.is(nextPollDelayMs(300_000, 0, at(0)), 270_000);
  assert.is(nextPollDelayMs(300_000, 0, at(0.5)), 300_000);
  assert.ok(Math.abs(nextPollDelayMs(300_000, 0, at(0.999999)) - 330_000) < 1);
});

test('failures: 2^n intervals with jitter over the upper half, capped at 8 intervals or an hour', () => {
  const cases: Array<[number, number, number]> = [
    // interval, failures, upper bound (the lower is half of it)
    [1000, 1, 2000],
    [1000, 2, 4000],
    [1000, 3, 8000],
    [1000, 4, 8000],
    [1000, 100, 8000],
    [300_000, 1, 600_000],
    [300_000, 2, 1_200_000],
    [300_000, 3, 2_400_000],
    [300_000, 4, 2_400_000],
    [300_000, 9, 2_400_000],
    [600_000, 3, 3_600_000],
    [600_000, 30, 3_600_000], // 8 intervals would be 80 minutes: an hour
    [7_200_000, 5, 7_200_000], // an interval over an hour is its own cap
  ];
  for (const [interval, failures, upper] of cases) {
    assert.is(nextPollDelayMs(interval, failures, at(0)), upper / 2, `${interval} ${failures} low`);
    assert.ok(
      Math.abs(nextPollDelayMs(interval, failures, at(0.999999)) - upper) < upper * 1e-5,
      `${interval} ${failures} high`,
    );
    assert.ok(nextPollDelayMs(interval, failures) <= maxBackoffMs(interval));
  }
});

test('jitter spreads a fleet: 1,000 hosts after one failure do not retry in step', () => {
  const delays = Array.from({ length: 1000 }, () => Math.round(nextPollDelayMs(300_000, 1) / 1000));
  assert.ok(new Set(delays).size > 200, `${new Set(delays).size} distinct seconds`);
});

test.run();
