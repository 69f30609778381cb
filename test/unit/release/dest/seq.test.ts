// SEQ on the publisher's side (lib/release/dest/seq.ts) with a real key and a folder destination:
// DEST's VERSION trusted only when this key signed it, the next SEQ (or --seq above it), and the
// three-step write after which VERSION and VERSION.sig verify together, with the order of the steps.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import { nextSeq, ownSignatureOver, placeVersionPair, readPublishedVersion } from '../../../../lib/release/dest/seq.ts';
import { MAX_SEQ } from '../../../../lib/release/format/version-file.ts';
import { signDetached, type SigningKey } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const openpgp = await import('openpgp');

async function key(name: string): Promise<{ key: SigningKey; cert: string }> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    format: 'armored',
  });
  return { key: await openpgp.readPrivateKey({ armoredKey: privateKey }), cert: publicKey };
}

const publisher = await key('publisher');
const stranger = await key('stranger');
const version = (seq: number) => `CURRENT 1.${seq} web-linux-1.${seq}.tar.gz\nSEQ ${seq}\n`;

async function publish(dest: ReturnType<typeof openDestination>, seq: number, signer = publisher) {
  const text = version(seq);
  const signature = await signDetached(signer.key, { data: Buffer.from(text) });
  const { published } = await readPublishedVersion(dest, publisher.cert);
  const steps: string[] = [];
  await placeVersionPair(dest, text, signature, published, async (s) => void steps.push(s));
  return steps;
}

test('an empty DEST: SEQ 1; the signature goes up before VERSION', async () => {
  const dest = openDestination(tmpDir('shipkit-seq-'), silentLogger);
  const current = await readPublishedVersion(dest, publisher.cert);
  assert.equal(current, {});
  assert.is(nextSeq(current, undefined, dest.where), 1);
  const steps = await publish(dest, 1);
  assert.equal(
    steps.filter((s) => !s.endsWith(':temp')),
    ['VERSION.sig', 'VERSION'],
  );
});

test('a second VERSION: read back trusted, SEQ + 1, written in three steps that always verify', async () => {
  const dest = openDestination(tmpDir('shipkit-seq-'), silentLogger);
  await publish(dest, 1);
  const current = await readPublishedVersion(dest, publisher.cert);
  assert.is(current.published?.info.seq, 1);
  assert.is(nextSeq(current, undefined, dest.where), 2);
  const steps = await publish(dest, 2);
  assert.equal(
    steps.filter((s) => !s.endsWith(':temp')),
    ['VERSION.sig(both)', 'VERSION', 'VERSION.sig'],
  );
  const text = readFileSync(path.join(dest.where, 'VERSION'));
  assert.ok(await ownSignatureOver(publisher.cert, text, readFileSync(path.join(dest.where, 'VERSION.sig'))));
  assert.is((await readPublishedVersion(dest, publisher.cert)).published?.info.seq, 2);
});

test('a VERSION another key signed is not trusted: its SEQ needs --seq, which must be above a trusted one', async () => {
  const dest = openDestination(tmpDir('shipkit-seq-'), silentLogger);
  await publish(dest, 5, stranger);
  const current = await readPublishedVersion(dest, publisher.cert);
  assert.match(current.problem!, /not a signature of its VERSION by this release key/);
  assert.throws(
    () => nextSeq(current, undefined, dest.where),
    (e: unknown) => e instanceof ValidationError && /pass --seq N/.test(String(e)),
  );
  assert.is(nextSeq(current, 9, dest.where), 9);
  const trusted = {
    published: { info: { version: '1', file: 'f', seq: 7 }, text: Buffer.from(''), signature: new Uint8Array() },
  };
  assert.throws(() => nextSeq(trusted as never, 7, 'DEST'), /--seq 7 is not above SEQ 7/);
  const full = { published: { ...trusted.published, info: { ...trusted.published.info, seq: MAX_SEQ } } };
  assert.throws(() => nextSeq(full as never, undefined, 'DEST'), /the largest there can be/);
});

test('a VERSION without its .sig is not trusted', async () => {
  const dest = openDestination(tmpDir('shipkit-seq-'), silentLogger);
  const staged = path.join(tmpDir('shipkit-seq-'), 'VERSION');
  (await import('node:fs')).writeFileSync(staged, version(3));
  await dest.put(staged, 'VERSION');
  assert.match((await readPublishedVersion(dest, publisher.cert)).problem!, /a VERSION without VERSION\.sig/);
});

test.run();
