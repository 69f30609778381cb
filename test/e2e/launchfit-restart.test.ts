// A launchfit restart after kill -9 refuses no connection (issue 20 item 5). With app.listen,
// the instance a killed launchfit left holds the only copies of the listening socket; the
// restarted launchfit takes them over from it (pidfd_getfd through a Perl helper, handed to Node
// over an IPC channel) before it stops that instance, so the socket is never closed: connections
// that come while the app is started again wait in the backlog. Load runs on the port throughout
// (new connections from this process, not launchfit's); not one is refused. Before, the restart
// stopped the orphan, then bound again: hundreds of refused connections.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, waitFor } from '../helpers.ts';
import { get, startLoad } from '../fixtures/launchfit/load.ts';
import { makeWorld, startLaunchfit, statusOf, type Launchfit, type World } from '../fixtures/launchfit/world.ts';

const SOCKET_APP = readFileSync(path.join(import.meta.dirname, '../fixtures/launchfit/socket-app.cjs'), 'utf8');
const YML = 'app:\n  exec: node server.cjs\n  healthy_after: 1\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n';

let w: World;
let lf: Launchfit | undefined;

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w?.server.close();
});

test('kill -9 of launchfit, then a restart, under load: no connection refused', async () => {
  w = await makeWorld();
  const port = w.appPort;
  await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
  w.writeConfig('', `  listen: [127.0.0.1:${port}]\n`);
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
  await waitFor(async () => (await statusOf(w.deploy)).app?.state === 'running', { what: 'the app under the restarted launchfit' });
  await new Promise((res) => setTimeout(res, 1500));
  const result = await load.stop();

  const refused = result.failed.filter((f) => f.error === 'ECONNREFUSED').length;
  console.log(`restart under load: ${result.ok} answered, ${refused} refused, ${result.failed.length} failed, longest gap ${Math.round(result.maxGapMs)} ms`);
  assert.match(lf.output(), /took the app's listening sockets over from the instance a previous launchfit left/, lf.output());
  assert.is(refused, 0, `refused: ${refused}; failed: ${JSON.stringify(result.failed.slice(0, 5))}`);
  assert.is(result.failed.length, 0, JSON.stringify(result.failed.slice(0, 5)));
  assert.ok(result.ok > 20, `answers during the test: ${result.ok}`);
  const after = (await statusOf(w.deploy)).app.pid;
  assert.is.not(after, before, 'the app was started again under the restarted launchfit');
  assert.is((await get({ port })).body?.split(' ')[0], '1.0');
});

test.run();
