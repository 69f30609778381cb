// @deno
// app.listen: `launchfit run` binds the sockets once and hands them to the app as fds 3… with
// LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES. A port in use stops it before anything starts; the
// sockets outlive app crashes (connections wait in the kernel's queue meanwhile).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RUNTIME, freePort, runScript, waitFor } from '../../_helpers/common.ts';
import { get } from '../../fixtures/launchfit/load.ts';
import { makeWorld, startLaunchfit, statusOf, type Launchfit, type World } from '../../fixtures/launchfit/world.ts';

const SOCKET_APP = readFileSync(path.join(import.meta.dirname, '../../fixtures/launchfit/socket-app.cjs'), 'utf8');
const FD3_APP = readFileSync(path.join(import.meta.dirname, '../../fixtures/launchfit/fd3-app.cjs'), 'utf8');
const yml =
  'app:\n  exec: node server.cjs\n  healthy_after: 1\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n';

// Deno cannot hand a listening socket to a child process, so app.listen is refused there by
// design: under Deno the socket tests are skipped (saying so) and the refusal itself is checked.
const DENO = RUNTIME === 'deno';
if (DENO)
  console.log(
    'launchfit-listen: socket tests skipped under Deno (app.listen is refused there by design); checking the refusal',
  );
const onNode = DENO ? test.skip : test;

let w: World;
let lf: Launchfit | undefined;
let port: number;
let port6: number;
let unixPath: string;
const ipv6 = await new Promise<boolean>((resolve) => {
  const s = net
    .createServer()
    .once('error', () => resolve(false))
    .listen(0, '::1', () => s.close(() => resolve(true)));
});

test.before(async () => {
  w = await makeWorld();
  port = await freePort();
  port6 = await freePort();
  unixPath = path.join(w.base, 'app.sock');
  await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml });
  const listen = [`127.0.0.1:${port}`, ...(ipv6 ? [`'[::1]:${port6}'`] : []), unixPath];
  w.writeConfig('', `  listen: [${listen.join(', ')}]\n`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
});

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w.server.close();
});

onNode('a port already in use: exit 2, the message names it, nothing is started', async () => {
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
  try {
    const r = await runScript('launchfit', ['run', '--dir', w.deploy], { env: { LAUNCHFIT_INTERVAL_MS: '3600000' } });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `app\\.listen 127\\.0\\.0\\.1:${port}: the port is already in use by another process \\(EADDRINUSE\\)`,
      ),
    );
    assert.not.match(r.stderr, /app started/);
    assert.not.ok(existsSync(path.join(w.deploy, '.launchfit/app.pid')), 'no app was started');
    assert.not.ok(existsSync(unixPath), 'the Unix socket bound before the failure was closed and removed');
  } finally {
    await new Promise((r) => squatter.close(r));
  }
});

onNode('the app serves on the sockets launchfit hands it (TCP, IPv6, Unix), LISTEN_PID is its own pid', async () => {
  lf = await startLaunchfit(w.deploy);
  const tcp = await waitFor(
    async () => {
      const a = await get({ port });
      return a.status === 200 ? a : undefined;
    },
    { what: 'the app on the TCP socket' },
  );
  const s = await statusOf(w.deploy);
  // The fixture serves the fds only when LISTEN_PID is its own pid (else it binds $PORT).
  assert.is(tcp!.body, `1.0 ${s.app.pid} listen`);
  assert.equal(s.sockets, [`127.0.0.1:${port}`, ...(ipv6 ? [`[::1]:${port6}`] : []), unixPath]);
  if (ipv6) assert.is((await get({ host: '::1', port: port6 })).body, `1.0 ${s.app.pid} listen`);
  assert.is((await get({ socketPath: unixPath })).body, `1.0 ${s.app.pid} listen`);
  assert.is((await get({ port: w.appPort })).error, 'ECONNREFUSED', 'the app did not bind $PORT itself');
  const st = await runScript('launchfit', ['status', '--dir', w.deploy]);
  assert.match(st.stdout, new RegExp(`sockets:  127\\.0\\.0\\.1:${port}`));
  assert.match(st.stdout, new RegExp(`app:      running pid ${s.app.pid}`));
});

onNode('the sockets outlive a crash: a request sent while the app is down waits and is answered', async () => {
  const before = (await statusOf(w.deploy)).app.pid;
  process.kill(-before, 'SIGKILL');
  const answer = await get({ port }, '/', 15_000);
  assert.is(answer.status, 200, JSON.stringify(answer));
  assert.not.equal(answer.body!.split(' ')[1], String(before), 'answered by the restarted app');
  assert.ok((await statusOf(w.deploy)).app.restarts >= 1);
});

onNode('an app that calls listen({fd: 3}) works unchanged', async () => {
  await w.publish('1.1', { files: { 'server.cjs': FD3_APP }, yml });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const a = await get({ port });
  const pid = (await statusOf(w.deploy)).app.pid;
  assert.is(a.body, `1.1 ${pid} fd3`);
});

onNode('a health-checked app that serves fd 3 alone: its port is probed instead, updates still pass', async () => {
  await lf!.stop('SIGTERM');
  const health = `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n`;
  const fd3Yml = `${yml}${health}`;
  w.writeConfig('', `  listen: [127.0.0.1:${port}, ${unixPath}]\n${health}`);
  lf = await startLaunchfit(w.deploy);
  await waitFor(async () => ((await get({ port })).status === 200 ? true : undefined), {
    what: 'the fd-3 app on its port',
  });
  await waitFor(async () => (/from now on .* is probed over TCP/.test(lf!.output()) ? true : undefined), {
    what: 'the log saying the port is probed instead',
  });
  assert.ok(existsSync(path.join(w.deploy, '.launchfit/health-via-port')), 'kept for the next run');
  await w.publish('1.2', { files: { 'server.cjs': FD3_APP }, yml: fd3Yml });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const pid = (await statusOf(w.deploy)).app.pid;
  assert.is((await get({ port })).body, `1.2 ${pid} fd3`);
});

onNode('the same app updated before its first probe: found out while it runs alone, the update passes', async () => {
  await lf!.stop('SIGTERM');
  rmSync(path.join(w.deploy, '.launchfit/health-via-port'));
  // A first start is not checked, and with this interval the watch's first probe comes long after the update.
  const health = `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 60\n    timeout: 1\n`;
  w.writeConfig('', `  listen: [127.0.0.1:${port}, ${unixPath}]\n${health}`);
  lf = await startLaunchfit(w.deploy);
  await waitFor(async () => ((await get({ port })).status === 200 ? true : undefined), {
    what: 'the fd-3 app on its port',
  });
  assert.not.match(lf.output(), /probed over TCP/, 'not found out before the update');
  await w.publish('1.3', { files: { 'server.cjs': FD3_APP }, yml: `${yml}${health}` });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr + lf.output());
  assert.match(lf.output(), /from now on .* is probed over TCP/);
  assert.ok(existsSync(path.join(w.deploy, '.launchfit/health-via-port')), 'kept for the next run');
  const pid = (await statusOf(w.deploy)).app.pid;
  assert.is((await get({ port })).body, `1.3 ${pid} fd3`);
});

onNode('launchfit stops: the app is stopped and the Unix socket removed', async () => {
  assert.is(await lf!.stop('SIGTERM'), 0, lf!.output());
  lf = undefined;
  assert.ok((await get({ port }, '/', 1000)).error);
  assert.not.ok(existsSync(unixPath));
});

(DENO ? test : test.skip)(
  'under Deno, launchfit run refuses app.listen: exit 2, the message says why, no app started',
  async () => {
    const r = await runScript('launchfit', ['run', '--dir', w.deploy], { env: { LAUNCHFIT_INTERVAL_MS: '3600000' } });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(
      r.stderr,
      /app\.listen needs launchfit to run under Node: Deno cannot hand a listening socket to a child process/,
    );
    assert.not.match(r.stderr, /app started/);
    assert.not.ok(existsSync(path.join(w.deploy, '.launchfit/app.pid')), 'no app was started');
    assert.not.ok(existsSync(unixPath), 'no socket file was left');
  },
);

test.run();
