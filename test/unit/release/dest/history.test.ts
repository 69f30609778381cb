// `release history` and `release rollback --list` (lib/release/dest/history.ts) on real ledger
// entries (lib/release/format/ledger.ts): each release's state from publishes, rollouts, halts and
// rollbacks; which a rollback may go to; the hosts joined by version; and the text a terminal
// gets, its columns lined up and every text from the ledger shown escaped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  counted,
  formatHistory,
  formatPaths,
  hostsText,
  releasesOf,
  rollbackChoices,
  withHosts,
  type History,
} from '../../../../lib/release/dest/history.ts';
import { ledgerLine, readLedger, type LedgerEntry, type NewEntry } from '../../../../lib/release/format/ledger.ts';

const SIGNER = 'c'.repeat(40);
const REVOKED = 'd'.repeat(40);

const entry = (action: NewEntry['action'], version: string | null, extra: Partial<NewEntry> = {}): NewEntry => ({
  at: '2026-11-25T10:20:30.000Z',
  by: 'ana@build1',
  action,
  app: 'site',
  version,
  seq: 1,
  rollout: null,
  sha256: 'a'.repeat(64),
  version_sha256: 'b'.repeat(64),
  manifest_sha256: null,
  provenance_sha256: null,
  signer: SIGNER,
  source: { repo: 'octo/site', commit: '0123456789abcdef0123', ref: 'refs/tags/v1' },
  note: null,
  ...extra,
});

/** The entries a ledger of `list` reads back as, chained by ledgerLine. */
function ledgerOf(list: NewEntry[]): LedgerEntry[] {
  let text = '';
  for (const e of list) text += ledgerLine(e, readLedger(Buffer.from(text)).head);
  return readLedger(Buffer.from(text)).entries;
}

const story = [
  entry('publish', '1.0', {
    by: 'eve\u001b[2J\u202e@evil',
    source: { repo: 'octo/site\nFAKE', commit: null, ref: null },
  }),
  entry('publish', '1.1', { rollout: 10, seq: 2 }),
  entry('rollout', '1.1', { rollout: 50, seq: 3 }),
  entry('halt', '1.1', { rollout: 50, seq: 4 }),
  entry('publish', '1.2', { seq: 5, signer: REVOKED }),
  entry('publish', '1.3', { seq: 6 }),
  entry('rollback', '1.2', { from: '1.3', seq: 7 }),
  entry('publish', '9.0', { app: 'other' }),
  entry('keys', null, { note: 'rotated the signing subkey', at: '2026-11-26T08:00:00.000Z' }),
];

const brief = (rows: ReturnType<typeof releasesOf>) =>
  rows.map((r) => [r.version, r.n, r.state, r.rollout, r.current, r.bad, r.revoked]);

test('releasesOf: newest publish first, each with its state; the current one by version key; revoked signers', () => {
  const rows = releasesOf(ledgerOf(story), 'site', { current: '1.2.0', revoked: new Set([REVOKED]) });
  assert.equal(brief(rows), [
    ['1.3', 6, 'rolled back', null, false, true, false],
    ['1.2', 5, 'current', null, true, false, true],
    ['1.1', 2, 'halted', 50, false, true, false],
    ['1.0', 1, 'previous', null, false, false, false],
  ]);
  assert.equal(rows[2].source, { repo: 'octo/site', commit: '0123456789abcdef0123', ref: 'refs/tags/v1' });
  assert.is(rows[2].seq, 2);
  // Without a current VERSION nothing is current; another app has its own rows.
  assert.equal(
    releasesOf(ledgerOf(story), 'site').map((r) => r.state),
    ['rolled back', 'previous', 'halted', 'previous'],
  );
  assert.equal(brief(releasesOf(ledgerOf(story), 'other')), [['9.0', 8, 'previous', null, false, false, false]]);
  assert.equal(releasesOf(ledgerOf(story), 'nobody'), []);
});

test('a release published again moves to the top with its new entry, and is no longer bad', () => {
  const rows = releasesOf(ledgerOf([...story, entry('publish', '1.1', { rollout: 25, seq: 8 })]), 'site');
  assert.equal(brief(rows), [
    ['1.1', 10, 'previous', 25, false, false, false],
    ['1.3', 6, 'rolled back', null, false, true, false],
    ['1.2', 5, 'previous', null, false, false, false],
    ['1.0', 1, 'previous', null, false, false, false],
  ]);
});

const historyOf = (list: NewEntry[], current?: string, revoked = new Set<string>()): History => ({
  app: 'site',
  from: '/srv/updates',
  primary: 'f'.repeat(40),
  entries: list.length,
  releases: releasesOf(ledgerOf(list), 'site', { current, revoked }),
  keys: [{ n: 9, at: '2026-11-26T08:00:00.000Z', by: 'ana@build1', note: 'rotated\u001b[31m' }],
});

test('rollbackChoices: not the current release, not a bad one, not one signed by a revoked subkey', () => {
  assert.equal(
    rollbackChoices(historyOf(story, '1.0', new Set([REVOKED]))).map((r) => r.version),
    [],
  );
  assert.equal(
    rollbackChoices(historyOf(story, '1.0')).map((r) => r.version),
    ['1.2'],
  );
  assert.equal(
    rollbackChoices(historyOf(story, '1.2')).map((r) => r.version),
    ['1.0'],
  );
});

test('withHosts: hosts of 1.2 and 1.2.0 counted together; held by all when any of them says so', () => {
  const history = withHosts(historyOf(story, '1.2'), {
    hosts: 30,
    versions: [
      { version: '1.2', hosts: 10, verified: 9, mismatched: 1, held_by_all: false },
      { version: '1.2.0', hosts: 5, verified: 5, mismatched: 0, held_by_all: true },
      { version: '1.0', hosts: 15, verified: 15, mismatched: 0, held_by_all: false },
    ],
  });
  assert.is(history.hosts, 30);
  assert.equal(
    history.releases.map((r) => [r.version, r.fleet]),
    [
      ['1.3', { hosts: 0, verified: 0, mismatched: 0, held_by_all: false }],
      ['1.2', { hosts: 15, verified: 14, mismatched: 1, held_by_all: true }],
      ['1.1', { hosts: 0, verified: 0, mismatched: 0, held_by_all: false }],
      ['1.0', { hosts: 15, verified: 15, mismatched: 0, held_by_all: false }],
    ],
  );
});

test('hostsText and counted: one host or many, the mismatches loud, padded to line up', () => {
  const one = hostsText({ hosts: 1, verified: 0, mismatched: 1, held_by_all: true });
  const many = hostsText({ hosts: 12, verified: 12, mismatched: 0, held_by_all: false });
  assert.is(one.trimEnd(), '     1 host (0 verified, 1 ANOTHER DIGEST, held by all)');
  assert.is(many, `${'   12 hosts (12 verified)'.padEnd(42)}`);
  assert.is(many.length, 42);
  assert.is(counted(1, 'release'), '1 release');
  assert.is(counted(0, 'release'), '0 releases');
  assert.is(counted(2, 'ledger entry', 'ledger entries'), '2 ledger entries');
});

test('formatHistory: a line a release, columns as wide as their longest text, ledger text shown escaped', () => {
  const list = [...story.slice(0, 4), entry('publish', '1.10.2', { seq: 9, rollout: 5 })];
  const text = formatHistory(historyOf(list, '1.1', new Set()));
  assert.is(
    text,
    [
      'site at /srv/updates: 3 releases, 5 ledger entries (signed by ffffffffffffffffffffffffffffffffffffffff)',
      '  1.10.2  previous, ROLLOUT 5  2026-11-25 10:20:30  ana@build1  octo/site refs/tags/v1 0123456789ab',
      '  1.1     current, ROLLOUT 50  2026-11-25 10:20:30  ana@build1  octo/site refs/tags/v1 0123456789ab',
      '  1.0     previous             2026-11-25 10:20:30  eve\\u001b[2J\\u202e@evil  octo/site\\u000aFAKE',
      '  key change (entry 9) 2026-11-26 08:00:00  ana@build1: rotated\\u001b[31m',
      '',
    ].join('\n'),
  );
  assert.not.match(text, /[\u0000-\u0009\u000b-\u001f\u202a-\u202e\u2066-\u2069]/);
  const withFleet = formatHistory(
    withHosts(historyOf(list, '1.1'), {
      hosts: 1,
      versions: [{ version: '1.1', hosts: 1, verified: 1, mismatched: 0, held_by_all: false }],
    }),
  );
  assert.match(withFleet, /5 ledger entries \(signed by f+\); 1 host reports\n/);
  assert.match(withFleet, /\n {2}1\.1 {5}current, ROLLOUT 50 {7}1 host \(1 verified\) {20}2026-11-25/);
});

test('formatPaths: each environment its current release, each version its way through them in order', () => {
  const staging = historyOf([entry('publish', '1.3', { seq: 1 }), entry('publish', '1.4', { seq: 2 })], '1.4');
  const production = historyOf(
    [entry('publish', '1.3', { seq: 1 }), entry('promote', '1.4', { seq: 2, rollout: 10, from_env: 'staging' })],
    '1.4',
  );
  assert.is(
    formatPaths('site', [
      { env: 'staging', history: { ...staging, from: '/srv/staging' } },
      { env: 'production', history: { ...production, from: '/srv/production' } },
    ]),
    [
      'site across 2 environments:',
      '  staging     1.4 (current)  /srv/staging',
      '  production  1.4 (current, ROLLOUT 10)  /srv/production',
      '  1.4: staging: published 2026-11-25 10:20, current → production: promoted from staging 2026-11-25 10:20, current, ROLLOUT 10',
      '  1.3: staging: published 2026-11-25 10:20, previous → production: published 2026-11-25 10:20, previous',
      '',
    ].join('\n'),
  );
});

test.run();
