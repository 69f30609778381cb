// A launchfit restart after kill -9 adopts the running instance and its sockets.
// With app.listen, the instance a killed launchfit left holds the only copies of the
// listening socket; the restarted launchfit takes them over from it (pidfd_getfd through a Perl
// helper, handed to Node over an IPC channel) and supervises that instance instead of stopping
// it: the app keeps its pid, and the socket is never closed. Load runs on the port throughout
// (new connections from this process, not launchfit's); not one is refused. Before, the restart
// stopped the orphan, then bound again: hundreds of refused connections. The adopted instance
// is then supervised as launchfit's own: with app.health its health socket was taken over too
// and it keeps passing probes; killed, it is restarted (forever); an update replaces it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { get, startLoad } from '../../fixtures/launchfit/load.ts';
import { makeWorld, startLaunchfit, statusOf, type Launchfit, type World } from '../../fixtures/launchfit/world.ts';

const SOCKET_APP = readFileSync(path.join(import.meta.dirname, '../../fixtures/launchfit/socket-app.cjs'), 'utf8');
const YML =
  'app:\n  exec: node server.cjs\n  healthy_after: 1\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n';
const HEALTH = (port: number) =>
  `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n    failures: 3\n`;

let w: World;
let lf: Launchfit | undefined;

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w?.server.close();
});

test('kill -9 of launchfit, then a restart, under load: the app is adopted, no connection refused', async () => {
  w = await makeWorld();
  const port = w.appPort;
  await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
  w.writeConfig('', `  listen: [127.0.0.1:${port}]\n${HEALTH(port)}`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(w.deploy);
  await waitFor(async () => (await get({ port })).status === 200, { what: 'the app', timeoutMs: 30_000 });
  const before = (await statusOf(w.deploy)).app.pid;

  const load = startLoad({ port }, { concurrency: 4 });
  await new Promise((res) => setTimeout(res, 500));
  await lf.stop('SIGKILL');
  await new Promise((res) => setTimeout(res, 300));
  lf = await startLaunchfit(w.deploy);
  await waitFor(async () => (await statusOf(w.deploy)).app?.state === 'running', {
    what: 'the app under the restarted launchfit',
  });
  await new Promise((res) => setTimeout(res, 1500));
  const result = await load.stop();

  const refused = result.failed.filter((f) => f.error === 'ECONNREFUSED').length;
  console.log(
    `restart under load: ${result.ok} answered, ${refused} refused, ${result.failed.length} failed, longest gap ${Math.round(result.maxGapMs)} ms`,
  );
  assert.match(
    lf.output(),
    /took the app's listening sockets over from the instance a previous launchfit left/,
    lf.output(),
  );
  assert.is(refused, 0, `refused: ${refused}; failed: ${JSON.stringify(result.failed.slice(0, 5))}`);
  assert.is(result.failed.length, 0, JSON.stringify(result.failed.slice(0, 5)));
  assert.ok(result.ok > 20, `answers during the test: ${result.ok}`);
  const after = (await statusOf(w.deploy)).app.pid;
  assert.is(after, before, 'the app was adopted, not started again');
  assert.match(lf.output(), /adopted the app a previous launchfit left running/);
  assert.is((await get({ port })).body, `1.0 ${before} listen`);
  // Its health socket came with it: probes keep passing.
  await new Promise((res) => setTimeout(res, 1000));
  const s = await statusOf(w.deploy);
  assert.ok(s.health?.ok, JSON.stringify(s.health));
  assert.is(s.health.failuresInARow, 0);
});

test('the adopted app is supervised: killed, it is restarted; an update replaces it', async () => {
  const port = w.appPort;
  const adopted = (await statusOf(w.deploy)).app.pid;
  process.kill(-adopted, 'SIGKILL');
  await waitFor(
    async () => {
      const s = await statusOf(w.deploy);
      return s.app?.state === 'running' && s.app.pid !== adopted ? s : undefined;
    },
    { what: 'the restart of the adopted app', timeoutMs: 20_000 },
  );
  await waitFor(async () => (await get({ port })).status === 200, { what: 'the restarted app' });
  const restarted = (await statusOf(w.deploy)).app.pid;
  await w.publish('1.1', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
  const load = startLoad({ port }, { concurrency: 2 });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  const result = await load.stop();
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.is(result.failed.length, 0, JSON.stringify(result.failed.slice(0, 5)));
  const s = await statusOf(w.deploy);
  assert.is(s.version, '1.1');
  assert.is.not(s.app.pid, restarted);
  assert.is((await get({ port })).body, `1.1 ${s.app.pid} listen`);
});

test.run();
