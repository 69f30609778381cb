// hooks.before_symlink (lib/launchfit/install/hooks.ts) run for real: in the release's folder with
// LAUNCHFIT_* set and launchfit's secrets withheld, its group on record before it starts; a failing,
// timed-out or leftover-leaving hook; and at start, a hook a killed launchfit left running stopped
// only when it is ours (its leader's start time, else its LAUNCHFIT_HOOK_ID), never a stranger.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../../lib/core/errors.ts';
import { createLogger } from '../../../../lib/core/log.ts';
import { bootId, isGroupAlive, processStartTime } from '../../../../lib/core/process-group.ts';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { deployPaths } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { runBeforeSymlinkHook, stopLeftoverHook, type HookContext } from '../../../../lib/launchfit/install/hooks.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

const INFO = { version: '1.2.3', file: 'app-gnu-linux-1.2.3.tar.gz' };

/** A deploy folder whose launchify.yml has `hook` (none: no hooks key), a release folder, and the log lines. */
function host(hook?: string, timeout = 20) {
  const dir = tmpDir('shipkit-hooks-');
  const paths = deployPaths(dir);
  mkdirSync(paths.tmp, { recursive: true });
  const release = path.join(paths.releases, 'app-1.2.3');
  mkdirSync(release, { recursive: true });
  const yml = [
    'app:',
    '  exec: node app.js',
    'updates:',
    '  server: http://127.0.0.1:9/',
    'control:',
    '  secret: env:HOOK_TEST_CONTROL_SECRET',
    ...(hook ? ['hooks:', `  before_symlink: ${JSON.stringify(hook)}`, `  timeout: ${timeout}`] : []),
  ].join('\n');
  const lines: string[] = [];
  const log = createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true });
  const ctx: HookContext = { paths, config: parseLaunchConfigText(`${yml}\n`, path.join(dir, 'launchify.yml')), log };
  return { dir, paths, release, ctx, lines };
}

test.before(() => {
  process.env.HOOK_TEST_CONTROL_SECRET = 'the-control-secret';
});

test('no hook: nothing runs', async () => {
  const { ctx, release, paths } = host();
  assert.is(await runBeforeSymlinkHook(ctx, release, INFO), false);
  assert.is(existsSync(paths.hookLog), false);
});

test("the hook runs in the release's folder with LAUNCHFIT_* set, without the control secret, its group recorded first", async () => {
  const script =
    'pwd > seen.pwd; env > seen.env; cp "$LAUNCHFIT_DIR/.launchfit/hook.json" seen.record; echo hello from the hook';
  const { ctx, release, paths, dir, lines } = host(script);
  assert.is(await runBeforeSymlinkHook(ctx, release, INFO), true);
  assert.is(readFileSync(path.join(release, 'seen.pwd'), 'utf8').trim(), release);
  const env = Object.fromEntries(
    readFileSync(path.join(release, 'seen.env'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.equal(
    [env.LAUNCHFIT_DIR, env.LAUNCHFIT_RELEASE, env.LAUNCHFIT_VERSION, env.LAUNCHFIT_PID],
    [dir, release, '1.2.3', String(process.pid)],
  );
  assert.is(env.HOOK_TEST_CONTROL_SECRET, undefined, "launchfit's secret is withheld");
  const record = JSON.parse(readFileSync(path.join(release, 'seen.record'), 'utf8'));
  assert.is(record.id, env.LAUNCHFIT_HOOK_ID);
  assert.is(record.hook, script);
  assert.is(record.cwd, release);
  assert.ok(Number.isInteger(record.pgid) && record.pgid > 1);
  assert.is(existsSync(paths.hookFile), false, 'the record is gone once the hook ended');
  assert.match(lines.join(''), /hook output: hello from the hook/);
});

async function failure(
  hook: string,
  timeout = 20,
): Promise<{ message: string; ms: number; paths: ReturnType<typeof host>['paths'] }> {
  const { ctx, release, paths } = host(hook, timeout);
  const t0 = Date.now();
  const error = await runBeforeSymlinkHook(ctx, release, INFO).catch((e: unknown) => e);
  assert.instance(error, WorkError);
  return { message: (error as Error).message, ms: Date.now() - t0, paths };
}

test('a hook that fails, is killed, or runs past hooks.timeout aborts the update, saying which', async () => {
  const exited = await failure('echo about to fail; exit 3');
  assert.is(
    exited.message,
    'hooks.before_symlink "echo about to fail; exit 3" exited with 3; the update was aborted and the running app left alone.',
  );
  assert.match((await failure('kill -TERM $$')).message, / was killed by SIGTERM;/);
  const slow = await failure('sleep 30', 1);
  assert.match(slow.message, /did not finish within hooks\.timeout \(1 s\) and was killed/);
  assert.ok(slow.ms < 10_000, `${slow.ms} ms`);
  assert.is(existsSync(slow.paths.hookFile), false);
});

test('what a hook leaves running in its group is stopped, with a warning', async () => {
  const { ctx, release, lines } = host('sleep 60 & echo $! > leftover.pid');
  assert.is(await runBeforeSymlinkHook(ctx, release, INFO), true);
  const pid = Number(readFileSync(path.join(release, 'leftover.pid'), 'utf8'));
  await waitFor(() => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), {
    timeoutMs: 5000,
  });
  assert.match(lines.join(''), /left processes running in its group; stopping them/);
});

/** A detached group running `script` with LAUNCHFIT_HOOK_ID=`id`: its pgid. */
function group(script: string, id: string): { pgid: number; ended: Promise<void> } {
  const child = spawn('/bin/sh', ['-c', script], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, LAUNCHFIT_HOOK_ID: id },
  });
  const ended = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { pgid: child.pid!, ended };
}

const record = (pgid: number, id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ pgid, id, hook: 'sleep 60', cwd: '/', startedAt: new Date().toISOString(), ...extra });

test('stopLeftoverHook: no record, a record of a group that is gone: nothing stopped, the record removed', async () => {
  const { paths, ctx } = host();
  assert.is(await stopLeftoverHook(paths, ctx.log), false);
  const gone = group('exit 0', 'gone');
  await gone.ended;
  await writeFile(paths.hookFile, record(gone.pgid, 'gone'));
  assert.is(await stopLeftoverHook(paths, ctx.log), false);
  assert.is(existsSync(paths.hookFile), false);
  await writeFile(paths.hookFile, '{ torn');
  assert.is(await stopLeftoverHook(paths, ctx.log), false);
});

test('stopLeftoverHook: our leader by its start time, or our orphans by their LAUNCHFIT_HOOK_ID, are stopped', async () => {
  const { paths, ctx } = host();
  const ours = group('exec sleep 60', 'our-hook-1');
  await waitFor(() => processStartTime(ours.pgid) !== null, { timeoutMs: 5000 });
  await writeFile(
    paths.hookFile,
    record(ours.pgid, 'our-hook-1', { startTime: processStartTime(ours.pgid), bootId: bootId() }),
  );
  assert.is(await stopLeftoverHook(paths, ctx.log), true);
  await ours.ended;
  assert.is(existsSync(paths.hookFile), false);
  // The leader gone, its child lives on in the group carrying the hook's id.
  const orphans = group('sleep 60 & exit 0', 'our-hook-2');
  await orphans.ended;
  assert.ok(isGroupAlive(orphans.pgid));
  await writeFile(paths.hookFile, record(orphans.pgid, 'our-hook-2', { startTime: '1', bootId: bootId() }));
  assert.is(await stopLeftoverHook(paths, ctx.log), true);
  await waitFor(() => !isGroupAlive(orphans.pgid), { timeoutMs: 5000 });
});

test('stopLeftoverHook: a live group that is not ours (a reused pgid) is left alone', async () => {
  const { paths, ctx } = host();
  const stranger = group('exec sleep 60', 'someone-else');
  try {
    await waitFor(() => processStartTime(stranger.pgid) !== null, { timeoutMs: 5000 });
    // Its leader started at another time than recorded.
    await writeFile(paths.hookFile, record(stranger.pgid, 'our-hook-3', { startTime: '12345', bootId: bootId() }));
    assert.is(await stopLeftoverHook(paths, ctx.log), false);
    // No start time recorded, and no process carries our id.
    await writeFile(paths.hookFile, record(stranger.pgid, 'our-hook-4'));
    assert.is(await stopLeftoverHook(paths, ctx.log), false);
    assert.ok(isGroupAlive(stranger.pgid), 'the stranger still runs');
    assert.is(existsSync(paths.hookFile), false);
  } finally {
    process.kill(-stranger.pgid, 'SIGKILL');
  }
});

test.run();
