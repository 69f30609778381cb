// hook-server as a container's PID 1 (unshare --pid): after kill -9 the next start is PID 1
// again and finds its own pid in the data folder's lock. It must take the lock over, not wait
// for itself forever.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scriptCommand, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

/** hook-server as PID 1 of a new pid namespace; resolves with its output once it listens or exits. */
function startAsPid1(cwd: string) {
  const proc = spawn(
    'unshare',
    ['--pid', '--fork', '--kill-child', '--mount-proc', ...scriptCommand('hook-server'), '--listen', '127.0.0.1:0'],
    {
      cwd,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  /** The namespace's PID 1 as this process sees it. */
  const inner = () => Number(spawnSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).stdout.trim());
  return { proc, exited, output: () => out, inner };
}

if (!canUnshare) {
  console.log('SKIP pid1.test.ts: unshare --pid needs privileges this machine does not give');
} else {
  test('kill -9 of hook-server as PID 1, then a new PID 1 starts on the same data folder', async () => {
    const folder = tmpDir('shipkit-pid1-');
    const setup = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: folder });
    assert.is(await setup.stop(), 0);

    const first = startAsPid1(folder);
    try {
      await waitFor(() => first.output().includes('listening on'), { timeoutMs: 30_000, what: 'the first PID 1' });
      const lockFile = path.join(folder, '.shipkit', 'journal', 'hook-server.lock');
      assert.ok(existsSync(lockFile), 'hook-server holds its lock');
      assert.is(JSON.parse(readFileSync(lockFile, 'utf8')).pid, 1, 'the lock names pid 1');
      const inner = first.inner();
      assert.ok(inner > 1, `the namespace's PID 1, seen from here: ${inner}`);
      process.kill(inner, 'SIGKILL');
      await first.exited;
      assert.is(JSON.parse(readFileSync(lockFile, 'utf8')).pid, 1, 'kill -9 left the lock behind');
    } finally {
      first.proc.kill('SIGKILL');
    }

    const second = startAsPid1(folder);
    try {
      await waitFor(() => /listening on|locked by/.test(second.output()), {
        timeoutMs: 30_000,
        what: 'the second PID 1',
      });
      assert.not.match(second.output(), /locked by/);
      assert.match(second.output(), /listening on/);
    } finally {
      const inner = second.inner();
      if (inner > 1) process.kill(inner, 'SIGTERM');
      else second.proc.kill('SIGKILL');
      await second.exited;
    }
  });
}

test.run();
