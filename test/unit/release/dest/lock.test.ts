// DEST's publish lock on S3 (lib/release/dest/lock.ts) against s3rver on loopback: one holder at a
// time, the second told who holds it; released and taken again; a stale claim taken over, a fresh
// or renewed one not; many writers at once, one winner. The remote shell quoting checked with a
// real sh; the holder's text shown escaped. The ssh lock: test/e2e/release/publish-race.test.ts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../../lib/core/errors.ts';
import {
  lockHeldError,
  lockRemoteDestination,
  remoteShellWord,
  type LockOwner,
} from '../../../../lib/release/dest/lock.ts';
import { runCommand, tmpDir, waitFor } from '../../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../../_helpers/ssh.ts';
import { s3rverEnv, startS3rver } from '../../../fixtures/s3rver.ts';

let s3rver: Awaited<ReturnType<typeof startS3rver>>;
let env: NodeJS.ProcessEnv;
let n = 0;
const owner = (by = 'alice@box'): LockOwner => ({
  by,
  at: new Date().toISOString(),
  pid: `${100 + n}@box`,
  token: `token${n++}`,
});
const claims = async (prefix: string) => {
  const list = await (
    await fetch(`${s3rver.endpoint}/locks?list-type=2&prefix=${prefix}/.shipkit-publish.lock/`)
  ).text();
  return [...list.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
};

let saved: NodeJS.ProcessEnv;
let sshd: Sshd | string;
/** ssh as the operator's config gives it for 127.0.0.1: a PATH whose `ssh` adds -F. */
let sshEnv: NodeJS.ProcessEnv;
test.before(async () => {
  s3rver = await startS3rver('locks');
  sshd = await startSshd();
  if (typeof sshd !== 'string') {
    const bin = tmpDir('shipkit-lock-bin-');
    const config = path.join(bin, 'ssh_config');
    writeFileSync(
      config,
      `Host 127.0.0.1\n  Port ${sshd.port}\n  IdentityFile ${sshd.key}\n  UserKnownHostsFile ${sshd.knownHosts}\n`,
    );
    writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${config}' "$@"\n`, { mode: 0o755 });
    sshEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  }
  // The SDK looks up credentials in process.env itself.
  saved = { ...process.env };
  Object.assign(process.env, s3rverEnv(s3rver.endpoint));
  env = process.env;
});
test.after(async () => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
  process.env = saved;
  await s3rver.close();
});

test('one holder at a time; the second is told who holds it and writes nothing', async () => {
  const first = await lockRemoteDestination('s3://locks/a', owner('alice@box'), { env });
  const before = await claims('a');
  const second = await lockRemoteDestination('s3://locks/a', owner('bob@box'), { env }).catch((e) => e);
  assert.instance(second, WorkError);
  assert.match(second.message, /holds the lock of s3:\/\/locks\/a since \S+ \(by alice@box, process \d+@box\)/);
  assert.equal(await claims('a'), before, 'the loser left no claim');
  await first.release();
  assert.equal(await claims('a'), []);
  const third = await lockRemoteDestination('s3://locks/a', owner('bob@box'), { env });
  await third.release();
});

test('a claim not renewed within the limit is taken over; a fresh one is not', async () => {
  const dead = await lockRemoteDestination('s3://locks/b', owner('dead@box'), { env });
  void dead; // never released: its holder "died"
  await new Promise((r) => setTimeout(r, 50));
  const refused = await lockRemoteDestination('s3://locks/b', owner(), { env, staleMs: 60_000 }).catch((e) => e);
  assert.instance(refused, WorkError);
  assert.match(refused.message, /by dead@box/);
  const taken = await lockRemoteDestination('s3://locks/b', owner('heir@box'), { env, staleMs: 10 });
  const left = await claims('b');
  assert.is(left.length, 2, 'only the heir claim and its held mark');
  assert.ok(left.every((k) => k.includes(`-token${n - 1}`)));
  await taken.release();
});

test('the holder renews its claim, so it does not go stale while held', async () => {
  // Renewed 0.2 s after each renewal, stale after 6 s. Past those 6 s since it was taken, a renewal
  // seen to land (its `renewed` time moves) is waited for: on a machine loaded enough to starve the
  // holder for 6 s (CI's unit batch once), timing alone would judge the machine, not the renewal.
  const held = await lockRemoteDestination('s3://locks/r', owner('slow@box'), { env, staleMs: 6000, renewMs: 200 });
  // A read that meets the claim being rewritten gets S3's error (XML), a part, or a cut connection: none then.
  const renewed = async () => {
    try {
      const key = (await claims('r')).find((k) => k.endsWith('.held'));
      const answer = key ? await fetch(`${s3rver.endpoint}/locks/${key}`) : undefined;
      return JSON.parse(answer?.ok ? await answer.text() : '').renewed as string;
    } catch {
      return undefined; // cut off or not the claim: read again
    }
  };

  await new Promise((r) => setTimeout(r, 7000));
  const seen = await waitFor(renewed, { timeoutMs: 30_000, what: 'the held claim' });
  assert.type(seen, 'string', 'the held claim names when it was renewed');
  await waitFor(async () => ((await renewed()) ?? seen) !== seen, { timeoutMs: 30_000, what: 'a renewal' });
  const refused = await lockRemoteDestination('s3://locks/r', owner(), { env, staleMs: 6000 }).catch((e) => e);
  assert.instance(refused, WorkError, 'renewed within the limit: still held');
  assert.match(refused.message, /by slow@box/);
  await held.release();
  assert.equal(await claims('r'), [], 'no renewal puts it back after the release');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await claims('r'), []);
});

test('many writers at once: exactly one takes it', async () => {
  const tries = await Promise.allSettled(
    Array.from({ length: 6 }, (_, i) => lockRemoteDestination('s3://locks/c', owner(`w${i}@box`), { env })),
  );
  const won = tries.filter((t) => t.status === 'fulfilled');
  assert.is(won.length, 1, JSON.stringify(tries.map((t) => t.status)));
  for (const t of tries)
    if (t.status === 'rejected') assert.match(String(t.reason), /holds the lock of s3:\/\/locks\/c/);
  await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
  assert.equal(await claims('c'), []);
});

test('over ssh: mkdir on the remote; the second told who; renewed while held; stale taken over', async () => {
  if (typeof sshd === 'string') return console.log(`SKIP the ssh lock: ${sshd}`);
  const dest = path.join(tmpDir('shipkit-lock-remote-'), "it's here");
  const lockDir = path.join(dest, '.shipkit-publish.lock');
  const to = `root@127.0.0.1:${dest}`;
  const first = await lockRemoteDestination(to, owner('alice@box'), { env: sshEnv, staleMs: 5000, renewMs: 300 });
  assert.equal(JSON.parse(readFileSync(path.join(lockDir, 'owner'), 'utf8')).by, 'alice@box');
  await new Promise((r) => setTimeout(r, 6000));
  const refused = await lockRemoteDestination(to, owner(), { env: sshEnv, staleMs: 5000 }).catch((e) => e);
  assert.instance(refused, WorkError, 'renewed within the limit: still held');
  assert.match(refused.message, /by alice@box, process \d+@box/);
  await first.release();
  assert.not.ok(existsSync(lockDir));
  // A holder that died: its lock, 2 s old, is taken over with a 1 s limit (and not with 60 s).
  await lockRemoteDestination(to, owner('dead@box'), { env: sshEnv });
  await new Promise((r) => setTimeout(r, 2200));
  const fresh = await lockRemoteDestination(to, owner(), { env: sshEnv, staleMs: 60_000 }).catch((e) => e);
  assert.match(String(fresh), /by dead@box/);
  const heir = await lockRemoteDestination(to, owner('heir@box'), { env: sshEnv, staleMs: 1000 });
  assert.equal(JSON.parse(readFileSync(path.join(lockDir, 'owner'), 'utf8')).by, 'heir@box');
  await heir.release();
  assert.not.ok(existsSync(lockDir));
});

test('over ssh: a hostile owner file is shown escaped', async () => {
  if (typeof sshd === 'string') return;
  const dest = tmpDir('shipkit-lock-remote-');
  mkdirSync(path.join(dest, '.shipkit-publish.lock'));
  const by = 'x\u001b]0;pwned\u0007\nerror: fake';
  writeFileSync(path.join(dest, '.shipkit-publish.lock', 'owner'), JSON.stringify({ by, at: 'now', pid: '1@h' }));
  const e = await lockRemoteDestination(`root@127.0.0.1:${dest}`, owner(), { env: sshEnv }).catch((x) => x);
  assert.instance(e, WorkError);
  assert.not.match(e.message, /[\u0000-\u001f]/);
  assert.match(e.message, /by x\\u001b\]0;pwned\\u0007\\u000aerror: fake/);
});

test('over ssh: a lock caught between its mkdir and its owner file still names its holder', async () => {
  if (typeof sshd === 'string') return;
  const dest = tmpDir('shipkit-lock-remote-');
  const lockDir = path.join(dest, '.shipkit-publish.lock');
  // The winner's two steps (mkdir, then the owner file), with the loser looking in between.
  mkdirSync(lockDir);
  const written = new Promise<void>((resolve) =>
    setTimeout(() => {
      writeFileSync(path.join(lockDir, 'owner'), JSON.stringify(owner('alice@box')));
      resolve();
    }, 700),
  );
  const e = await lockRemoteDestination(`root@127.0.0.1:${dest}`, owner(), { env: sshEnv }).catch((x) => x);
  await written;
  assert.instance(e, WorkError);
  assert.match(e.message, /by alice@box, process \d+@box/);
});

test('remoteShellWord: the remote shell reads back each argument as it was', async () => {
  for (const arg of ['plain', 'with space', "it's", '$(touch /tmp/x) `id` ; rm -rf', '"{json}"', '']) {
    const r = await runCommand('sh', ['-c', `printf %s ${remoteShellWord(arg)}`]);
    assert.is(r.stdout, arg);
  }
});

test('lockHeldError: text from DEST is shown escaped; an unreadable holder is "unknown"', () => {
  const e = lockHeldError('s3://b/p', { by: 'evil\u001b[31m\nuser', at: '2024-01-01T00:00:00Z' });
  assert.not.match(e.message, /[\u001b\n]/);
  assert.match(e.message, /by evil\\u001b\[31m\\u000auser, process unknown/);
  assert.match(lockHeldError('x', undefined).message, /since unknown \(by unknown, process unknown\)/);
});

test.run();
