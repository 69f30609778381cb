// The test runner (test/run.ts) stopped by SIGTERM, as CI or a terminal stops `npm test`: the
// test file running then and every process it started are ended, not left behind.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, tmpDir, waitFor } from '../../_helpers/common.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('SIGTERM to the runner ends the running test file and what it started', async () => {
  const dir = tmpDir('shipkit-runner-');
  const pidFile = path.join(dir, 'sleep.pid');
  writeFileSync(
    path.join(dir, 'hang.test.ts'),
    `import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
writeFileSync(${JSON.stringify(pidFile)}, String(sleeper.pid));
setInterval(() => {}, 1000);
`,
  );
  const runner = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/run.ts'), '--sources'], {
    cwd: ROOT,
    env: { ...process.env, TEST_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  runner.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => runner.on('exit', (code) => resolve(code)));
  let sleeper = 0;
  try {
    await waitFor(
      () => {
        try {
          sleeper = Number(readFileSync(pidFile, 'utf8'));
        } catch {
          return false;
        }
        return sleeper > 0;
      },
      { timeoutMs: 30_000, what: 'the test file to start its process' },
    );
    assert.ok(alive(sleeper));
    runner.kill('SIGTERM');
    assert.is(await exited, 130);
    await waitFor(() => !alive(sleeper), { timeoutMs: 5000, what: `sleep ${sleeper} to end` });
    assert.match(out, /SIGTERM: stopped 1 running test file/);
  } finally {
    runner.kill('SIGKILL');
    if (sleeper && alive(sleeper)) process.kill(sleeper, 'SIGKILL');
  }
});

test.run();
