// A preview's limits on this machine's real cgroups (lib/previews/limits.ts): an app that grows past
// its memory is killed by the kernel and counted, while another preview's app keeps running; an
// app that spins gets its share of one CPU and no more. Needs root and a writable cgroup
// filesystem (v1 or v2); elsewhere the tests say why they are skipped.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { messageOf } from '../../../lib/core/errors.ts';
import { oomKills, prepareLimits, removeLimits } from '../../../lib/previews/limits.ts';
import { waitFor } from '../../_helpers/common.ts';

const ROOT = '/sys/fs/cgroup';
const unit = (name: string) => `test-${process.pid}-${name}`;

function writable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  const probe = path.join(
    existsSync(path.join(ROOT, 'cgroup.controllers')) ? ROOT : path.join(ROOT, 'memory'),
    `shipkit-probe-${process.pid}`,
  );
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return undefined;
  } catch (error) {
    return `no writable cgroup filesystem at ${ROOT} (${messageOf(error)})`;
  }
}
const why = writable();
if (why) console.log(`previews-limits: skipped: ${why}`);

const started: ChildProcess[] = [];
function run(command: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore' });
  started.push(child);
  return child;
}
const exited = (child: ChildProcess) =>
  new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve(child.signalCode ?? child.exitCode)
      : child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

test.after(async () => {
  for (const child of started) child.kill('SIGKILL');
  await Promise.all(started.map(exited));
  for (const name of ['grow', 'calm', 'spin']) await removeLimits(unit(name));
});

test('past its memory the app is killed and counted; the other preview keeps running', async () => {
  if (why) return;
  const grow = (await prepareLimits(
    unit('grow'),
    { memoryBytes: 64 << 20 },
    `exec node -e "const a = []; setInterval(() => a.push(Buffer.alloc(8 << 20, 1)), 20)"`,
    { systemd: false },
  ))!;
  const calm = (await prepareLimits(unit('calm'), { memoryBytes: 128 << 20 }, 'exec sleep 30', { systemd: false }))!;
  const growing = run(grow.command);
  const sleeping = run(calm.command);
  const end = await Promise.race([exited(growing), new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
  assert.is(end, 'SIGKILL', 'killed by the kernel');
  assert.ok((await oomKills(grow)) >= 1, `oom_kill counted: ${await oomKills(grow)}`);
  assert.is(sleeping.exitCode, null, 'the other app runs on');
  assert.is(await oomKills(calm), 0);
});

test('an app that spins gets its share of one CPU', async () => {
  if (why) return;
  const plan = (await prepareLimits(unit('spin'), { cpuPercent: 20 }, 'exec node -e "for (;;) {}"', {
    systemd: false,
  }))!;
  const child = run(plan.command);
  await waitFor(
    () => existsSync(`/proc/${child.pid}`) && readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('node'),
    { what: 'node to start' },
  );
  const before = cpuSeconds(child.pid!);
  await new Promise((r) => setTimeout(r, 3000));
  const used = cpuSeconds(child.pid!) - before;
  assert.ok(used < 3 * 0.2 * 1.5, `used ${used.toFixed(2)} s of CPU in 3 s (20 % is 0.6 s)`);
  assert.ok(used > 0.1, `it ran at all: ${used.toFixed(2)} s`);
});

test.run();
