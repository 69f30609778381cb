// `since` and `limit` of GET /audit and `shipkit audit`: an entry number or a time, bounded limits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import { auditQueryOf, parseLimit, parseSince, selectEntries } from '../../../lib/audit/query.ts';
import type { AuditEntry } from '../../../lib/audit/chain.ts';

test('since: an entry number, a date or a time; anything else refused', () => {
  assert.equal(parseSince('12'), { after: 12 });
  assert.equal(parseSince('2026-05-01'), { from: '2026-05-01T00:00:00.000Z' });
  assert.equal(parseSince('2026-05-01T12:00:00+02:00'), { from: '2026-05-01T10:00:00.000Z' });
  for (const bad of ['yesterday', '-1', '2026-13-45', "1' OR 1=1", '', 'UTC', '2026-05-01 12:00 CET'])
    assert.throws(
      () => parseSince(bad),
      (e: unknown) => e instanceof ValidationError,
    );
});

test('since: a time as the Audit page shows it (2026-05-01 12:00:00 UTC), pasted back into its Since box', () => {
  assert.equal(parseSince('2026-05-01 12:00:00 UTC'), { from: '2026-05-01T12:00:00.000Z' });
  assert.equal(parseSince(' 2026-05-01 12:00 UTC '), { from: '2026-05-01T12:00:00.000Z' });
  assert.equal(parseSince('2026-05-01 UTC'), { from: '2026-05-01T00:00:00.000Z' });
  assert.equal(parseSince('2026-05-01T12:00:00.250UTC'), { from: '2026-05-01T12:00:00.250Z' });
  assert.throws(
    () => parseSince('2026-05-01 25:00:00 UTC'),
    (e: unknown) => e instanceof ValidationError && /2026-05-01 12:00:00 UTC/.test(e.message),
  );
});

test('limit: 1 to 10000, default 100', () => {
  assert.is(parseLimit(null), 100);
  assert.is(parseLimit('5'), 5);
  for (const bad of ['0', '10001', 'x', '1e3'])
    assert.throws(
      () => parseLimit(bad),
      (e: unknown) => e instanceof ValidationError,
    );
  assert.equal(auditQueryOf(new URLSearchParams('since=3&limit=2')), { since: { after: 3 }, limit: 2 });
});

test('the first `limit` after since, or the newest `limit`', () => {
  const rows = [1, 2, 3, 4, 5].map((n) => ({
    entry: { n, at: new Date(Date.UTC(2026, 0, n)).toISOString() } as AuditEntry,
  }));
  const ns = (r: typeof rows) => r.map((x) => x.entry.n);
  assert.equal(ns(selectEntries(rows, { limit: 2 })), [4, 5]);
  assert.equal(ns(selectEntries(rows, { since: { after: 1 }, limit: 2 })), [2, 3]);
  assert.equal(ns(selectEntries(rows, { since: { from: '2026-01-04T00:00:00.000Z' }, limit: 10 })), [4, 5]);
});

test.run();
