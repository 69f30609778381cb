// A retention cut: the old entries at the front (up to the first newer one), and the entry that records it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cutOf, retentionEntry } from '../../../lib/audit/store.ts';
import type { AuditEntry } from '../../../lib/audit/chain.ts';

const e = (n: number, day: number) => ({ n, at: new Date(Date.UTC(2026, 0, day)).toISOString() }) as AuditEntry;

test('the front older than the cut-off, stopping at the first newer entry', () => {
  const entries = [e(4, 1), e(5, 2), e(6, 9), e(7, 3)];
  assert.equal(cutOf(entries, new Date(Date.UTC(2026, 0, 5))), {
    count: 2,
    through: 5,
    firstAt: entries[0].at,
    lastAt: entries[1].at,
  });
  assert.is(cutOf(entries, new Date(Date.UTC(2025, 0, 1))), undefined);
  assert.is(cutOf([], new Date()), undefined);
});

test('the retention entry says how many, through which number and the last cut hash', () => {
  const cut = { count: 2, through: 5, firstAt: 'a', lastAt: 'b' };
  const entry = retentionEntry(cut, 'f'.repeat(64), 30, new Date(Date.UTC(2026, 1, 1)));
  assert.is(entry.action, 'retention');
  assert.equal(entry.detail, {
    cut: 2,
    through: 5,
    last_cut_sha256: 'f'.repeat(64),
    first_cut_at: 'a',
    last_cut_at: 'b',
    keep_days: 30,
  });
});

test.run();
