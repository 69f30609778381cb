// app.listen entries, binding (all or nothing, port in use named), and the refusal under Deno.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bindSockets, takeSockets } from '../../../../lib/launchfit/app/sockets.ts';
import { parseListenSpec } from '../../../../lib/launchfit/deploy-folder/listen-spec.ts';
import { findPerl } from '../../../../lib/launchfit/app/instance.ts';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { ROOT, freePort, tmpDir } from '../../../_helpers/common.ts';

test('launchify.yml: app.listen and app.health are checked, naming the key', () => {
  const parse = (app: string) => parseLaunchConfigText(`app:\n${app}`, '/d/launchify.yml');
  assert.throws(() => parse('  listen: [example.com:80]\n'), /app\.listen\.0: .*IP address/);
  assert.throws(() => parse('  listen: [127.0.0.1:80, 127.0.0.1:80]\n'), /lists 127\.0\.0\.1:80 twice/);
  assert.throws(() => parse('  health:\n    interval: 1\n'), /app\.health\.http: is missing/);
  assert.throws(() => parse('  health:\n    http: ftp://x/\n'), /must be an http:\/\/ URL/);
  assert.throws(() => parse('  health:\n    http: http://127.0.0.1/up\n    retries: 3\n'), /retries/);
  const c = parse('  listen: 127.0.0.1:8080\n  health:\n    http: http://127.0.0.1:8080/up\n  drain: 5\n');
  assert.equal(c.app.health, { url: 'http://127.0.0.1:8080/up', intervalSec: 0.5, timeoutSec: 2, failures: 3 });
  assert.is(c.app.listen.length, 1);
  assert.is(c.app.drainSec, 5);
});

test('bindSockets: a port in use is named, and what was bound before it is closed', async () => {
  const port = await freePort();
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
  const sock = path.join(tmpDir(), 'a.sock');
  const free = await freePort();
  try {
    await bindSockets([
      { spec: parseListenSpec(`127.0.0.1:${free}`, '/'), name: 'listen' },
      { spec: parseListenSpec(`127.0.0.1:${port}`, '/'), name: 'listen' },
    ]);
    assert.unreachable('bound a port in use');
  } catch (error) {
    assert.match(
      (error as Error).message,
      new RegExp(`app\\.listen 127\\.0\\.0\\.1:${port}: the port is already in use`),
    );
  } finally {
    await new Promise((r) => squatter.close(r));
  }
  // The first port was released: it can be bound again, and so can a Unix socket after close.
  const set = await bindSockets([
    { spec: parseListenSpec(`127.0.0.1:${free}`, '/'), name: 'listen' },
    { spec: parseListenSpec(sock, '/'), name: 'listen' },
  ]);
  const answered = await new Promise<boolean>((resolve) =>
    net
      .connect(free, '127.0.0.1')
      .once('connect', function (this: net.Socket) {
        this.destroy();
        resolve(true);
      })
      .once('error', () => resolve(false)),
  );
  assert.ok(answered, 'the socket listens (the connection waits in the queue)');
  await set.close();
});

test('under Deno, app.listen is refused with a clear error', () => {
  const script = `import { bindSockets } from '${path.join(ROOT, 'lib/launchfit/app/sockets.ts')}';
import { parseListenSpec } from '${path.join(ROOT, 'lib/launchfit/deploy-folder/listen-spec.ts')}';
try { await bindSockets([{ spec: parseListenSpec('127.0.0.1:1', '/'), name: 'listen' }]); console.log('bound'); } catch (e) { console.log(e.name + ': ' + e.message); }`;
  const r = spawnSync(path.join(ROOT, 'node_modules/.bin/deno'), ['eval', '--ext=ts', script], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  assert.match(
    r.stdout,
    /ConfigError: app\.listen needs launchfit to run under Node: Deno cannot hand a listening socket to a child process/,
    r.stdout + r.stderr,
  );
});

test('takeSockets: the listening socket another process holds at fd 3 is taken over (still listening), and refused for another address', async () => {
  const port = await freePort();
  const spec = parseListenSpec(`127.0.0.1:${port}`, '/');
  const set = await bindSockets([{ spec, name: 'listen' }]);
  const holder = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', set.sockets[0].fd] });
  await set.close(); // the holder has the only copy now
  try {
    const other = parseListenSpec(`127.0.0.1:${port === 65535 ? port - 1 : port + 1}`, '/');
    const wrong = await takeSockets(holder.pid!, [other], findPerl()!);
    assert.not.ok(wrong.handles);
    assert.match(wrong.reason!, `fd 3 is not bound to ${other.text}`);
    const { handles, reason } = await takeSockets(holder.pid!, [spec], findPerl()!);
    assert.ok(handles, reason);
    holder.kill('SIGKILL');
    // Ours now: a connection is queued on it (accepted by nobody), not refused.
    const connected = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    assert.ok(connected, 'the taken socket still listens after its holder is gone');
    for (const h of handles!) h.close();
  } finally {
    holder.kill('SIGKILL');
  }
});

test.run();
