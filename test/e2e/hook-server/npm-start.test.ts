// `npm start` runs hook-server as npm's own child (the start script execs node): SIGTERM to
// npm's pid, as a service manager or `kill` sends it, stops hook-server and frees its port,
// instead of leaving it listening under a shell npm no longer waits for.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, ROOT, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

test("SIGTERM to `npm start`'s pid stops hook-server and frees its port", async () => {
  // A config of its own (the first start writes one), so the checkout's ./.shipkit is left alone.
  const folder = tmpDir('shipkit-npm-start-');
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: folder });
  assert.is(await first.stop(), 0);
  const port = await freePort();
  const npm = spawn('npm', ['start', '--', '--listen', `127.0.0.1:${port}`], {
    cwd: ROOT,
    env: { ...process.env, SHIPKIT_CONFIG: path.join(folder, '.shipkit', 'shipkit.yml'), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout!.on('data', (d) => (out += d));
  npm.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => npm.on('exit', (code) => resolve(code)));
  try {
    await waitFor(() => out.includes('listening on'), { timeoutMs: 30_000, what: 'hook-server under npm start' });
    npm.kill('SIGTERM');
    await waitFor(() => out.includes('hook-server stopped'), {
      timeoutMs: 15_000,
      what: `hook-server to stop:\n${out}`,
    });
    await exited;
    const answer = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.is(answer, 'refused', 'nothing listens on the port any more');
  } finally {
    npm.kill('SIGKILL');
  }
});

test.run();
