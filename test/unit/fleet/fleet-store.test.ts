// The fleet registry on disk (lib/fleet/fleet-store.ts): a report is on disk when its write
// resolves, a host keeps its latest report, a restart reads back what was acknowledged, a torn or
// altered line is dropped, a full disk (real tmpfs) refuses without changing memory, a log
// of mostly superseded lines is rewritten, and forgotten hosts stay gone (replay and rewrite)
// while an app at max_hosts takes no new host; a signed report is taken once, also after a
// restart and a rewrite.
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fleetLogFile, FleetStore } from '../../../lib/fleet/fleet-store.ts';
import { encodeLine } from '../../../lib/core/append-log.ts';
import type { HostEntry, RolloutRecord } from '../../../lib/release/format/fleet-report.ts';
import { mountTinyDisk, skipFullDisk } from '../../_helpers/disk.ts';
import { tmpDir } from '../../_helpers/common.ts';

function entry(fields: Partial<HostEntry> = {}): HostEntry {
  return {
    host: randomBytes(16).toString('hex'),
    version: '1.0',
    previous: '',
    seq: 1,
    bucket: 50,
    claimed_bucket: 50,
    result: 'running',
    reason: '',
    seconds: null,
    at: Date.now(),
    ...fields,
  };
}
const rollout: RolloutRecord = {
  version: '1.1',
  seq: 2,
  step: 1,
  percent: 1,
  steps: [1, 100],
  state: 'running',
  reason: '',
  at: '2026-11-23T10:00:00Z',
  received: 1,
};

test('each write is in the file when it resolves; a restart reads every host and the rollout back', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const hosts = Array.from({ length: 200 }, () => entry());
  const missing: string[] = [];
  await Promise.all(
    hosts.map((h) =>
      store.addReport('web', h).then(() => {
        if (!readFileSync(fleetLogFile(dir), 'utf8').includes(h.host)) missing.push(h.host);
      }),
    ),
  );
  await store.setRollout('web', rollout);
  assert.equal(missing, [], 'acknowledged before it was in the file');
  assert.ok(store.stats().flushes < hosts.length, 'reports that arrived together shared a flush');
  assert.is(statSync(fleetLogFile(dir)).mode & 0o777, 0o600);
  await store.close();
  const again = await FleetStore.open(dir);
  assert.is(again.damaged, 0);
  assert.is(again.hosts('web').length, 200);
  assert.equal(again.rollout('web'), rollout);
  assert.equal(again.tally('web'), [{ version: '1.0', result: 'running', hosts: 200 }]);
  await again.close();
});

test('a host keeps its latest report: higher seq wins, an older one is not written', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const h = entry({ seq: 5, version: '1.1', result: 'updated' });
  assert.is(await store.addReport('web', h), 'added');
  assert.is(
    await store.addReport('web', { ...h, seq: 4, version: '1.0', result: 'running', at: h.at + 10 }),
    'older',
    'an older seq',
  );
  assert.is(
    await store.addReport('web', { ...h, result: 'rolled_back', reason: 'probe failed', at: h.at + 20 }),
    'added',
    'same seq, later',
  );
  assert.equal(
    store.hosts('web').map((e) => [e.version, e.result]),
    [['1.1', 'rolled_back']],
  );
  assert.is(store.stats().lines, 2);
  await store.close();
  const again = await FleetStore.open(dir);
  assert.equal(
    again.hosts('web').map((e) => [e.version, e.result, e.reason]),
    [['1.1', 'rolled_back', 'probe failed']],
  );
  assert.equal(again.hosts('other'), []);
  await again.close();
});

test('a signed report is taken once: the same second and nonce refused after a restart and a rewrite (audit 1)', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const signed = { signed_at: 1_800_000_000, enrolled: true };
  const first = entry({ ...signed, seq: 4, result: 'failed', nonces: ['nonce-one-1234567'] });
  const host = first.host;
  assert.is(await store.addReport('web', first), 'added');
  assert.is(await store.addReport('web', { ...first, result: 'updated', nonces: ['nonce-two-1234567'] }), 'added');
  const older = { ...first, seq: 3, nonces: ['nonce-three-123456'] };
  assert.is(await store.addReport('web', older), 'older', 'a lower SEQ: not the entry, but its signature kept');
  assert.is(await store.addReport('web', first), 'replay');
  await store.close();
  for (let round = 0; round < 2; round++) {
    const again = await FleetStore.open(dir);
    assert.equal(again.host('web', host)?.nonces, ['nonce-one-1234567', 'nonce-two-1234567', 'nonce-three-123456']);
    for (const replayed of [first, older]) assert.is(await again.addReport('web', replayed), 'replay');
    assert.is(again.host('web', host)?.result, 'updated');
    const live = again.host('web', host);
    await again.close();
    // The second round reads the file as a rewrite leaves it: each host's entry only.
    writeFileSync(fleetLogFile(dir), encodeLine({ kind: 'report', app: 'web', entry: live }));
  }
});

test('a torn last line and an altered line are dropped on replay, and the file is cut back to whole lines', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const kept = entry();
  const altered = entry();
  await store.addReport('web', kept);
  await store.addReport('web', altered);
  await store.close();
  const file = fleetLogFile(dir);
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace(
      `"host":"${altered.host}","version":"1.0"`,
      `"host":"${altered.host}","version":"9.9"`,
    ),
  );
  appendFileSync(file, '01234567 {"kind":"report","app":"web","entry":{"host":"ab'); // a crash mid-write
  const again = await FleetStore.open(dir);
  assert.is(again.damaged, 2);
  assert.equal(
    again.hosts('web').map((e) => e.host),
    [kept.host],
  );
  assert.ok(readFileSync(file, 'utf8').endsWith('\n'), 'the torn tail is gone');
  await again.close();
});

test('a log of mostly superseded lines is rewritten with the live state only', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const host = entry();
  for (let seq = 1; seq <= 1100; seq++) await store.addReport('web', { ...host, seq, version: `1.${seq}` });
  assert.ok(store.stats().lines < 1100, `rewritten (${store.stats().lines} lines)`);
  await store.close();
  const again = await FleetStore.open(dir);
  assert.equal(
    again.hosts('web').map((e) => e.version),
    ['1.1100'],
  );
  assert.ok(readFileSync(fleetLogFile(dir), 'utf8').split('\n').length < 1000);
  await again.close();
});

test('full disk (real tmpfs): a write that fails changes nothing; the next one after space is freed reads back', async () => {
  const disk = mountTinyDisk('1m');
  if (typeof disk === 'string') return skipFullDisk('fleet store full-disk test', disk);
  const store = await FleetStore.open(disk.dir);
  const first = entry();
  await store.addReport('web', first);
  disk.fill();
  const group = Array.from({ length: 20 }, () => entry({ reason: 'r'.repeat(450) }));
  const outcomes = await Promise.allSettled(group.map((h) => store.addReport('web', h)));
  const refused = group.filter((_, i) => outcomes[i].status === 'rejected');
  assert.ok(refused.length > 0, 'writes failed on the full disk');
  for (const o of outcomes) if (o.status === 'rejected') assert.is((o.reason as NodeJS.ErrnoException).code, 'ENOSPC');
  const hosts = new Set(store.hosts('web').map((e) => e.host));
  for (const h of refused) assert.not.ok(hosts.has(h.host), 'a refused report is not in memory');
  const accepted = group.filter((_, i) => outcomes[i].status === 'fulfilled');
  disk.free();
  const after = entry();
  await store.addReport('web', after);
  await store.close();
  const again = await FleetStore.open(disk.dir);
  assert.is(again.damaged, 0, 'no partial line');
  const back = new Set(again.hosts('web').map((e) => e.host));
  for (const h of [first, after, ...accepted]) assert.ok(back.has(h.host), 'an acknowledged report is on disk');
  for (const h of refused) assert.not.ok(back.has(h.host), 'a refused report is not on disk');
  await again.close();
});

test('forget: the hosts named are gone, also after a restart; unknown ones are not counted or written', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const [a, b, c] = [entry(), entry(), entry()];
  for (const h of [a, b, c]) await store.addReport('web', h);
  await store.addReport('other', a);
  const stranger = entry().host;
  assert.is(
    await store.forget('web', [a.host, b.host, a.host, stranger]),
    2,
    'a repeat and a stranger are not counted',
  );
  assert.equal(
    store.hosts('web').map((e) => e.host),
    [c.host],
  );
  assert.is(store.count('web'), 1);
  assert.is(store.count('other'), 1, "another app's host of the same id stays");
  const lines = store.stats().lines;
  assert.is(await store.forget('web', [stranger]), 0);
  assert.is(await store.forget('nobody', [c.host]), 0);
  assert.is(store.stats().lines, lines, 'nothing to forget, nothing written');
  await store.close();
  const again = await FleetStore.open(dir);
  assert.equal(
    again.hosts('web').map((e) => e.host),
    [c.host],
    'replayed: the forget line follows the reports it takes out',
  );
  // A forgotten host that reports again is a new host, and stays after a restart.
  assert.is(await again.addReport('web', { ...a, at: a.at + 1 }), 'added');
  await again.close();
  const third = await FleetStore.open(dir);
  assert.equal(
    third
      .hosts('web')
      .map((e) => e.host)
      .sort(),
    [a.host, c.host].sort(),
  );
  await third.close();
});

test('a rewrite keeps neither forgotten hosts nor forget lines; they stay gone', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const hosts = Array.from({ length: 1500 }, () => entry());
  await Promise.all(hosts.map((h) => store.addReport('web', h)));
  const gone = hosts.slice(0, 1400).map((h) => h.host);
  // 1,502 lines for 100 live hosts: more than twice the live ones and a thousand more, rewritten.
  assert.is(await store.forget('web', gone), 1400);
  // The rewrite runs after the flush that asked for it: the next write waits for it.
  await store.addReport('web', { ...hosts[1400], seq: 2 });
  assert.is(store.stats().lines, 101, 'rewritten with the live hosts, then one report');
  const text = readFileSync(fleetLogFile(dir), 'utf8');
  assert.not.match(text, '"kind":"forget"');
  for (const host of gone.slice(0, 50)) assert.not.match(text, host);
  await store.close();
  const again = await FleetStore.open(dir);
  assert.is(again.count('web'), 100);
  assert.ok(gone.every((host) => !again.host('web', host)));
  await again.close();
});

test('silentSince: the hosts whose latest report is older than a time', async () => {
  const store = await FleetStore.open(tmpDir());
  const now = Date.now();
  const old = entry({ at: now - 40 * 86_400_000 });
  const recent = entry({ at: now - 1000 });
  const refreshed = entry({ at: now - 50 * 86_400_000 });
  for (const h of [old, recent, refreshed]) await store.addReport('web', h);
  await store.addReport('web', { ...refreshed, at: now });
  assert.equal(store.silentSince('web', now - 30 * 86_400_000), [old.host]);
  assert.equal(store.silentSince('other', now), []);
  await store.close();
});

test('max_hosts: a new host beyond it is refused and not written, also when many arrive at once; known hosts still report', async () => {
  const dir = tmpDir();
  const store = await FleetStore.open(dir);
  const first = Array.from({ length: 3 }, () => entry());
  for (const h of first) assert.is(await store.addReport('web', h, { maxHosts: 5 }), 'added');
  // Ten new hosts at once: their writes share a flush, and only two fit.
  const burst = Array.from({ length: 10 }, () => entry());
  const outcomes = await Promise.all(burst.map((h) => store.addReport('web', h, { maxHosts: 5 })));
  assert.equal(outcomes.filter((o) => o === 'added').length, 2, outcomes.join(' '));
  assert.is(store.count('web'), 5);
  assert.is(await store.addReport('web', { ...first[0], seq: 2 }, { maxHosts: 5 }), 'added', 'a known host at the cap');
  assert.is(await store.addReport('other', entry(), { maxHosts: 5 }), 'added', 'the cap is per app');
  const refused = burst.filter((_, i) => outcomes[i] === 'full');
  const text = readFileSync(fleetLogFile(dir), 'utf8');
  for (const h of refused) assert.not.match(text, h.host, 'a refused host is not written');
  // Forgetting one makes room for one.
  await store.forget('web', [first[1].host]);
  assert.is(await store.addReport('web', refused[0], { maxHosts: 5 }), 'added');
  assert.is(await store.addReport('web', refused[1], { maxHosts: 5 }), 'full');
  await store.close();
});

test.run();
