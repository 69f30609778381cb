// @deno
// The fleet registry's memory (lib/fleet/fleet-memory.ts), which the file-backed and the
// PostgreSQL-backed registries both write through: a host keeps its latest report, the tally
// counts hosts per version and result, admit refuses an older report and a new host past
// max_hosts (counting those being written), known() picks what a forget would take.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FleetMemory } from '../../../lib/fleet/fleet-memory.ts';
import type { HostEntry } from '../../../lib/release/format/fleet-report.ts';

const entry = (host: string, fields: Partial<HostEntry> = {}): HostEntry => ({
  host,
  version: '1.1',
  previous: '1.0',
  seq: 3,
  bucket: 10,
  claimed_bucket: 10,
  result: 'updated',
  reason: '',
  seconds: 1,
  at: 1_000,
  ...fields,
});

test('the latest report per host; hosts in order; the tally per version and result', () => {
  const m = new FleetMemory();
  m.applyReport('web', entry('b'));
  m.applyReport('web', entry('a', { version: '1.0', result: 'failed' }));
  m.applyReport('web', entry('b', { seq: 2, version: 'old' }));
  m.applyReport('web', entry('a', { seq: 4 }));
  assert.equal(
    m.hosts('web').map((h) => `${h.host}:${h.seq}`),
    ['a:4', 'b:3'],
  );
  const unsorted = m.hosts('web', { sorted: false }).map((h) => `${h.host}:${h.seq}`);
  assert.equal(unsorted.sort(), ['a:4', 'b:3'], 'the same entries unsorted, for counting');
  assert.equal(m.tally('web'), [{ version: '1.1', result: 'updated', hosts: 2 }]);
  m.clear();
  assert.is(m.count('web'), 0);
  assert.equal([m.tally('web'), m.failures('web'), m.liars('web')], [[], [], 0], 'the summary goes with them');
});

test('the summary kept as reports come and hosts go equals a pass over the hosts, after 5,000 random steps', () => {
  const m = new FleetMemory();
  let seed = 58;
  const random = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31), seed % n);
  const results = ['updated', 'failed', 'rolled_back', 'skipped', 'running'] as const;
  const byPass = (app: string) => {
    const hosts = m.hosts(app, { sorted: false });
    const tally = new Map<string, number>();
    for (const h of hosts) tally.set(`${h.version} ${h.result}`, (tally.get(`${h.version} ${h.result}`) ?? 0) + 1);
    return {
      tally: [...tally].sort(),
      failures: hosts
        .filter((h) => ['failed', 'rolled_back', 'skipped'].includes(h.result))
        .map((h) => h.host)
        .sort(),
      liars: hosts.filter((h) => h.claimed_bucket !== null && h.claimed_bucket !== h.bucket).length,
    };
  };
  const kept = (app: string) => ({
    tally: m
      .tally(app)
      .map((r) => [`${r.version} ${r.result}`, r.hosts])
      .sort(),
    failures: m
      .failures(app)
      .map((h) => h.host)
      .sort(),
    liars: m.liars(app),
  });
  for (let step = 0; step < 5_000; step++) {
    const app = ['web', 'api'][random(2)];
    const host = `h${random(60)}`;
    if (random(10) === 0) m.applyForget(app, [host, `h${random(60)}`]);
    else
      m.applyReport(
        app,
        entry(host, {
          seq: random(6),
          version: `1.${random(3)}`,
          result: results[random(results.length)],
          claimed_bucket: random(4) === 0 ? 77 : random(4) === 0 ? null : 10,
          at: step,
        }),
      );
    if (step % 250 === 0 || step === 4_999)
      for (const a of ['web', 'api']) assert.equal(kept(a), byPass(a), `step ${step}`);
  }
  const failures = m.failures('web');
  assert.equal(
    failures.map((h) => h.at),
    failures.map((h) => h.at).sort((a, b) => b - a),
    'the latest failure first',
  );
});

test('reports with made-up versions and digests, past the shared strings kept: every host keeps its own', () => {
  // FleetMemory keeps one copy of each version and sha256 string, 1,024 at most, then starts again:
  // 3,000 hosts each on a version of its own go through that restart twice.
  const m = new FleetMemory();
  const hosts = Array.from({ length: 3_000 }, (_, i) => `h${i}`);
  for (const [i, host] of hosts.entries())
    m.applyReport('web', entry(host, { version: `9.${i}`, previous: `8.${i % 7}`, sha256: `${i}`.padStart(64, '0') }));
  for (const [i, host] of hosts.entries()) {
    const kept = m.host('web', host)!;
    assert.equal([kept.version, kept.previous, kept.sha256], [`9.${i}`, `8.${i % 7}`, `${i}`.padStart(64, '0')]);
  }
  assert.is(m.tally('web').length, 3_000);
  m.applyReport('web', entry('h0', { seq: 4, version: '9.1' }));
  assert.equal(
    m.tally('web').find((row) => row.version === '9.1'),
    { version: '9.1', result: 'updated', hosts: 2 },
  );
});

test('admit: older refused, new hosts past max_hosts refused while others are written, known hosts go on', async () => {
  const m = new FleetMemory();
  m.applyReport('web', entry('a'));
  let writes = 0;
  const write = async () => {
    writes++;
    await new Promise((r) => setTimeout(r, 10));
    return 'added' as const;
  };
  assert.is(await m.admit('web', entry('a', { seq: 2 }), 2, write), 'older');
  const [b, c] = await Promise.all([m.admit('web', entry('b'), 2, write), m.admit('web', entry('c'), 2, write)]);
  assert.equal([b, c], ['added', 'full'], 'b counts against the cap while it is being written');
  assert.is(await m.admit('web', entry('a', { seq: 5 }), 1, write), 'added', 'a known host is not counted again');
  assert.is(writes, 2);
});

test('known: the named hosts it has, once each; with silentBefore only those silent since', () => {
  const m = new FleetMemory();
  m.applyReport('web', entry('a', { at: 100 }));
  m.applyReport('web', entry('b', { at: 900 }));
  assert.equal(m.known('web', ['a', 'b', 'a', 'zz']), ['a', 'b']);
  assert.equal(m.known('web', ['a', 'b'], 500), ['a']);
  m.applyForget('web', ['a', 'b']);
  assert.equal(m.known('web', ['a']), []);
});

test.run();
