// release diff's signature check streamed from disk (lib/release/diff/verify.ts): a .sig by the
// release key over the file, binary or armored, alone or after another key's; refused for a
// changed file, another key's signature, or bytes that are no signature. The rest of
// readVerifiedRelease runs in test/unit/release/diff/diff.test.ts and test/e2e/release/diff.test.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signedByReleaseKey } from '../../../../lib/release/diff/verify.ts';
import { loadSigningKey, signDetached } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { exportPublic, makePublisher } from '../../../fixtures/launchfit/gpg.ts';

let base: string;
let certificate: string;
let file: string;
let ours: Uint8Array;
let theirs: Uint8Array;

test.before(async () => {
  base = tmpDir('shipkit-diff-verify-');
  const me = await makePublisher(base, 'pw');
  const other = await makePublisher(tmpDir('shipkit-diff-verify-other-'), 'x');
  certificate = readFileSync(await exportPublic(me.g, me.key.fpr, path.join(base, 'keys.asc')), 'utf8');
  file = path.join(base, 'app.tar.gz');
  // Several read chunks: the stream is hashed piece by piece.
  writeFileSync(file, Buffer.alloc(300_000, 7));
  ours = await signDetached(await loadSigningKey(me.secret, me.passFile), { file });
  theirs = await signDetached(await loadSigningKey(other.secret, other.passFile), { file });
});

test('the release key signature over the file, binary or armored, or after another key’s', async () => {
  assert.is(await signedByReleaseKey(certificate, file, ours), true);
  const openpgp = await import('openpgp');
  const armored = (await openpgp.readSignature({ binarySignature: ours })).armor();
  assert.is(await signedByReleaseKey(certificate, file, Buffer.from(armored)), true);
  assert.is(await signedByReleaseKey(certificate, file, Buffer.concat([theirs, ours])), true);
});

test('a changed file, another key, or bytes that are no signature: false', async () => {
  assert.is(await signedByReleaseKey(certificate, file, theirs), false);
  assert.is(await signedByReleaseKey(certificate, file, Buffer.from('not a signature')), false);
  const changed = path.join(base, 'changed.tar.gz');
  writeFileSync(changed, Buffer.alloc(300_000, 8));
  assert.is(await signedByReleaseKey(certificate, changed, ours), false);
});

test.run();
