// The supervisor in-process with real child processes: restarts with backoff and giving up,
// a stop command instead of a signal, stopping a whole process group, and the rotated app log.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { isGroupAlive } from '../../../../lib/core/process-group.ts';
import {
  createRotatingLog,
  createSupervisor,
  shellCommand,
  type SupervisorOptions,
} from '../../../../lib/launchfit/app/supervisor.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

const sink = { write: () => true } as unknown as NodeJS.WritableStream;

function options(dir: string, more: Partial<SupervisorOptions>): SupervisorOptions {
  return {
    exec: 'sleep 30',
    cwd: dir,
    env: {},
    dir,
    kill: 'SIGTERM',
    killTimeoutMs: 3000,
    forever: false,
    backoffMaxMs: 200,
    stableAfterMs: 10_000,
    maxRestarts: 3,
    appLog: path.join(dir, 'app.log'),
    logMaxBytes: 1 << 20,
    logKeep: 2,
    pidFile: path.join(dir, 'app.pid'),
    log: silentLogger,
    echo: sink,
    ...more,
  };
}

test('shellCommand: simple commands are exec-ed, compound ones are left to the shell', () => {
  assert.is(shellCommand('node server.js --port $PORT'), 'exec node server.js --port $PORT');
  assert.is(shellCommand('./migrate && node server.js'), './migrate && node server.js');
  assert.is(shellCommand('a; b'), 'a; b');
  assert.is(shellCommand('a | b'), 'a | b');
  assert.is(shellCommand('exit 3'), 'exit 3');
  assert.is(shellCommand('NODE_ENV=production node server.js'), 'NODE_ENV=production node server.js');
});

test("a real app process does not get launchfit's withheld secret variables; it gets the rest", async () => {
  const dir = tmpDir();
  process.env.LAUNCHFIT_TEST_SECRET = 'do-not-pass';
  process.env.LAUNCHFIT_TEST_PLAIN = 'pass';
  try {
    const sup = createSupervisor(
      options(dir, { exec: 'env > env.txt; sleep 30', withheld: ['LAUNCHFIT_TEST_SECRET'] }),
    );
    assert.ok(await sup.start());
    await waitFor(
      () =>
        existsSync(path.join(dir, 'env.txt')) &&
        readFileSync(path.join(dir, 'env.txt'), 'utf8').includes('LAUNCHFIT_PID='),
      { what: 'the app to write its environment' },
    );
    const env = readFileSync(path.join(dir, 'env.txt'), 'utf8');
    await sup.stop();
    assert.ok(env.includes('LAUNCHFIT_TEST_PLAIN=pass'), env);
    assert.not.ok(env.includes('do-not-pass'), 'the secret reached the app');
  } finally {
    delete process.env.LAUNCHFIT_TEST_SECRET;
    delete process.env.LAUNCHFIT_TEST_PLAIN;
  }
});

test('forever: rapid failures are restarted with backoff, then launchfit gives up', async () => {
  const dir = tmpDir();
  const sup = createSupervisor(options(dir, { exec: 'echo started; echo run >> runs.txt; exit 1', forever: true }));
  await sup.start();
  await waitFor(() => sup.info().state === 'failed', { what: 'giving up', timeoutMs: 20_000 });
  assert.is(readFileSync(path.join(dir, 'runs.txt'), 'utf8').trim().split('\n').length, 4, 'first start + 3 restarts');
  assert.is(sup.info().restarts, 3);
  assert.match(readFileSync(path.join(dir, 'app.log'), 'utf8'), /started/);
  await sup.stop();
});

test('probation: an app that exits at once fails its start and is not restarted', async () => {
  const dir = tmpDir();
  const sup = createSupervisor(options(dir, { exec: 'exit 3', forever: true }));
  assert.is(await sup.start(2000), false);
  assert.is(sup.info().state, 'exited');
  assert.is(sup.info().lastExit!.code, 3);
  const ok = createSupervisor(options(dir, { exec: 'sleep 30' }));
  assert.is(await ok.start(300), true);
  await ok.stop();
  assert.is(ok.info().state, 'stopped');
  assert.not.ok(existsSync(path.join(dir, 'app.pid')));
});

test('kill as a command: it gets the app pid; the whole group is stopped', async () => {
  const dir = tmpDir();
  const sup = createSupervisor(
    options(dir, {
      exec: 'sleep 30 & sleep 31 & wait',
      kill: 'echo "$LAUNCHFIT_APP_PID" > stop-called; kill -TERM -"$LAUNCHFIT_APP_PID"',
    }),
  );
  await sup.start();
  await new Promise((r) => setTimeout(r, 200));
  const pid = sup.info().pid!; // the app's, once the instance wrapper has named it
  const t0 = Date.now();
  await sup.stop();
  assert.ok(Date.now() - t0 < 3000, 'stopped by the command, not by the SIGKILL fallback');
  assert.is(readFileSync(path.join(dir, 'stop-called'), 'utf8').trim(), String(pid));
  assert.not.ok(isGroupAlive(pid), 'no process of the group is left running');
});

test('the app log rotates past its size and keeps log_keep generations', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'app.log');
  const log = createRotatingLog(file, 100, 2);
  for (let i = 0; i < 10; i++) log.write(Buffer.from(`${String(i).repeat(60)}\n`));
  log.close();
  assert.ok(existsSync(`${file}.1`) && existsSync(`${file}.2`));
  assert.not.ok(existsSync(`${file}.3`));
  assert.match(readFileSync(file, 'utf8'), /^9{60}\n$/);
  assert.match(readFileSync(`${file}.1`, 'utf8'), /^8{60}\n$/);
  writeFileSync(file, '');
});

test.run();
