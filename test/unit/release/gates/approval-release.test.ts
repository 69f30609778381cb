// @deno
// The release an approval is for, read from the source's signed ledger: its sha256 and publishers
// (the signing key and its primary), the source's spelling of the version, a version never there
// refused; and the release waiting at the source until the target runs it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError, messageOf } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import { publishersOf, recordAtSource, waitingRelease } from '../../../../lib/release/gates/approval-release.ts';
import type { LedgerEntry } from '../../../../lib/release/format/ledger.ts';
import { publishRelease } from '../../../../lib/release/publish/publish.ts';
import { promoteRelease } from '../../../../lib/release/publish/promote.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { ledgerActor } from '../../../../lib/release/dest/ledger.ts';

const openpgp = await import('openpgp');
/** Who the test's publishes are written by (`NAME@HOST`): that account is their publisher. */
const account = ledgerActor().split('@')[0];

let base: string;
let key: string;
let primary: string;
let certificate: string;
test.before(async () => {
  base = tmpDir();
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'Release', email: 'release@example.com' }],
    format: 'armored',
  });
  key = path.join(base, 'release.asc');
  writeFileSync(key, privateKey);
  certificate = publicKey;
  primary = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint();
});

let n = 0;
function world() {
  const root = path.join(base, `w${++n}`);
  const [staging, production] = [path.join(root, 'staging'), path.join(root, 'production')];
  mkdirSync(staging, { recursive: true });
  mkdirSync(production);
  const trust = { state: path.join(root, 'state'), app: 'my-app' };
  const publish = async (version: string) => {
    const dir = path.join(root, `src-${version}`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'version.txt'), version);
    await publishRelease({ dir, name: 'my-app', platform: 'gnu-linux', version, key, to: staging, log: silentLogger });
    return createHash('sha256')
      .update(readFileSync(path.join(staging, `my-app-gnu-linux-${version}.tar.gz`)))
      .digest('hex');
  };
  const [source, target] = [openDestination(staging, silentLogger), openDestination(production, silentLogger)];
  const names = { sourceName: 'staging', targetName: 'production' };
  return { staging, production, trust, publish, source, target, names };
}

test("the record is the ledger's: sha256, the source's spelling, the publisher and its primary", async () => {
  const w = world();
  const sha256 = await w.publish('1.3');
  const record = await recordAtSource(w.source, { ...w.trust, version: '1.3.0' });
  assert.equal(record, {
    app: 'my-app',
    version: '1.3',
    sha256,
    publishers: [primary],
    publisherUsers: [account],
    from: w.staging,
  });
  try {
    await recordAtSource(w.source, { ...w.trust, version: '9.9', sourceName: 'staging' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match(messageOf(error), /my-app 9\.9 was never published or promoted at staging .*nothing to approve/);
  }
});

test("the release waiting: the source's current until the target runs it", async () => {
  const w = world();
  assert.equal(await waitingRelease(w.source, w.target, { ...w.trust, ...w.names }), {
    nothing: 'nothing published at staging',
  });
  const sha13 = await w.publish('1.3');
  const waiting = await waitingRelease(w.source, w.target, { ...w.trust, ...w.names });
  assert.equal(waiting, {
    release: {
      app: 'my-app',
      version: '1.3',
      sha256: sha13,
      publishers: [primary],
      publisherUsers: [account],
      from: w.staging,
    },
  });
  await promoteRelease({ app: 'my-app', version: '1.3', from: w.staging, to: w.production, key, log: silentLogger });
  assert.equal(await waitingRelease(w.source, w.target, { ...w.trust, ...w.names }), {
    nothing: "production runs staging's current 1.3 already",
  });
  const sha14 = await w.publish('1.4');
  const next = await waitingRelease(w.source, w.target, { ...w.trust, ...w.names });
  assert.equal('release' in next && [next.release.version, next.release.sha256], ['1.4', sha14]);
});

test("the publishers of a version: the signers of its publish and promote entries, not of others'", async () => {
  const entry = (action: LedgerEntry['action'], version: string, signer: string) =>
    ({ action, app: 'web', version, rollout: null, signer }) as LedgerEntry;
  const entries = [
    entry('publish', '1.4', 'AA'),
    entry('rollout', '1.4', 'BB'),
    entry('promote', '1.4.0', 'CC'),
    entry('publish', '1.5', 'DD'),
  ];
  assert.equal(await publishersOf(entries, certificate, 'web', '1.4'), ['aa', 'cc']);
});

test.run();
