// The launchfit host's roster files: entry names and texts checked, entries and ended marks
// written and read back, and pid files that name only a live process started when they say.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  clearEnded,
  hostPaths,
  listEntries,
  livePid,
  parseEntry,
  readEnded,
  readEntry,
  removeEntry,
  validateEntryName,
  writeEnded,
  writeEntry,
  writePidFile,
} from '../../../lib/launchfit/host-roster.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-roster-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('entry names: REPO.pr-N and +repo names pass; paths, dots and empty names are refused', () => {
  for (const ok of ['octo__site.pr-2', '+a+b.pr-10', 'x']) assert.is(validateEntryName(ok), ok);
  for (const bad of ['', '../x', 'a/b', '.hidden', 'a..b', '-flag', 'x'.repeat(201), 'a\nb'])
    assert.throws(() => validateEntryName(bad), /Invalid roster entry name/, JSON.stringify(bad));
});

test('an entry must be JSON with absolute dir and log', () => {
  assert.equal(parseEntry('{"dir":"/a","log":"/b.log","since":5}'), { dir: '/a', log: '/b.log', since: 5 });
  assert.throws(() => parseEntry('{"dir":'), /not JSON/);
  assert.throws(() => parseEntry('{"dir":"a","log":"/b"}'), /dir must be an absolute path/);
  assert.throws(() => parseEntry('{"dir":"/a"}'), /log must be an absolute path/);
  assert.throws(() => parseEntry('null'), /dir must be an absolute path/);
});

test('writeEntry lists it (0600, its ended mark cleared); removeEntry takes it off', async () => {
  const host = path.join(dir, 'host');
  await writeEnded(host, 'octo__site.pr-1', { removed: true, reason: 'taken off the roster' });
  assert.equal(await readEnded(host, 'octo__site.pr-1'), { removed: true, reason: 'taken off the roster' });
  await writeEntry(host, 'octo__site.pr-1', { dir: '/d', log: '/l' });
  assert.is(await readEnded(host, 'octo__site.pr-1'), undefined, 'a new run clears the last end');
  assert.equal(await readEntry(host, 'octo__site.pr-1'), { dir: '/d', log: '/l', since: undefined });
  assert.is(statSync(path.join(hostPaths(host).roster, 'octo__site.pr-1.json')).mode & 0o777, 0o600);
  assert.is(statSync(hostPaths(host).roster).mode & 0o777, 0o700);
  assert.equal(await listEntries(host), ['octo__site.pr-1']);
  await removeEntry(host, 'octo__site.pr-1');
  assert.equal(await listEntries(host), []);
  assert.is(await readEntry(host, 'octo__site.pr-1'), undefined);
  await clearEnded(host, 'octo__site.pr-1');
  await removeEntry(host, 'octo__site.pr-1'); // again: nothing to remove, no error
  const refused = await writeEntry(host, '../escape', { dir: '/d', log: '/l' }).then(
    () => 'written',
    (error: Error) => error.message,
  );
  assert.match(refused, /Invalid roster entry name/);
  assert.equal(await listEntries(host), []);
});

test('an ended mark that is not JSON is read as its text', async () => {
  const host = path.join(dir, 'host2');
  await writeEnded(host, 'a', { removed: false, reason: 'x' });
  writeFileSync(path.join(hostPaths(host).ended, 'a'), 'disk said no\n');
  assert.equal(await readEnded(host, 'a'), { removed: false, reason: 'disk said no' });
});

test('livePid: this process from its pid file; a wrong start time, garbage or no file: none', async () => {
  const file = path.join(dir, 'me.pid');
  await writePidFile(file);
  assert.is(await livePid(file), process.pid);
  const kept = JSON.parse(readFileSync(file, 'utf8'));
  writeFileSync(file, JSON.stringify({ ...kept, start: '1' }));
  assert.is(await livePid(file), undefined, 'the pid reused by another process');
  writeFileSync(file, 'garbage');
  assert.is(await livePid(file), undefined);
  writeFileSync(file, JSON.stringify({ ...kept, pid: 1 }));
  assert.is(await livePid(file), undefined, 'pid 1 is never ours');
  assert.is(await livePid(path.join(dir, 'none.pid')), undefined);
});

test.run();
