// Zero-downtime updates with app.listen: the new release starts beside the old one on the same
// sockets, is health-checked over its own private socket, and only then is the old one stopped.
// Under steady load an update refuses no request; a bad release is rolled back while the old
// app keeps serving, and `status` keeps why.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { get, startLoad } from '../../fixtures/launchfit/load.ts';
import {
  currentOf,
  isRunning,
  makeWorld,
  startLaunchfit,
  statusOf,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

const SOCKET_APP = readFileSync(path.join(import.meta.dirname, '../../fixtures/launchfit/socket-app.cjs'), 'utf8');
const yml =
  'app:\n  exec: node server.cjs\n  healthy_after: 3\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n';

let w: World;
let lf: Launchfit;
let port: number;
const socket = () => path.join(w.deploy, '.launchfit/control.sock');
const publish = (version: string, files: Record<string, string> = {}) =>
  w.publish(version, { files: { 'server.cjs': SOCKET_APP, ...files }, yml });
const update = async () => {
  const answer = await requestOverSocket(socket(), 'POST', '/update');
  assert.ok(answer?.body.ok, JSON.stringify(answer?.body));
  return answer!.body.result as { action: string; message: string };
};
const pidOf = async () => (await statusOf(w.deploy)).app.pid as number;

test.before(async () => {
  w = await makeWorld();
  port = w.appPort; // the port the app would bind itself: `bind-port` releases collide with launchfit's socket
  await publish('1.0');
  w.writeConfig(
    '',
    `  listen: [127.0.0.1:${port}]\n  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n    failures: 3\n`,
  );
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(w.deploy);
  await waitFor(async () => (await get({ port })).status === 200, { what: 'the app' });
});

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w.server.close();
});

test('an update under steady load refuses no request; the old app is gone afterwards', async () => {
  const old = await pidOf();
  await publish('1.1');
  const load = startLoad({ port }, { concurrency: 4 });
  await new Promise((r) => setTimeout(r, 300));
  const result = await update();
  await new Promise((r) => setTimeout(r, 300));
  const seen = await load.stop();
  assert.is(result.action, 'installed', result.message);
  assert.equal(seen.failed, [], `failed requests: ${JSON.stringify(seen.failed.slice(0, 5))}`);
  assert.equal([...seen.bodies].sort(), ['1.0', '1.1']);
  assert.not.ok(isRunning(old), 'the old app was stopped');
  const s = await statusOf(w.deploy);
  assert.is(s.instances.length, 1);
  assert.match((await get({ port })).body!, new RegExp(`^1\\.1 ${s.app.pid} listen$`));
  assert.match(lf.output(), /starting the new app beside the old one/);
});

test('a release that exits at once: rolled back, no request failed, status keeps its output', async () => {
  const old = await pidOf();
  await publish('1.2', { crash: '' });
  const load = startLoad({ port }, { concurrency: 4 });
  const result = await update();
  const seen = await load.stop();
  assert.is(result.action, 'unhealthy');
  assert.match(
    result.message,
    /Release my-app-gnu-linux-1\.2 did not stay up for 3 s; marked bad and went back to my-app-gnu-linux-1\.1/,
  );
  assert.equal(seen.failed, []);
  assert.is(await pidOf(), old, 'the old app never stopped');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  const s = await statusOf(w.deploy);
  assert.ok(s.bad.includes('1.2'));
  assert.is(s.lastFailure.release, 'my-app-gnu-linux-1.2');
  assert.ok(
    s.lastFailure.output.some((l: string) => /crashing on purpose/.test(l)),
    JSON.stringify(s.lastFailure),
  );
  const text = await runScript('launchfit', ['status', '--dir', w.deploy]);
  assert.match(text.stdout, /rolled back: my-app-gnu-linux-1\.2 .*did not stay up/);
  assert.match(text.stdout, /output  app 1\.2: crashing on purpose/);
});

for (const [version, file, why] of [
  [
    '1.3',
    'fail500',
    /did not answer its health check http:\/\/127\.0\.0\.1:\d+\/up with a 2xx within 3 s \(last: HTTP 500 in \d+ ms: app 1\.3: broken on purpose\)/,
  ],
  ['1.4', 'hang', /with a 2xx within 3 s \(last: no answer within [\d.]+ s\)/],
  ['1.5', 'slow', /with a 2xx within 3 s \(last: no answer within [\d.]+ s\)/],
] as const) {
  test(`a release that ${file === 'fail500' ? 'answers 500' : file === 'hang' ? 'never answers' : 'answers slowly'}: rolled back, the old app kept serving`, async () => {
    const old = await pidOf();
    await publish(version, { [file]: '' });
    const result = await update();
    assert.is(result.action, 'unhealthy');
    assert.match(result.message, why, result.message);
    assert.is(await pidOf(), old, 'the old app never stopped');
    assert.match((await get({ port })).body!, /^1\.1 /);
    const s = await statusOf(w.deploy);
    assert.is(s.lastFailure.release, `my-app-gnu-linux-${version}`);
    assert.ok(s.lastFailure.probes.length >= 2, 'several probes were tried');
    assert.is(s.instances.length, 1, 'the bad instance was stopped');
    assert.match(
      lf.output(),
      new RegExp(`the new release my-app-gnu-linux-${version.replace('.', '\\.')} did not answer its health check`),
    );
  });
}

test('a release that binds the port itself: the rollback says EADDRINUSE and why', async () => {
  await publish('1.6', { 'bind-port': '' });
  const result = await update();
  assert.is(result.action, 'unhealthy');
  assert.match(
    result.message,
    /its output shows EADDRINUSE: the app binds the port itself instead of using the sockets launchfit hands it as fds 3… with LISTEN_FDS/,
  );
});

test('two update requests at once are coalesced into one install', async () => {
  await publish('1.7');
  const from = w.server.requests.length;
  const [a, b] = await Promise.all([update(), update()]);
  assert.is(a.action, 'installed');
  assert.ok(b.action === 'installed' || b.action === 'up-to-date' || b.action === 'not-modified', b.action);
  assert.is(w.server.requests.slice(from).filter((r) => r.path.endsWith('1.7.tar.gz')).length, 1);
  assert.match((await get({ port })).body!, /^1\.7 /);
});

test('an old app that ignores SIGTERM is killed after kill_timeout; the new one serves', async () => {
  await publish('1.8', { 'ignore-term': '' });
  await update();
  const stubborn = await pidOf();
  await publish('1.9');
  const t0 = Date.now();
  const result = await update();
  assert.is(result.action, 'installed');
  assert.ok(Date.now() - t0 >= 2000, 'waited kill_timeout for the old app');
  assert.not.ok(isRunning(stubborn));
  assert.match(lf.output(), /did not stop within 2 s; killing its process group/);
  assert.match((await get({ port })).body!, /^1\.9 /);
});

test('a running app that fails its health check 3 times in a row is restarted; healthy again, it stays', async () => {
  const sick = path.join(w.base, 'sick');
  await publish('1.10', { 'sick-after': sick });
  await update();
  const pid = await pidOf();
  writeFileSync(sick, '');
  await waitFor(
    async () => {
      const p = (await statusOf(w.deploy)).app.pid;
      return p && p !== pid;
    },
    { timeoutMs: 20_000, what: 'a restart after failed health checks' },
  );
  rmSync(sick); // the trouble passes: the restarted app answers its probes again
  assert.match(lf.output(), /the app failed 3 health checks in a row; restarting it/);
  assert.not.ok(isRunning(pid));
  await waitFor(() => /the app is healthy again after its restart/.test(lf.output()), {
    timeoutMs: 20_000,
    what: 'the restart to pass its probation',
  });
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.10');
  assert.not.ok((await statusOf(w.deploy)).bad.includes('1.10'));
  assert.match((await get({ port })).body!, /^1\.10 /);
});

test('a bad release while the old app had already stopped: after the rollback the old app is started again', async () => {
  // stable_after 1 (the update returns after healthy_after 3): killed before a run lasted
  // stable_after, a newly switched release without forever would go back at once instead.
  const once =
    'app:\n  exec: node server.cjs\n  healthy_after: 3\n  kill_timeout: 2\n  forever: false\n  stable_after: 1\n';
  await w.publish('1.11', { files: { 'server.cjs': SOCKET_APP }, yml: once });
  assert.is((await update()).action, 'installed');
  const dead = await pidOf();
  process.kill(dead, 'SIGKILL');
  await waitFor(async () => (await statusOf(w.deploy)).app.state === 'exited', {
    what: 'the old app to be seen exited',
  });
  await publish('1.12', { crash: '' });
  const result = await update();
  assert.is(result.action, 'unhealthy');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.11');
  const answer = await get({ port }, '/', 10_000);
  assert.match(answer.body ?? JSON.stringify(answer), /^1\.11 \d+ listen$/);
  const s = await statusOf(w.deploy);
  assert.is(s.app.state, 'running');
  assert.is.not(s.app.pid, dead);
  assert.is(s.instances.length, 1);
});

test.run();
