// The serving instance's CPU priority during an update (lib/launchfit/app/priority.ts): whether this
// process may raise a priority (CapEff, RLIMIT_NICE), by how much, and setting every thread of a
// real process tree (a shell and a Node child with its own threads) and its session's autogroup.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  canRaisePriorityTo,
  ownNice,
  setInstancePriority,
  updateBoost,
  UPDATE_BOOST,
} from '../../../../lib/launchfit/app/priority.ts';
import { descendantsOf } from '../../../../lib/launchfit/app/instance.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

function fakeSelf(capEff: string, niceLimit: string): string {
  const dir = path.join(tmpDir('shipkit-prio-'), 'self');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'status'), `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\n`);
  writeFileSync(
    path.join(dir, 'limits'),
    `Limit                     Soft Limit           Hard Limit           Units\nMax nice priority         ${niceLimit}                    ${niceLimit}\n`,
  );
  return dir;
}

test('CAP_SYS_NICE (bit 23 of CapEff) may raise any priority; without it, RLIMIT_NICE decides (down to 20 - limit)', () => {
  assert.ok(canRaisePriorityTo(-20, fakeSelf('000001fffeffffff', '0')), 'root in a container');
  assert.not.ok(canRaisePriorityTo(-5, fakeSelf('0000000000000000', '0')), 'a user account: no raise at all');
  assert.not.ok(canRaisePriorityTo(0, fakeSelf('0000000000000000', '0')));
  assert.ok(canRaisePriorityTo(-5, fakeSelf('0000000000000000', '25')), 'LimitNICE=-5');
  assert.not.ok(canRaisePriorityTo(-6, fakeSelf('0000000000000000', '25')));
  assert.ok(canRaisePriorityTo(-20, fakeSelf('0000000000000000', 'unlimited')));
  assert.not.ok(canRaisePriorityTo(-5, '/nonexistent'), 'nothing to read: no');
});

test('the boost: UPDATE_BOOST, or as far as it may be raised, capped at nice -20, else none', () => {
  const yes = () => true;
  const no = () => false;
  assert.is(UPDATE_BOOST, 10);
  assert.is(updateBoost(0, yes), UPDATE_BOOST);
  assert.is(updateBoost(0, no), 0);
  assert.is(updateBoost(-18, yes), 2);
  assert.is(updateBoost(-20, yes), 0);
  // A unit with LimitNICE=-5 (RLIMIT_NICE 25) from before the boost was 10 keeps a boost of 5.
  assert.is(
    updateBoost(0, (nice) => canRaisePriorityTo(nice, fakeSelf('0000000000000000', '25'))),
    5,
  );
  assert.is(
    updateBoost(2, (nice) => nice >= -1),
    3,
  );
  const asked: number[] = [];
  updateBoost(3, (nice) => {
    asked.push(nice);
    return true;
  });
  assert.equal(asked, [3 - UPDATE_BOOST], 'asks for the nice value it would set');
});

const niceOf = (pid: number, tid: number) => {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
};
const threadNices = (pids: number[]) =>
  pids.flatMap((pid) => readdirSync(`/proc/${pid}/task`).map((tid) => niceOf(pid, Number(tid))));

test("every thread of every process of the instance is set, and its session's autogroup; 0 sets them back", async () => {
  // A session of its own, as an instance is: a shell and, below it, Node (a process with threads).
  const child = spawn(
    '/bin/sh',
    ['-c', `${JSON.stringify(process.execPath)} -e "setInterval(() => {}, 1000)" & wait`],
    { detached: true, stdio: 'ignore' },
  );
  const pid = child.pid!;
  try {
    await waitFor(
      () => descendantsOf(pid).length > 0 && readdirSync(`/proc/${descendantsOf(pid)[0]}/task`).length > 1,
      { what: 'node below the shell, with its threads' },
    );
    const pids = [pid, ...descendantsOf(pid)];
    const own = ownNice();
    // Raising needs CAP_SYS_NICE or RLIMIT_NICE; lowering (a negative boost) never does.
    const boost = canRaisePriorityTo(own - 3) ? 3 : -3;
    assert.is(setInstancePriority(pid, boost), 0);
    assert.ok(threadNices(pids).length > 2, 'threads were found');
    assert.equal([...new Set(threadNices(pids))], [own - boost], 'every thread');
    const autogroup = `/proc/${pid}/autogroup`;
    if (existsSync(autogroup))
      assert.match(readFileSync(autogroup, 'utf8'), new RegExp(` nice ${-boost}\\n`), "the session's autogroup");
    if (boost > 0) {
      assert.is(setInstancePriority(pid, 0), 0);
      assert.equal([...new Set(threadNices(pids))], [own], "back to launchfit's own");
      if (existsSync(autogroup)) assert.match(readFileSync(autogroup, 'utf8'), / nice 0\n/);
    }
    assert.is(os.getPriority(0), own, 'launchfit itself is untouched');
  } finally {
    process.kill(-pid, 'SIGKILL');
  }
});

test('threads raised for a check are set back after they left the instance (an app that killed its wrapper)', async () => {
  const own = ownNice();
  if (!canRaisePriorityTo(own - 3)) {
    console.log('skipped: raising a priority needs CAP_SYS_NICE or RLIMIT_NICE, which this process has not');
    return;
  }
  const child = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { detached: true, stdio: 'ignore' });
  const pid = child.pid!;
  const sleeper = (await waitFor(() => descendantsOf(pid)[0], { what: 'sleep below the shell' }))!;
  try {
    const raised = new Map<number, string>();
    assert.is(setInstancePriority(pid, 3, { raised }), 0);
    assert.equal(threadNices([sleeper]), [own - 3]);
    process.kill(pid, 'SIGKILL'); // sleep is re-parented away: no longer below the instance
    await waitFor(() => !descendantsOf(pid).includes(sleeper), { what: 'the shell to be gone' });
    setInstancePriority(pid, 0, { raised });
    assert.equal(threadNices([sleeper]), [own], 'set back though it escaped');
    assert.is(raised.size, 0);
  } finally {
    process.kill(-pid, 'SIGKILL');
  }
});

test('an instance that is gone: nothing set, nothing thrown', () => {
  assert.not.throws(() => setInstancePriority(2 ** 22 + 12345, 5));
});

test.run();
