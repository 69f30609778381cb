// The join of a ledger with hosts' reports (lib/release/rollout/fleet-view.ts): hosts per release,
// digests verified or not, "held by all", 1.1 and 1.1.0 as one version, the moves after a
// publish, versions the ledger does not record, and a ledger that did not verify.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fleetViewBuilders, sha } from '../../../fixtures/fleet-view.ts';
import { fleetReleases } from '../../../../lib/release/rollout/fleet-view.ts';

const { entry, host, snapshot, reset } = fleetViewBuilders();

test('hosts per release: verified, another digest, not said, held by all; 1.1.0 counts as 1.1', () => {
  reset();
  const entries = [
    entry({ version: '1.0', sha256: sha('a') }),
    entry({ version: '1.1', sha256: sha('b') }),
    entry({ action: 'rollout', version: '1.1', rollout: 50 }),
    entry({ action: 'keys', version: null, note: 'rotate' }),
  ];
  const hosts = [
    host('1', '1.1', { sha256: sha('b'), previous: '1.0' }),
    host('2', '1.1.0', { sha256: sha('c'), previous: '1.0' }),
    host('3', '1.0', { sha256: '' }),
    host('4', '2.0', { previous: '1.0', result: 'failed' }),
  ];
  const view = fleetReleases('web', hosts, snapshot(entries));
  assert.is(view.hosts, 4);
  assert.equal(view.ledger, { from: '/srv/updates', entries: 4, primary: 'cd'.repeat(20), head: 4, error: null });
  const [v11, v10] = view.releases;
  assert.equal(
    [v11.version, v11.state, v11.hosts, v11.verified, v11.mismatched, v11.unknown, v11.held_by_all],
    ['1.1', 'current', 2, 1, 1, 0, false],
  );
  assert.equal(
    v11.moves.map((m) => [m.action, m.rollout]),
    [['rollout', 50]],
  );
  assert.equal(v11.rollout, 50);
  assert.equal(
    [v10.version, v10.state, v10.hosts, v10.unknown, v10.held_by_all],
    ['1.0', 'previous', 1, 1, true],
    'every host runs 1.0 or came from it',
  );
  assert.equal(view.unlisted, [
    { version: '2.0', hosts: 1, verified: 0, mismatched: 0, unknown: 1, results: { failed: 1 } },
  ]);
});

test('no ledger, or one that did not verify: no releases, every version unlisted, the error kept', () => {
  reset();
  const hosts = [host('1', '1.0'), host('2', '1.1')];
  const none = fleetReleases('web', hosts, undefined);
  assert.is(none.ledger, null);
  assert.equal(none.releases, []);
  assert.equal(
    none.unlisted.map((u) => u.version),
    ['1.1', '1.0'],
  );
  const broken = fleetReleases(
    'web',
    hosts,
    snapshot([entry({ version: '1.0' })], { error: 'ledger entry 1: edited' }),
  );
  assert.is(broken.ledger!.error, 'ledger entry 1: edited');
  assert.is(broken.ledger!.entries, 0, 'the entries of a ledger that did not verify are not used');
  assert.equal(broken.releases, []);
  assert.is(fleetReleases('web', [], snapshot([entry({})])).releases[0].held_by_all, false, 'no hosts: held by none');
});

test('held by all counts a version hosts only came from; pages of releases keep their counts', () => {
  reset();
  const entries = ['1.0', '1.1', '1.2'].map((version, i) => entry({ version, sha256: sha(String(i)) }));
  const hosts = [host('1', '1.2', { previous: '1.1' }), host('2', '1.1', { previous: '1.0' })];
  const all = fleetReleases('web', hosts, snapshot(entries));
  assert.equal(
    all.releases.map((r) => [r.version, r.hosts, r.held_by_all]),
    [
      ['1.2', 1, false],
      ['1.1', 1, true],
      ['1.0', 0, false],
    ],
  );
  const page = fleetReleases('web', hosts, snapshot(entries), { limit: 1, offset: 1 });
  assert.equal(
    [page.total, page.offset, page.releases.map((r) => [r.version, r.held_by_all])],
    [3, 1, [['1.1', true]]],
  );
  assert.equal(
    fleetReleases('web', hosts, snapshot(entries), { limit: 0 }).versions.map((v) => [
      v.version,
      v.hosts,
      v.held_by_all,
    ]),
    [
      ['1.2', 1, false],
      ['1.1', 1, true],
      ['1.0', 0, false],
    ],
  );
});

test('a rollback marks the version it left and moves the current one back', () => {
  reset();
  const entries = [
    entry({ version: '1.0', sha256: sha('a') }),
    entry({ version: '1.1', sha256: sha('b') }),
    entry({ action: 'rollback', version: '1.0', from: '1.1' }),
  ];
  const view = fleetReleases('web', [], snapshot(entries));
  assert.equal(
    view.releases.map((r) => [r.version, r.state]),
    [
      ['1.1', 'rolled back'],
      ['1.0', 'current'],
    ],
  );
  assert.equal(view.releases[1].moves, [
    {
      n: 3,
      at: '2026-11-25T10:00:00.000Z',
      by: 'ci@build',
      action: 'rollback',
      rollout: null,
      seq: 3,
      note: null,
      from: '1.1',
    },
  ]);
});

test.run();
