// The ledger's chain (lib/release/format/ledger.ts): lines written by ledgerLine read back; a removed,
// reordered, edited or malformed entry is refused with its number; a torn last line is left out;
// a shorter or rewritten chain than the one seen is refused; what counts as bad.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  GENESIS,
  LedgerError,
  badVersions,
  checkAgainstSeen,
  ledgerLine,
  readLedger,
  type NewEntry,
} from '../../../../lib/release/format/ledger.ts';

const entry = (version: string, action: NewEntry['action'] = 'publish', extra: Partial<NewEntry> = {}): NewEntry => ({
  at: '2026-11-25T00:00:00.000Z',
  by: 'ana@build1',
  action,
  app: 'my-app',
  version,
  seq: 1,
  rollout: null,
  sha256: 'a'.repeat(64),
  version_sha256: 'b'.repeat(64),
  manifest_sha256: null,
  provenance_sha256: null,
  signer: 'c'.repeat(40),
  source: { repo: 'octo/site', commit: null, ref: null },
  note: null,
  ...extra,
});

/** The lines of a ledger of `entries`, chained. */
function chain(entries: NewEntry[]): string[] {
  let text = '';
  const lines: string[] = [];
  for (const e of entries) {
    const line = ledgerLine(e, readLedger(Buffer.from(text)).head);
    lines.push(line.trimEnd());
    text += line;
  }
  return lines;
}
const bytes = (lines: string[]) => Buffer.from(`${lines.join('\n')}\n`);
const refusedAt = (lines: string[]) => {
  try {
    readLedger(bytes(lines));
  } catch (error) {
    assert.instance(error, LedgerError);
    return (error as LedgerError).entry;
  }
  return undefined;
};

test('lines written by ledgerLine read back in order, the first after 64 zeros', () => {
  const lines = chain([entry('1.0'), entry('1.1'), entry('1.2', 'rollback', { from: '1.3' })]);
  const ledger = readLedger(bytes(lines));
  assert.equal(
    ledger.entries.map((e) => [e.n, e.version]),
    [
      [1, '1.0'],
      [2, '1.1'],
      [3, '1.2'],
    ],
  );
  assert.is(ledger.entries[0].prev, GENESIS);
  assert.is(ledger.entries[2].from, '1.3');
  assert.is(ledger.head?.n, 3);
  assert.is(readLedger(Buffer.alloc(0)).head, undefined);
});

test('removed, reordered, edited and malformed entries are refused with their number', () => {
  const lines = chain([entry('1.0'), entry('1.1'), entry('1.2'), entry('1.3')]);
  assert.is(refusedAt([lines[0], lines[2], lines[3]]), 2);
  assert.is(refusedAt([lines[0], lines[2], lines[1], lines[3]]), 2);
  assert.is(refusedAt([lines[0], lines[1].replace('ana@build1', 'eve@elsewhere'), lines[2], lines[3]]), 3);
  assert.is(refusedAt([lines[0], lines[1], 'not json', lines[3]]), 3);
  const wrongAction = JSON.parse(lines[1]);
  wrongAction.action = 'delete';
  assert.is(refusedAt([lines[0], JSON.stringify(wrongAction)]), 2);
  const badVersion = JSON.parse(lines[0]);
  badVersion.version = '../1.0';
  assert.is(refusedAt([JSON.stringify(badVersion)]), 1);
});

test('a torn last line is left out and reported; the signature covers what is before it', () => {
  const lines = chain([entry('1.0'), entry('1.1')]);
  const torn = Buffer.concat([bytes([lines[0]]), Buffer.from(lines[1].slice(0, 40))]);
  const ledger = readLedger(torn);
  assert.is(ledger.torn, true);
  assert.is(ledger.entries.length, 1);
  assert.equal(ledger.text, bytes([lines[0]]));
});

test('a chain shorter than the one seen, or another line under a number seen, is refused', () => {
  const lines = chain([entry('1.0'), entry('1.1'), entry('1.2')]);
  const seen = readLedger(bytes(lines.slice(0, 2))).head!;
  checkAgainstSeen(readLedger(bytes(lines)), seen);
  checkAgainstSeen(readLedger(bytes(lines.slice(0, 2))), seen);
  assert.throws(() => checkAgainstSeen(readLedger(bytes(lines.slice(0, 1))), seen), /an older ledger was put back/);
  const fork = chain([entry('1.0'), entry('1.1', 'publish', { by: 'eve@elsewhere' }), entry('1.2')]);
  assert.throws(() => checkAgainstSeen(readLedger(bytes(fork)), seen), /ledger entry 2: .*history was rewritten/);
});

test('bad: halted or rolled back from, until published again', () => {
  const entries = readLedger(
    bytes(
      chain([
        entry('1.0'),
        entry('1.1'),
        entry('1.1', 'halt'),
        entry('1.2'),
        entry('1.1', 'rollback', { from: '1.2' }),
      ]),
    ),
  ).entries;
  assert.equal([...badVersions(entries)].sort(), ['1.1', '1.2']);
  assert.equal([...badVersions([...entries.slice(0, 3), { ...entries[1], n: 4 }])], []);
});

test.run();
