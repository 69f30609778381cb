// `updates.gpg.key`: what a pin may be, and the error for anything else.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseKeyPin } from '../../../../lib/launchfit/deploy-folder/key-pin.ts';

test('parseKeyPin: full fingerprints pin, key IDs only select', () => {
  assert.equal(parseKeyPin('0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567'), {
    kind: 'fingerprint',
    value: '0123456789abcdef0123456789abcdef01234567',
  });
  assert.is(parseKeyPin('a'.repeat(64)).kind, 'fingerprint');
  assert.equal(parseKeyPin('0x89ABCDEF01234567'), { kind: 'keyid', value: '89abcdef01234567' });
  assert.is(parseKeyPin('01234567').kind, 'keyid');
  assert.throws(() => parseKeyPin('0123'), /neither a full fingerprint/);
});

test.run();
