// @deno
// hooks.before_symlink against a running `launchfit run`, with real processes: a hook that
// leaves a background child behind does not hold the update, a hook that times out is killed
// with everything it started, and a hook orphaned by a kill -9 of launchfit is stopped when
// launchfit starts again, before anything else (not run a second time beside the orphan).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootId, isGroupAlive, processStartTime, signalGroup } from '../../../lib/core/process-group.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { stopLeftoverHook } from '../../../lib/launchfit/install/hooks.ts';
import { deployPaths } from '../../../lib/launchfit/deploy-folder/state.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import {
  askApp,
  currentOf,
  isRunning,
  makeWorld,
  startLaunchfit,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

let w: World;
let lf: Launchfit;
let yml: string;
const socket = () => path.join(w.deploy, '.launchfit/control.sock');
const update = (timeoutMs = 60_000) => requestOverSocket(socket(), 'POST', '/update', timeoutMs);
const pidIn = (file: string) => Number(readFileSync(path.join(w.deploy, file), 'utf8').trim());
const useHooks = (hooks: string) => writeFileSync(path.join(w.deploy, 'launchify.yml'), `${yml}hooks:\n${hooks}`);

// The hook scripts ship in the release and write the pids of what they start into the deploy folder.
const SCRIPTS = {
  'bg.sh': '(sleep 1000 & echo $! > "$LAUNCHFIT_DIR/bg.pid"); exit 0\n',
  // Sleeps as long as hook-sleep says, then marks that it finished (a migration's last step).
  'slow.sh':
    'echo $$ > "$LAUNCHFIT_DIR/hook.pid"; sleep 1000 & echo $! > "$LAUNCHFIT_DIR/child.pid"; echo started >> "$LAUNCHFIT_DIR/hook-runs"; sleep "$(cat "$LAUNCHFIT_DIR/hook-sleep")"; echo finished >> "$LAUNCHFIT_DIR/hook-runs"\n',
  'hang.sh':
    'sleep 1000 & echo $! > "$LAUNCHFIT_DIR/child.pid"; echo $$ > "$LAUNCHFIT_DIR/hook.pid"; echo started >> "$LAUNCHFIT_DIR/hook-runs"; wait\n',
};

test.before(async () => {
  w = await makeWorld();
  await w.publish('1.0');
  w.writeConfig();
  yml = readFileSync(path.join(w.deploy, 'launchify.yml'), 'utf8');
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(w.deploy);
});

test.after(async () => {
  await lf.stop();
  for (const file of ['bg.pid', 'child.pid', 'hook.pid']) {
    if (existsSync(path.join(w.deploy, file)))
      try {
        process.kill(pidIn(file), 'SIGKILL');
      } catch {
        /* gone */
      }
  }
  await w.server.close();
});

test('a hook that leaves a background child does not hold the update; the child is stopped', async () => {
  await w.publish('1.1', { files: SCRIPTS });
  // Before, the update waited for the child (1000 s), hooks.timeout or not. Now it answers,
  // ok (so the hook was not killed at its timeout), long before the client gives up.
  useHooks('  before_symlink: "sh bg.sh"\n  timeout: 60\n');
  const answer = await update(40_000).catch((error: Error) => ({
    body: { ok: false, error: `no answer within 40 s: ${error.message}` },
  }));
  assert.is(answer?.body.ok, true, JSON.stringify(answer?.body));
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  await waitFor(() => askApp(w.appPort).then((v) => v === '1.1'), { what: 'the app to answer 1.1' });
  const child = pidIn('bg.pid');
  await waitFor(() => !isRunning(child), {
    timeoutMs: 5000,
    what: `the hook's background child ${child} to be stopped`,
  });
  assert.not.ok(
    existsSync(path.join(w.deploy, '.launchfit/hook.json')),
    'the hook record is removed once its group is gone',
  );
});

test('a hook past hooks.timeout is killed with everything it started', async () => {
  await w.publish('1.2', { files: SCRIPTS });
  useHooks('  before_symlink: "sh hang.sh"\n  timeout: 1\n');
  const answer = await update(20_000);
  assert.is(answer?.body.ok, false, JSON.stringify(answer?.body));
  assert.match(
    answer!.body.error!,
    /hooks\.before_symlink "sh hang\.sh" did not finish within hooks\.timeout \(1 s\) and was killed/,
  );
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  for (const file of ['hook.pid', 'child.pid']) {
    const pid = pidIn(file);
    await waitFor(() => !isRunning(pid), { timeoutMs: 5000, what: `${file} (${pid}) to be gone` });
  }
});

test('a hook orphaned by kill -9 of launchfit is stopped on restart before it finishes, and the update then completes once', async () => {
  await w.publish('1.3', { files: SCRIPTS });
  useHooks('  before_symlink: "sh slow.sh"\n  timeout: 600\n');
  const runs = () => readFileSync(path.join(w.deploy, 'hook-runs'), 'utf8');
  writeFileSync(path.join(w.deploy, 'hook-runs'), '');
  writeFileSync(path.join(w.deploy, 'hook-sleep'), '10');
  for (const file of ['hook.pid', 'child.pid']) rmSync(path.join(w.deploy, file), { force: true });
  void update().catch(() => {}); // the answer never comes: launchfit is killed meanwhile
  await waitFor(() => runs() === 'started\n' && existsSync(path.join(w.deploy, 'child.pid')), {
    what: 'the hook to start',
  });
  const orphanWouldFinish = Date.now() + 10_000;
  const record = JSON.parse(readFileSync(path.join(w.deploy, '.launchfit/hook.json'), 'utf8')) as {
    pgid: number;
    startTime: string;
  };
  const hook = pidIn('hook.pid');
  const child = pidIn('child.pid');
  assert.ok(record.pgid > 1, 'the record names the hook group');
  assert.match(record.startTime, /^\d+$/, 'and the start time of its leader');
  process.kill(lf.child.pid!, 'SIGKILL');
  await lf.exited;
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(
    isRunning(hook) && isRunning(child),
    'the hook and its child outlive the killed launchfit (they are orphans now)',
  );

  lf = await startLaunchfit(w.deploy);
  // By the time `run` is ready, the orphan group is gone and the hook has not run again.
  assert.not.ok(isRunning(hook), `the orphaned hook ${hook} was stopped`);
  assert.not.ok(isRunning(child), `the orphaned hook's child ${child} was stopped`);
  assert.match(lf.output(), /stopping the before_symlink hook left running by a previous launchfit/);
  assert.not.ok(existsSync(path.join(w.deploy, '.launchfit/hook.json')), 'the record is removed');
  assert.is(runs(), 'started\n');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  assert.not.ok(
    existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.3')),
    'the half-installed release was cleared',
  );

  // The next update runs the same hook once, alone, to the end, and installs.
  writeFileSync(path.join(w.deploy, 'hook-sleep'), '0');
  const answer = await update();
  assert.is(answer?.body.ok, true, JSON.stringify(answer?.body));
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.3');
  // Past the time the orphan would have finished: its marker never came, only the rerun's.
  await new Promise((r) => setTimeout(r, Math.max(0, orphanWouldFinish + 1000 - Date.now())));
  assert.is(runs(), 'started\nstarted\nfinished\n');
});

test("a recorded group is stopped only when it is still the hook's: leader start time, else LAUNCHFIT_HOOK_ID", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lf-hook-record-'));
  const paths = deployPaths(dir);
  mkdirSync(paths.meta, { recursive: true });
  const groups: number[] = [];
  const startGroup = (script: string, env: NodeJS.ProcessEnv = process.env) =>
    new Promise<{ pgid: number; firstLine: string }>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', script], { detached: true, env, stdio: ['ignore', 'pipe', 'ignore'] });
      child.once('error', reject);
      child.stdout!.once('data', (data: Buffer) =>
        resolve({ pgid: child.pid!, firstLine: data.toString().split('\n')[0] }),
      );
      groups.push(child.pid!);
    });
  const record = (r: object) =>
    writeFileSync(
      paths.hookFile,
      JSON.stringify({
        id: randomBytes(8).toString('hex'),
        hook: 'x',
        cwd: dir,
        startedAt: '',
        bootId: bootId(),
        ...r,
      }),
    );
  try {
    // Another program's group that got the recorded pgid (the leader's start time differs): left alone.
    const other = await startGroup('echo up; exec sleep 60');
    record({ pgid: other.pgid, startTime: String(Number(processStartTime(other.pgid)) + 1) });
    assert.is(await stopLeftoverHook(paths, silentLogger), false);
    assert.ok(isGroupAlive(other.pgid), 'a group with a reused id is not touched');
    assert.not.ok(existsSync(paths.hookFile), 'the stale record is removed');
    // The recorded leader, same start time: stopped (no LAUNCHFIT_HOOK_ID needed).
    record({ pgid: other.pgid, startTime: processStartTime(other.pgid) });
    assert.is(await stopLeftoverHook(paths, silentLogger), true);
    assert.not.ok(isGroupAlive(other.pgid), 'the recorded group was stopped');
    // The leader gone, its child alive: the child's LAUNCHFIT_HOOK_ID tells the group is ours.
    const id = randomBytes(8).toString('hex');
    const orphan = await startGroup('sleep 60 & echo $!', { ...process.env, LAUNCHFIT_HOOK_ID: id });
    await waitFor(() => processStartTime(orphan.pgid) === null, { what: 'the leader to exit and be reaped' });
    assert.ok(isRunning(Number(orphan.firstLine)));
    record({ pgid: orphan.pgid, id, startTime: '1' });
    assert.is(await stopLeftoverHook(paths, silentLogger), true);
    assert.not.ok(isRunning(Number(orphan.firstLine)), 'the leaderless group was stopped');
  } finally {
    for (const pgid of groups) signalGroup(pgid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
