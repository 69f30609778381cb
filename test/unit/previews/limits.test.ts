// A preview's limits (lib/previews/limits.ts) against a folder laid out as each cgroup filesystem
// is: the values written where the kernel reads them, the app's command wrapped to join its
// cgroups (or systemd's scope) before it runs, the OOM count read back, bad names refused.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../lib/core/errors.ts';
import { oomKills, prepareLimits, removeLimits, shellQuote } from '../../../lib/previews/limits.ts';
import { tmpDir } from '../../_helpers/common.ts';

const read = (file: string) => readFileSync(file, 'utf8');

test('no limits: nothing made, the command as it is', async () => {
  const root = tmpDir('shipkit-cgroup-');
  assert.is(await prepareLimits('octo__site-pr-1', {}, 'node server.js', { root, systemd: false }), undefined);
});

test('cgroup v1: memory and cpu hierarchies, the shell joins both, then execs the app', async () => {
  const root = tmpDir('shipkit-cgroup-');
  mkdirSync(path.join(root, 'memory'));
  mkdirSync(path.join(root, 'cpu'));
  const plan = (await prepareLimits('octo__site-pr-2', { memoryBytes: 512 << 20, cpuPercent: 50 }, 'node server.js', {
    root,
    systemd: false,
  }))!;
  const mem = path.join(root, 'memory/shipkit-previews/octo__site-pr-2');
  const cpu = path.join(root, 'cpu/shipkit-previews/octo__site-pr-2');
  assert.is(plan.how, 'cgroup v1');
  assert.equal(plan.dirs, [mem, cpu]);
  assert.is(read(path.join(mem, 'memory.limit_in_bytes')), String(512 << 20));
  assert.is(read(path.join(cpu, 'cpu.cfs_quota_us')), '50000');
  assert.is(read(path.join(cpu, 'cpu.cfs_period_us')), '100000');
  assert.is(
    plan.command,
    `echo $$ > '${mem}/cgroup.procs' && echo $$ > '${cpu}/cgroup.procs' && exec /bin/sh -c 'node server.js'`,
  );
  writeFileSync(path.join(mem, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
  assert.is(await oomKills(plan), 3);
  assert.equal(await removeLimits('octo__site-pr-2', root), [
    // A real cgroup folder holds only the kernel's files and goes with rmdir; this one is a plain folder.
    `${path.join(root, 'memory/shipkit-previews/octo__site-pr-2')}: ${errorOf(mem)}`,
    `${path.join(root, 'cpu/shipkit-previews/octo__site-pr-2')}: ${errorOf(cpu)}`,
  ]);
});

function errorOf(dir: string): string {
  return `ENOTEMPTY: directory not empty, rmdir '${dir}'`;
}

test('cgroup v2: the controllers enabled down to the preview, memory.max and cpu.max', async () => {
  const root = tmpDir('shipkit-cgroup-');
  writeFileSync(path.join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  const plan = (await prepareLimits('octo__site-pr-3', { memoryBytes: 64 << 20, cpuPercent: 25 }, 'npm start', {
    root,
    systemd: false,
  }))!;
  const dir = path.join(root, 'shipkit-previews/octo__site-pr-3');
  assert.is(plan.how, 'cgroup v2');
  assert.is(read(path.join(root, 'cgroup.subtree_control')), '+memory +cpu');
  assert.is(read(path.join(root, 'shipkit-previews/cgroup.subtree_control')), '+memory +cpu');
  assert.is(read(path.join(dir, 'memory.max')), String(64 << 20));
  assert.is(read(path.join(dir, 'cpu.max')), '25000 100000');
  writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n');
  assert.is(await oomKills(plan), 1);
});

test("with systemd: a transient scope around the app's command, no folder made", async () => {
  const root = tmpDir('shipkit-cgroup-');
  const plan = (await prepareLimits('octo__site-pr-4', { cpuPercent: 10 }, "node -e 'x'", { root, systemd: true }))!;
  assert.is(plan.how, 'systemd');
  assert.is(
    plan.command,
    `exec systemd-run --scope --quiet --collect --unit shipkit-previews-octo__site-pr-4 -p CPUQuota=10% -- /bin/sh -c ${shellQuote("node -e 'x'")}`,
  );
  assert.not.ok(existsSync(path.join(root, 'shipkit-previews')));
});

test('a unit name that could leave its folder, and a machine without cgroups: refused with a clear error', async () => {
  const root = tmpDir('shipkit-cgroup-');
  for (const unit of ['../x', 'a/b', '', 'a b'])
    await prepareLimits(unit, { cpuPercent: 5 }, 'x', { root, systemd: false }).then(
      () => assert.unreachable(unit),
      (e) => assert.instance(e, WorkError),
    );
  await prepareLimits('ok', { cpuPercent: 5 }, 'x', { root, systemd: false }).then(
    () => assert.unreachable('no cgroups'),
    (e) => assert.match(e.message, /need systemd or the cgroup filesystem/),
  );
  assert.is(shellQuote("it's"), `'it'\\''s'`);
});

test.run();
