// lib/core/process-group.ts: ending a whole process group with real child processes — a group
// that stops on SIGTERM, one that ignores it, a grandchild left behind by its leader, and a
// group that holds nothing but a zombie (which must not use up the grace period).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  bootId,
  endProcessGroup,
  isGroupAlive,
  processStartTime,
  processStartedAt,
  signalGroup,
  waitForGroupExit,
} from '../../../lib/core/process-group.ts';

const started: ChildProcess[] = [];

/** A detached `sh -c script` (its own group); resolves once it printed its first line. */
function startGroup(script: string): Promise<{ pgid: number; firstLine: string }> {
  const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (data: Buffer) =>
      resolve({ pgid: child.pid!, firstLine: data.toString().split('\n')[0] }),
    );
  });
}

function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2)[0]);
  } catch {
    return false;
  }
}

test('a group that stops on SIGTERM: exited, within the grace', async () => {
  const { pgid } = await startGroup('echo up; sleep 30 & wait');
  assert.ok(isGroupAlive(pgid));
  const t0 = Date.now();
  assert.is(await endProcessGroup(pgid, { graceMs: 5000 }), 'exited');
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  assert.not.ok(isGroupAlive(pgid));
});

test('a group that ignores SIGTERM: SIGKILL after the grace, nothing left running', async () => {
  const { pgid, firstLine } = await startGroup(
    'trap "" TERM; sh -c \'trap "" TERM; echo $$; while :; do sleep 0.05; done\' & wait',
  );
  const inner = Number(firstLine);
  assert.ok(isRunning(inner));
  const t0 = Date.now();
  assert.is(await endProcessGroup(pgid, { graceMs: 300 }), 'killed');
  assert.ok(Date.now() - t0 >= 300, 'the grace was given');
  assert.not.ok(isRunning(inner), 'the grandchild is gone too');
  assert.not.ok(isGroupAlive(pgid));
});

test('a grandchild left behind by its leader is found and ended', async () => {
  const { pgid, firstLine } = await startGroup('sleep 30 & echo $!');
  const orphan = Number(firstLine);
  await new Promise((r) => setTimeout(r, 100)); // the leader has exited by now
  assert.ok(isRunning(orphan));
  assert.ok(isGroupAlive(pgid), 'the group lives on in the grandchild');
  assert.is(await endProcessGroup(pgid, { graceMs: 2000 }), 'exited');
  assert.not.ok(isRunning(orphan));
});

test('a group holding only a zombie counts as ended at once (kill -0 still answers for it)', async () => {
  // perl (outside the group) forks a child that makes its own group and exits; perl never reaps it.
  const parent = spawn(
    'perl',
    ['-e', '$| = 1; my $p = fork(); if (!$p) { setpgrp(0, 0); exit 0 } print "$p\\n"; sleep 30'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  started.push(parent);
  const pgid = await new Promise<number>((resolve) =>
    parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  const deadline = Date.now() + 5000;
  while (!readFileSync(`/proc/${pgid}/stat`, 'latin1').includes(') Z ') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.ok(signalGroup(pgid, 0), 'the zombie still answers kill -0');
  assert.not.ok(isGroupAlive(pgid));
  const t0 = Date.now();
  assert.ok(await waitForGroupExit(pgid, 3000));
  assert.is(await endProcessGroup(pgid, { graceMs: 3000 }), 'not-running');
  assert.ok(Date.now() - t0 < 500, `waited ${Date.now() - t0} ms on a zombie`);
});

test('no pgid, pid 1 and a group that does not exist are left alone', async () => {
  for (const pgid of [undefined, null, 0, 1]) {
    assert.not.ok(signalGroup(pgid, 'SIGTERM'));
    assert.not.ok(isGroupAlive(pgid));
    assert.is(await endProcessGroup(pgid, { graceMs: 10 }), 'not-running');
  }
  assert.not.ok(isGroupAlive(4_000_000));
});

test('without a readable /proc, a group answering kill -0 counts as running', async () => {
  const { pgid } = await startGroup('echo up; sleep 30');
  assert.ok(isGroupAlive(pgid, '/nonexistent-proc'));
  await endProcessGroup(pgid, { graceMs: 2000 });
});

test('processStartTime: a running process has one, unchanged while it runs, none once it is gone', async () => {
  const { pgid } = await startGroup('echo up; sleep 30');
  const first = processStartTime(pgid);
  assert.match(first ?? '', /^\d+$/);
  assert.is(processStartTime(pgid), first);
  // A process started later has a later (or, within one tick, equal) start time.
  assert.ok(Number(processStartTime(process.pid)) <= Number(first));
  await endProcessGroup(pgid, { graceMs: 2000, signal: 'SIGKILL' });
  await waitForGroupExit(pgid, 5000);
  assert.is(processStartTime(2 ** 22 + 1), null, 'no such pid');
  assert.match(bootId() ?? '', /^[0-9a-f-]{36}$/);
});

test.after(() => {
  for (const child of started) {
    if (child.pid) signalGroup(child.pid, 'SIGKILL');
    child.kill('SIGKILL');
  }
});

test('processStartedAt: this process started a moment ago, in ms since the epoch; a gone pid has none', () => {
  const at = processStartedAt(process.pid);
  assert.ok(at !== undefined && at <= Date.now() + 1000 && at > Date.now() - 3_600_000, `started at ${at}`);
  assert.is(processStartedAt(2 ** 22 + 1), undefined);
});

test.run();
