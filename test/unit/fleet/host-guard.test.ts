// @deno
// Each signed host report taken once (lib/fleet/host-guard.ts): the same second and nonce, or an
// older second, is a replay; a seen host only by its credential; the host's entry keeps the latest
// second's nonces whether or not the report replaced it; a credential report replaces an
// app-secret one whatever the SEQ.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_NONCES_PER_SECOND, reportRefusal, takeReport } from '../../../lib/fleet/host-guard.ts';
import type { HostEntry } from '../../../lib/release/format/fleet-report.ts';

const HOST = '0123456789abcdef0123456789abcdef';
const entry = (fields: Partial<HostEntry> = {}): HostEntry => ({
  host: HOST,
  version: '1.1',
  previous: '1.0',
  seq: 3,
  bucket: 10,
  claimed_bucket: 10,
  result: 'updated',
  reason: '',
  seconds: 1,
  at: 1000,
  signed_at: 100,
  nonces: ['n1'],
  enrolled: true,
  ...fields,
});

test('refusals: the same second and nonce, an older second, the app secret for a seen host, too many', () => {
  const current = entry();
  const cases: Array<[string, Partial<HostEntry>, HostEntry | undefined, string | undefined]> = [
    ['a new host, any key', { enrolled: false }, undefined, undefined],
    ['the same report again', {}, current, 'replay'],
    ['an older second', { signed_at: 99, nonces: ['n2'] }, current, 'replay'],
    ['the same second, another nonce', { nonces: ['n2'] }, current, undefined],
    ['a later second, the same nonce', { signed_at: 101 }, current, undefined],
    ["the app's secret for a seen host", { signed_at: 101, nonces: ['n2'], enrolled: false }, current, 'enrolled'],
    ['the same second as an entry that kept no nonces', { nonces: ['n2'] }, entry({ nonces: undefined }), 'replay'],
    ['an unsigned entry (not from a route) is not checked', { signed_at: undefined }, current, undefined],
  ];
  for (const [what, fields, kept, refusal] of cases) assert.is(reportRefusal(entry(fields), kept), refusal, what);
  const full = entry({ nonces: Array.from({ length: MAX_NONCES_PER_SECOND }, (_, i) => `n${i}x`) });
  assert.is(reportRefusal(entry({ nonces: ['fresh'] }), full), 'busy');
});

test('the entry after a report: replaced or not, it keeps the latest second and its nonces', () => {
  const current = entry({ seq: 5 });
  const older = takeReport(entry({ seq: 4, result: 'failed', nonces: ['n2'], at: 2000 }), current);
  assert.equal([older.seq, older.result, older.signed_at, older.nonces], [5, 'updated', 100, ['n1', 'n2']]);
  const later = takeReport(entry({ seq: 6, signed_at: 105, nonces: ['n3'] }), older);
  assert.equal([later.seq, later.signed_at, later.nonces], [6, 105, ['n3']], 'a later second starts its own list');
  const unsigned = takeReport(entry({ seq: 7, signed_at: undefined, nonces: undefined }), later);
  assert.equal([unsigned.seq, unsigned.signed_at, unsigned.nonces], [7, 105, ['n3']]);
});

test("a host's credential report replaces an app-secret one whatever the SEQ, never the reverse", () => {
  const forged = entry({ seq: 2 ** 53 - 1, enrolled: false });
  const own = takeReport(entry({ seq: 4, signed_at: 101, nonces: ['n2'] }), forged);
  assert.equal([own.seq, own.enrolled], [4, true]);
  const back = takeReport(entry({ seq: 2 ** 53 - 1, enrolled: false, signed_at: 102, nonces: ['n3'] }), own);
  assert.equal([back.seq, back.enrolled, back.signed_at], [4, true, 102]);
});

test.run();

test('the entry kept carries every field of the report it keeps, and nothing it did not have', () => {
  // Required<>: a field added to HostEntry fails to compile here until this test (and takeReport's
  // copy, which lists the fields) knows it.
  const full: Required<HostEntry> = {
    ...entry(),
    sha256: 'ab'.repeat(32),
    way: 'patch',
    bytes: 1234,
    signed_at: 101,
    nonces: ['n9'],
    enrolled: true,
  };
  assert.equal(takeReport(full, entry()), full);
  assert.equal(Object.keys(takeReport(full, undefined)).sort(), Object.keys(full).sort());
  const bare = entry({ signed_at: undefined, nonces: undefined, enrolled: undefined });
  for (const key of ['signed_at', 'nonces', 'enrolled', 'sha256', 'way', 'bytes'])
    assert.not.ok(key in takeReport(bare, undefined), `${key} left out when the report has none`);
});
