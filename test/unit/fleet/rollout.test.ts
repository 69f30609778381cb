// Staged rollout planning (lib/fleet/rollout.ts): --waves parsing and how hosts fall into waves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseWaves, planRollout } from '../../../lib/fleet/rollout.ts';

const hosts = (n: number) => Array.from({ length: n }, (_, i) => ({ url: `http://h${i}:8080`, line: i + 1 }));
const shape = (waves: ReturnType<typeof planRollout>) =>
  waves.map((w) => `${w.name}=${w.targets.map((t) => t.url.slice(7, -5)).join(',')}`);

test('parseWaves: growing percentages ending at 100%', () => {
  assert.equal(parseWaves('25%,100%'), [25, 100]);
  assert.equal(parseWaves(' 10% , 33.3%,100% '), [10, 33.3, 100]);
  assert.equal(parseWaves('100%'), [100]);
  const bad: Array<[string, RegExp]> = [
    ['25%,50%', /end at 100%/],
    ['50%,50%,100%', /must grow/],
    ['25,100%', /not a share/],
    ['0%,100%', /not a share/],
    ['101%', /not a share/],
    ['', /not a share/],
    ['25%,,100%', /not a share/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseWaves(text), message, text);
});

test('planRollout: canary first, then cumulative shares of the rest, rounded', () => {
  assert.equal(shape(planRollout(hosts(10), { canary: 1, shares: [25, 100] })), [
    'canary=h0',
    'wave 1 (25%)=h1,h2',
    'wave 2 (100%)=h3,h4,h5,h6,h7,h8,h9',
  ]);
  assert.equal(shape(planRollout(hosts(4), { shares: [50, 100] })), ['wave 1 (50%)=h0,h1', 'wave 2 (100%)=h2,h3']);
  assert.equal(
    shape(planRollout(hosts(2), { canary: 2, shares: [25, 100] })),
    ['canary=h0,h1'],
    'nothing left after the canary',
  );
  assert.equal(shape(planRollout(hosts(3), {})), ['wave 1 (100%)=h0,h1,h2']);
  assert.throws(() => planRollout(hosts(3), { canary: 4 }), /--canary 4 is more than the 3 target/);
  assert.throws(
    () => planRollout(hosts(5), { canary: 1, shares: [10, 100] }),
    /wave 1 \(10%\) adds no host: 10% of the 4 host\(s\) after the canary rounds to 0/,
  );
  assert.throws(
    () => planRollout(hosts(4), { shares: [30, 35, 100] }),
    /wave 2 \(35%\) adds no host.*as the wave before it did/,
  );
});

test.run();
