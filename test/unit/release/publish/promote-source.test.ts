// release promote's source side: which tarball is meant, the signed record of its bytes, and the
// "good in the source" rule, table by table over ledger entries.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LedgerEntry } from '../../../../lib/release/format/ledger.ts';
import { sourceRelease, tarballsOf, type SourceFacts } from '../../../../lib/release/publish/promote-source.ts';

const SHA = 'a'.repeat(64);
let n = 0;
const entry = (action: LedgerEntry['action'], version: string, more: Partial<LedgerEntry> = {}): LedgerEntry => ({
  n: ++n,
  prev: '0'.repeat(64),
  at: '2024-01-01T00:00:00.000Z',
  by: 'me@host',
  action,
  app: 'my-app',
  version,
  seq: action === 'promoted' ? null : n,
  rollout: null,
  sha256: SHA,
  version_sha256: action === 'promoted' || action === 'halt' ? null : SHA,
  manifest_sha256: null,
  provenance_sha256: null,
  signer: 'b'.repeat(40),
  source: { repo: null, commit: null, ref: null },
  note: null,
  ...more,
});
const facts = (more: Partial<SourceFacts>): SourceFacts => ({
  app: 'my-app',
  version: '1.1',
  where: '/srv/staging',
  entries: [],
  names: ['my-app-linux-1.0.tar.gz', 'my-app-linux-1.1.tar.gz', 'my-app-linux-1.1.tar.gz.sig'],
  ...more,
});

test('tarballsOf: the platforms holding a version, 1.1 and 1.1.0 as one', () => {
  const names = [
    'my-app-linux-1.1.0.tar.gz',
    'my-app-arm-1.1.tar.gz',
    'my-app-linux-1.2.tar.gz',
    'other-linux-1.1.tar.gz',
  ];
  assert.equal(
    [...tarballsOf(names, 'my-app', '1.1')],
    [
      ['linux', 'my-app-linux-1.1.0.tar.gz'],
      ['arm', 'my-app-arm-1.1.tar.gz'],
    ],
  );
});

test('a published release that was current is good; its record and manifest come from the ledger', () => {
  const r = sourceRelease(
    facts({ entries: [entry('publish', '1.0'), entry('publish', '1.1', { manifest_sha256: SHA })] }),
  );
  assert.is(r.file, 'my-app-linux-1.1.tar.gz');
  assert.is(r.sha256, SHA);
  assert.equal(r.manifest, { file: 'my-app-linux-1.1.manifest', sha256: SHA });
  assert.is(r.notGood, undefined);
});

test('the "not good" rule: rolled back, halted, never current; published again clears it', () => {
  const cases: Array<[LedgerEntry[], RegExp | undefined]> = [
    [[entry('publish', '1.0'), entry('publish', '1.1'), entry('rollback', '1.0', { from: '1.1' })], /was rolled back/],
    [[entry('publish', '1.1'), entry('halt', '1.1')], /was halted at \/srv\/staging \(ledger entry \d+\)/],
    [[entry('publish', '1.1', { version_sha256: null })], /not and never was the current release/],
    [[entry('publish', '1.1'), entry('halt', '1.1'), entry('publish', '1.1')], undefined],
    [[entry('promote', '1.1'), entry('promoted', '1.1')], undefined],
  ];
  for (const [entries, want] of cases) {
    const { notGood } = sourceRelease(facts({ entries }));
    if (want) assert.match(notGood ?? '', want);
    else assert.is(notGood, undefined);
  }
});

test('refusals: never published, another app, no signed record, several platforms', () => {
  assert.throws(() => sourceRelease(facts({ version: '9.9' })), /never published at \/srv\/staging/);
  assert.throws(
    () => sourceRelease(facts({ app: 'other', entries: [entry('publish', '1.1')] })),
    /is a release of my-app, not of other/,
  );
  assert.throws(() => sourceRelease(facts({ entries: [] })), /no signed record of its sha256/);
  assert.throws(
    () => sourceRelease(facts({ names: ['my-app-linux-1.1.tar.gz', 'my-app-arm-1.1.tar.gz'] })),
    /several platforms \(linux, arm\); say which with --platform/,
  );
});

test('without a ledger the source VERSION is the record, and it is good as the current release', () => {
  const current = { version: '1.1', file: 'my-app-linux-1.1.tar.gz', sha256: SHA, app: 'my-app', platform: 'linux' };
  const r = sourceRelease(facts({ current }));
  assert.equal([r.sha256, r.notGood, r.platform], [SHA, undefined, 'linux']);
});

test.run();
