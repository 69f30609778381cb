// The one coalescing helper (lib/core/coalesce.ts): one run at a time, a burst during a run
// shares exactly one follow-up, a failed run does not stop the next, pending() never rejects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Coalescer } from '../../../lib/core/coalesce.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

test('a burst of requests during a run costs one more run, shared by all of them', async () => {
  let runs = 0;
  let active = 0;
  let most = 0;
  const gates = [gate(), gate(), gate()];
  const c = new Coalescer(async () => {
    const n = runs++;
    most = Math.max(most, ++active);
    await gates[n].opened;
    active--;
    return n;
  });
  const first = c.request();
  assert.is(first.joined, 'started');
  assert.ok(c.running);
  const second = c.request();
  const rest = Array.from({ length: 8 }, () => c.request());
  assert.is(second.joined, 'queued');
  assert.ok(rest.every((r) => r.joined === 'coalesced' && r.promise === second.promise));
  assert.ok(c.queued);
  gates[0].open();
  assert.is(await first.promise, 0);
  gates[1].open();
  assert.equal(await Promise.all(rest.map((r) => r.promise)), Array(8).fill(1));
  assert.is(runs, 2);
  assert.is(most, 1, 'never two runs at once');
  assert.not.ok(c.running);
  assert.not.ok(c.queued);
  gates[2].open();
  assert.is(c.request().joined, 'started', 'idle again: the next request starts a run');
});

test('a failed run rejects its callers only; the follow-up still runs; pending() never rejects', async () => {
  let runs = 0;
  const g = gate();
  const c = new Coalescer(async () => {
    runs++;
    if (runs === 1) {
      await g.opened;
      throw new Error('disk full');
    }
    return 'ok';
  });
  const failing = c.call();
  const follow = c.call();
  const pending = c.pending();
  g.open();
  assert.is(await failing.then(String, (error: Error) => error.message), 'disk full');
  assert.is(await follow, 'ok');
  assert.is(await pending, undefined);
  assert.is(await new Coalescer(async () => 1).pending(), undefined, 'nothing asked: settles at once');
});

test.run();
