import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDeliveryOutcomes } from '../../../lib/notify/outcomes.ts';

test('records are kept per job, updated by key, oldest jobs dropped past the bound', () => {
  const outcomes = createDeliveryOutcomes({ jobs: 2, perJob: 2 });
  outcomes.record('a', 'status:pending', { what: 'commit status pending', outcome: 'sending', attempts: 1 });
  outcomes.record('a', 'status:pending', {
    what: 'commit status pending',
    outcome: 'failed',
    attempts: 3,
    detail: 'HTTP 500',
  });
  outcomes.record('a', 'slack', { what: 'slack', outcome: 'delivered', attempts: 1 });
  outcomes.record('a', 'third', { what: 'over the bound', outcome: 'delivered', attempts: 1 });
  assert.equal(
    outcomes.of('a').map((r) => [r.what, r.outcome, r.attempts, r.detail]),
    [
      ['commit status pending', 'failed', 3, 'HTTP 500'],
      ['slack', 'delivered', 1, undefined],
    ],
  );
  outcomes.record('b', 'x', { what: 'b', outcome: 'delivered', attempts: 1 });
  outcomes.record('c', 'x', { what: 'c', outcome: 'delivered', attempts: 1 });
  assert.equal(outcomes.of('a'), []);
  assert.equal(outcomes.of('c').length, 1);
  assert.equal(outcomes.of('nothing'), []);
});

test.run();
