// What the publisher's side remembers of a DEST (lib/release/dest/seen.ts): where the state folder
// is, a record written and read back, a longer ledger moving the head, a shorter or forked one
// refused with what was seen and what DEST holds, and a damaged record named.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ledgerLine, readLedger, type NewEntry } from '../../../../lib/release/format/ledger.ts';
import {
  checkSeenLedger,
  readSeen,
  rememberSeen,
  seenFile,
  stateFolder,
  withLedgerRead,
} from '../../../../lib/release/dest/seen.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const entry = (version: string): NewEntry => ({
  at: '2026-11-27T00:00:00.000Z',
  by: 'ana@build1',
  action: 'publish',
  app: 'my-app',
  version,
  seq: 1,
  rollout: null,
  sha256: null,
  version_sha256: null,
  manifest_sha256: null,
  provenance_sha256: null,
  signer: 'a'.repeat(40),
  source: { repo: null, commit: null, ref: null },
  note: null,
});

function ledgerOf(versions: string[]) {
  let text = '';
  for (const v of versions) text += ledgerLine(entry(v), readLedger(Buffer.from(text)).head);
  return readLedger(Buffer.from(text));
}

test('stateFolder: --state, else $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit', () => {
  assert.is(stateFolder('/s', { XDG_CONFIG_HOME: '/x' }, '/home/ana'), '/s');
  assert.is(stateFolder(undefined, { XDG_CONFIG_HOME: '/x' }, '/home/ana'), '/x/shipkit');
  assert.is(stateFolder(undefined, { XDG_CONFIG_HOME: 'relative' }, '/home/ana'), '/home/ana/.config/shipkit');
  assert.is(stateFolder(undefined, {}, '/home/ana'), '/home/ana/.config/shipkit');
});

test('remembered, moved on by a longer ledger, and a shorter or forked one refused', async () => {
  const state = tmpDir();
  const now = new Date('2026-11-27T10:00:00Z');
  assert.is(await readSeen(state, '/srv/updates'), undefined);
  const two = ledgerOf(['1.0', '1.1']);
  await rememberSeen(state, withLedgerRead(undefined, '/srv/updates', 'my-app', 'f'.repeat(40), two, now));
  const seen = await readSeen(state, '/srv/updates');
  assert.equal(seen?.heads['my-app'], { ...two.head!, at: now.toISOString() });
  checkSeenLedger(two, seen, 'FILE');
  checkSeenLedger(ledgerOf(['1.0', '1.1', '1.2']), seen, 'FILE');
  assert.throws(
    () => checkSeenLedger(ledgerOf(['1.0']), seen, 'FILE'),
    /ends at entry 1, but entry 2 was seen before.*Read before \(for my-app, .*\): 2 entries.*DEST holds now: 1 entry,.*remove FILE/,
  );
  assert.throws(
    () => checkSeenLedger(ledgerOf(['1.0', '1.9']), seen, 'FILE'),
    /ledger entry 2: differs from the entry seen before/,
  );
  // An app the ledger does not name (a typo) gets no head.
  assert.equal(Object.keys(withLedgerRead(seen, '/srv/updates', 'my-ap', 'f'.repeat(40), two, now).heads), ['my-app']);
  // A shorter read never moves the head back.
  assert.equal(
    withLedgerRead(seen, '/srv/updates', 'my-app', 'f'.repeat(40), ledgerOf(['1.0']), now).heads['my-app'].n,
    2,
  );
});

test('a damaged record is named, with what to do', async () => {
  const state = tmpDir();
  const file = seenFile(state, '/srv/updates');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, '{not json');
  const error = await readSeen(state, '/srv/updates').catch((e) => e);
  assert.match(
    error.message,
    /is not what shipkit remembers of \/srv\/updates; restore it from a backup, or remove it/,
  );
});

test.run();
