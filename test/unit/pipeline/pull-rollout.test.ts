// The pull rollout step's address of hook-server (lib/pipeline/pull-rollout.ts fleetUrlFor):
// fleet_url:, else public_url:, else http:// + listen:, a wildcard reached on loopback. The step
// itself runs in test/e2e/build/pipeline.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fleetUrlFor } from '../../../lib/pipeline/pull-rollout.ts';

test('fleetUrlFor: fleet_url, else public_url, else http://listen (a wildcard listen reached on loopback)', () => {
  assert.is(fleetUrlFor({ listen: '0.0.0.0:9000' }, {}), 'http://127.0.0.1:9000');
  assert.is(fleetUrlFor({ listen: '10.1.2.3:9000' }, {}), 'http://10.1.2.3:9000');
  assert.is(fleetUrlFor({ listen: '[::]:9000' }, {}), 'http://[::1]:9000');
  assert.is(
    fleetUrlFor({ listen: '127.0.0.1:9000', publicUrl: 'https://ci.example.com' }, {}),
    'https://ci.example.com',
  );
  assert.is(
    fleetUrlFor(
      { listen: '127.0.0.1:9000', publicUrl: 'https://ci.example.com' },
      { fleetUrl: 'http://10.0.0.2:9000' },
    ),
    'http://10.0.0.2:9000',
  );
});

test.run();
