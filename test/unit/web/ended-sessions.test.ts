// Ended status-page sessions: logout writes one down in DATA/ended-sessions.json, a new process
// (a restart) still refuses it; the end-all mark is seen by a running one without reopening;
// expired entries drop out and a full file folds its oldest into the mark (none comes back);
// an unreadable file refuses every session; two writers at once lose nothing (the lock).
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Logger } from '../../../lib/core/log.ts';
import {
  endAllSessions,
  endedSessionsFile,
  ENDED_SESSIONS_FILE,
  formatEndedSessions,
  isEndedIn,
  openEndedSessions,
  parseEndedSessions,
  pruneEnded,
  readEndedSessions,
} from '../../../lib/web/ended-sessions.ts';
import { createSessionKeys, SESSION_SECONDS } from '../../../lib/web/session.ts';
import { tmpDir } from '../../_helpers/common.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-11-22T12:00:00Z');
const keys = createSessionKeys('the-read-token');
const sessionAt = (ms: number) => keys.verify(keys.issue(new Date(ms)), new Date(ms))!;

function recordingLog(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const log = {
    debug() {},
    info() {},
    warn: (m: string) => void warnings.push(m),
    error: (m: string) => void warnings.push(m),
    child: () => log,
    warnings,
  };
  return log as unknown as Logger & { warnings: string[] };
}

test('logout: the session is written to DATA/ended-sessions.json and refused, also by a new process (a restart); others are not', async () => {
  const data = tmpDir();
  const mine = sessionAt(T0);
  const other = sessionAt(T0 + 1000);
  const running = openEndedSessions({ dataDir: data });
  assert.not.ok(running.isEnded(mine));
  await running.end(mine, new Date(T0 + 2000));
  assert.ok(running.isEnded(mine));
  assert.not.ok(running.isEnded(other));
  assert.is(endedSessionsFile(data), path.join(data, ENDED_SESSIONS_FILE));
  const onDisk = JSON.parse(readFileSync(endedSessionsFile(data), 'utf8'));
  assert.equal(onDisk, { version: 1, endedBefore: 0, ended: { [mine.id]: mine.issued } });
  assert.is(statSync(endedSessionsFile(data)).mode & 0o777, 0o644);
  const restarted = openEndedSessions({ dataDir: data });
  assert.ok(restarted.isEnded(mine), 'after a restart');
  assert.not.ok(restarted.isEnded(other));
});

test('end all: sessions issued before the mark are refused by a process that is already running, at its next check; later ones are not', async () => {
  const data = tmpDir();
  const running = openEndedSessions({ dataDir: data });
  const before = sessionAt(T0);
  assert.not.ok(running.isEnded(before), 'read once: no file yet');
  const { state, file } = await endAllSessions(data, { now: new Date(T0 + 5000) });
  assert.is(file, endedSessionsFile(data));
  assert.is(state.before, T0 + 5001, 'the mark ends its own millisecond too');
  assert.ok(running.isEnded(before), 'the running process read the new file');
  assert.not.ok(running.isEnded(sessionAt(T0 + 5001)), 'a login after the mark');
  // Another mark, written twice within one tick of the clock: each is seen (the inode changes on every replace).
  const later = sessionAt(T0 + 6000);
  assert.not.ok(running.isEnded(later));
  await endAllSessions(data, { now: new Date(T0 + 7000) });
  assert.ok(running.isEnded(later));
  // The mark never goes back.
  await endAllSessions(data, { now: new Date(T0) });
  assert.is((await readEndedSessions(endedSessionsFile(data))).before, T0 + 7001);
  const missing = await endAllSessions(path.join(data, 'nope')).then(
    () => undefined,
    (error: Error) => error.message,
  );
  assert.match(String(missing), /The data folder .*nope does not exist/);
});

test('bounded: expired entries and entries the mark ends drop out; past the cap the oldest are folded into the mark and stay ended', () => {
  const sessionMs = SESSION_SECONDS * 1000;
  const state = {
    before: T0,
    ended: new Map([
      ['expired', T0 - sessionMs],
      ['under-mark', T0 - 1],
      ['a', T0 + 1],
      ['b', T0 + 2],
      ['c', T0 + 3],
      ['d', T0 + 4],
    ]),
  };
  const pruned = pruneEnded(state, T0 + 10, { maxEntries: 2 });
  assert.equal([...pruned.ended.keys()], ['c', 'd'], 'the newest two kept one by one');
  assert.is(pruned.before, T0 + 3, 'the mark moves past the dropped ones');
  for (const [id, issued] of [
    ['a', T0 + 1],
    ['b', T0 + 2],
    ['c', T0 + 3],
    ['d', T0 + 4],
    ['under-mark', T0 - 1],
  ] as const) {
    assert.ok(isEndedIn(pruned, { id, issued }), `${id} stays ended`);
  }
  assert.not.ok(isEndedIn(pruned, { id: 'e', issued: T0 + 5 }), 'a later session is not');
  // Expiry alone: an entry goes once its cookie would have expired.
  const week = pruneEnded({ before: 0, ended: new Map([['x', T0]]) }, T0 + sessionMs);
  assert.is(week.ended.size, 0);
  assert.is(week.before, 0);
});

test('the file stays small: 300 logouts with a cap of 50 leave at most 50 entries, and every one of them is still refused', async () => {
  const data = tmpDir();
  const ended = openEndedSessions({ dataDir: data, maxEntries: 50 });
  const sessions = Array.from({ length: 300 }, (_, i) => sessionAt(T0 + i));
  for (const s of sessions) await ended.end(s, new Date(T0 + 1000));
  const state = parseEndedSessions(readFileSync(endedSessionsFile(data), 'utf8'));
  assert.ok(state.ended.size <= 50, `${state.ended.size} entries`);
  const fresh = openEndedSessions({ dataDir: data });
  for (const s of sessions) assert.ok(fresh.isEnded(s), `session issued at +${s.issued - T0} ms`);
  // A week on, the next write drops them all.
  await ended.end(sessionAt(T0 + 8 * DAY), new Date(T0 + 8 * DAY));
  assert.is(parseEndedSessions(readFileSync(endedSessionsFile(data), 'utf8')).ended.size, 1);
});

test('end all ends a session issued in its own millisecond, and not one issued after it', async () => {
  const data = tmpDir();
  const ended = openEndedSessions({ dataDir: data });
  await endAllSessions(data, { now: new Date(T0) });
  assert.ok(ended.isEnded(sessionAt(T0 - 1)), 'issued before');
  assert.ok(ended.isEnded(sessionAt(T0)), 'issued in the same millisecond');
  assert.not.ok(ended.isEnded(sessionAt(T0 + 1)), 'issued after');
});

test('an unreadable file refuses every session (said once in the log); end all replaces it', async () => {
  const data = tmpDir();
  const file = endedSessionsFile(data);
  writeFileSync(file, '{"version":1,"endedBefore":');
  const log = recordingLog();
  const ended = openEndedSessions({ dataDir: data, log });
  const s = sessionAt(Date.now());
  assert.ok(ended.isEnded(s));
  assert.ok(ended.isEnded(s));
  assert.is(log.warnings.length, 1, log.warnings.join('\n'));
  assert.match(log.warnings[0], file);
  assert.match(log.warnings[0], 'hook-server --end-sessions');
  for (const text of [
    '[]',
    '{"version":2,"endedBefore":0,"ended":{}}',
    '{"version":1,"endedBefore":"x","ended":{}}',
    '{"version":1,"endedBefore":0,"ended":{"a":"b"}}',
  ]) {
    assert.throws(() => parseEndedSessions(text), undefined, text);
  }
  const { replaced } = await endAllSessions(data);
  assert.ok(replaced, 'said that it replaced the file');
  assert.ok(ended.isEnded(s), 'issued before the mark');
  assert.not.ok(ended.isEnded(sessionAt(Date.now() + 10)), 'the file is read again: a later login works');
});

test('two writers at once (hook-server logging people out, the command ending all) lose nothing: the file is updated under a lock', async () => {
  const data = tmpDir();
  const first = openEndedSessions({ dataDir: data });
  const second = openEndedSessions({ dataDir: data });
  const sessions = Array.from({ length: 40 }, (_, i) => sessionAt(T0 + 10_000 + i));
  await Promise.all([
    ...sessions.map((s, i) => (i % 2 ? first : second).end(s, new Date(T0 + 20_000))),
    endAllSessions(data, { now: new Date(T0 + 1) }),
  ]);
  const state = parseEndedSessions(readFileSync(endedSessionsFile(data), 'utf8'));
  assert.is(state.before, T0 + 2, 'the mark kept');
  assert.equal([...state.ended.keys()].sort(), sessions.map((s) => s.id).sort(), 'every logout kept');
});

test('a logout the file cannot take is still refused by this process; without DATA, sessions end in memory', async () => {
  const data = tmpDir();
  const gone = path.join(data, 'removed');
  mkdirSync(gone);
  const ended = openEndedSessions({ dataDir: gone });
  const { rmSync } = await import('node:fs');
  rmSync(gone, { recursive: true });
  const s = sessionAt(T0);
  const failed = await ended.end(s, new Date(T0)).then(
    () => false,
    () => true,
  );
  assert.ok(failed, 'the write failed and said so');
  assert.ok(ended.isEnded(s));
  const memory = openEndedSessions();
  await memory.end(s, new Date(T0));
  assert.ok(memory.isEnded(s));
  assert.not.ok(memory.isEnded(sessionAt(T0 + 1)));
});

test('format and parse round-trip', () => {
  const state = {
    before: T0,
    ended: new Map([
      ['b', T0 + 2],
      ['a', T0 + 1],
    ]),
  };
  assert.equal(parseEndedSessions(formatEndedSessions(state)), state);
  assert.is(formatEndedSessions(state), `{"version":1,"endedBefore":${T0},"ended":{"a":${T0 + 1},"b":${T0 + 2}}}\n`);
});

test.run();
