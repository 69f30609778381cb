// The audit trail's chain: lines numbered on, each naming the sha256 of the one before; an
// edited, removed or reordered line named by its number; a cut vouched for by a retention entry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AuditChainError,
  auditLine,
  chainLines,
  clip,
  entryOfLine,
  GENESIS,
  sha256Hex,
  verifyAuditChain,
  type NewAuditEntry,
} from '../../../lib/audit/chain.ts';

const entry = (i: number, fields: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  at: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
  action: 'login',
  actor: `session s${i}`,
  from: '127.0.0.1',
  subject: null,
  detail: null,
  ...fields,
});

const trail = (count: number) =>
  chainLines(
    Array.from({ length: count }, (_, i) => entry(i + 1)),
    undefined,
  ).lines;
const bytes = (lines: string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''));

function brokenAt(lines: string[]): number {
  try {
    verifyAuditChain(bytes(lines));
  } catch (error) {
    assert.instance(error, AuditChainError);
    return (error as AuditChainError).entry;
  }
  return 0;
}

test('lines are numbered from 1, the first after 64 zeros, each after the sha256 of the one before', () => {
  const lines = trail(3);
  const parsed = lines.map((l) => JSON.parse(l));
  assert.equal(
    parsed.map((e) => e.n),
    [1, 2, 3],
  );
  assert.is(parsed[0].prev, GENESIS);
  assert.is(parsed[2].prev, sha256Hex(lines[1]));
  assert.equal(Object.keys(parsed[0]), ['n', 'prev', 'at', 'action', 'actor', 'from', 'subject', 'detail']);
  const { entries, head, torn } = verifyAuditChain(bytes(lines));
  assert.is(entries.length, 3);
  assert.equal(head, { n: 3, hash: sha256Hex(lines[2]) });
  assert.is(torn, false);
});

test('an edited, removed, reordered or garbled line is named by its number', () => {
  const lines = trail(5);
  assert.is(brokenAt(lines.map((l, i) => (i === 2 ? l.replace('s3', 'sX') : l))), 4, 'edited 3: 4 no longer follows');
  assert.is(brokenAt(lines.filter((_, i) => i !== 1)), 2, 'removed 2');
  assert.is(brokenAt([lines[0], lines[2], lines[1], lines[3]]), 2, 'reordered');
  assert.is(brokenAt([lines[0], 'not json', lines[2]]), 2);
  assert.is(brokenAt([lines[0], JSON.stringify({ ...JSON.parse(lines[1]), action: 'rm -rf' })]), 2);
  assert.is(brokenAt(lines.slice(2)), 3, 'the front cut without a retention entry');
  assert.is(brokenAt(lines), 0);
});

test('a cut front verifies when a retention entry records its last number and hash; not with another hash', () => {
  const lines = trail(4);
  const retention = (hash: string) =>
    chainLines(
      [entry(9, { action: 'retention', actor: 'hook-server', detail: { cut: 2, through: 2, last_cut_sha256: hash } })],
      { n: 4, hash: sha256Hex(lines[3]) },
    ).lines[0];
  const kept = [...lines.slice(2), retention(sha256Hex(lines[1]))];
  const { entries, head } = verifyAuditChain(bytes(kept));
  assert.equal(
    entries.map((e) => e.n),
    [3, 4, 5],
  );
  assert.is(head?.n, 5);
  assert.is(brokenAt([...lines.slice(2), retention(sha256Hex(lines[0]))]), 3);
});

test('a torn last line is left out and reported; an empty trail has no head', () => {
  const lines = trail(2);
  const { entries, torn } = verifyAuditChain(Buffer.concat([bytes(lines), Buffer.from('{"n":3,')]));
  assert.is(entries.length, 2);
  assert.ok(torn);
  assert.equal(verifyAuditChain(Buffer.alloc(0)), { entries: [], head: undefined, torn: false });
});

test('hostile text is stored as JSON (escaped, one line) and clipped; entryOfLine reads what parses', () => {
  const name = 'octo/../x\n\u001b[31mred\u202e';
  const line = auditLine(entry(1, { subject: name, detail: { user: 'u'.repeat(5000) } }), undefined);
  assert.not.match(line, '\n');
  assert.not.match(line, '\u001b');
  const parsed = entryOfLine(Buffer.from(line))!;
  assert.is(parsed.subject, name);
  assert.is((parsed.detail!.user as string).length, 512);
  assert.is(clip('abc', 2), 'a…');
  assert.is(entryOfLine(Buffer.from('{"n":1')), undefined);
});

test.run();
