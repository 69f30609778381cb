// Faults around an overlapping switch: kill -9 of launchfit while old and new app run side by
// side (on restart exactly one app runs, from a verified release), and SIGTERM to launchfit in
// the middle of an update (it finishes or rolls back, then stops every app).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isAppOf } from '../../../lib/launchfit/deploy-folder/app-env.ts';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { get } from '../../fixtures/launchfit/load.ts';
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
let lf: Launchfit | undefined;
let port: number;
const env = () => ({ KILL_MARKER: path.join(w.base, 'marker') });
const socket = () => path.join(w.deploy, '.launchfit/control.sock');
const publish = (version: string, files: Record<string, string> = {}) =>
  w.publish(version, { files: { 'server.cjs': SOCKET_APP, ...files }, yml });
const pidOf = async () => (await statusOf(w.deploy)).app.pid as number;
/** The app processes of this deploy folder: every process that carries its mark. */
const appProcesses = () => {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((pid) => {
      try {
        return (
          isAppOf(readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0'), w.deploy) &&
          isRunning(Number(pid)) &&
          /server\.cjs/.test(readFileSync(`/proc/${pid}/cmdline`, 'latin1')) &&
          readFileSync(`/proc/${pid}/comm`, 'latin1').trim() !== 'launchfit-inst'
        ); // not the instance wrapper
      } catch {
        return false;
      }
    })
    .map(Number);
};

test.before(async () => {
  w = await makeWorld();
  port = w.appPort;
  await publish('1.0');
  w.writeConfig(
    '',
    `  listen: [127.0.0.1:${port}]\n  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n`,
  );
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
});

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w.server.close();
});

test('kill -9 of launchfit while old and new run side by side: on restart exactly one app runs, current is verified', async () => {
  lf = await startLaunchfit(w.deploy, env());
  await waitFor(async () => (await get({ port })).status === 200, { what: 'the app' });
  const old = await pidOf();
  await publish('1.1', { 'kill-launcher': '' });
  await requestOverSocket(socket(), 'POST', '/update').then(
    () => assert.unreachable('launchfit was killed'),
    () => {},
  );
  assert.is(await lf.exited, -1);
  assert.is(appProcesses().length, 2, 'old and new app were both running when launchfit died');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');

  lf = await startLaunchfit(w.deploy, env());
  assert.match(lf.output(), /stopping the app left running by a previous launchfit/);
  assert.not.ok(isRunning(old));
  await waitFor(async () => !(await statusOf(w.deploy)).pending, {
    what: 'the pending switch to be confirmed',
    timeoutMs: 20_000,
  });
  const procs = appProcesses();
  assert.is(procs.length, 1, `exactly one app runs: ${procs}`);
  const s = await statusOf(w.deploy);
  assert.is(s.current, 'my-app-gnu-linux-1.1');
  assert.is(s.version, '1.1', 'current is an installed (verified) release');
  assert.is(s.app.pid, procs[0]);
  assert.match((await get({ port })).body!, new RegExp(`^1\\.1 ${procs[0]} `));
});

test('SIGTERM to launchfit during an update: the update ends (here: rolled back), then every app stops', async () => {
  await publish('1.2', { hang: '' });
  const overlaps = () => lf!.output().split('starting the new app beside the old one').length;
  const before = overlaps();
  const pending = requestOverSocket(socket(), 'POST', '/update').catch(() => undefined);
  await waitFor(() => overlaps() > before && appProcesses().length === 2, {
    what: 'the overlap to begin',
    timeoutMs: 30_000,
  });
  assert.is(await lf!.stop('SIGTERM'), 0, lf!.output());
  lf = undefined;
  const answer = await pending;
  if (answer) assert.is((answer.body.result as { action: string }).action, 'unhealthy');
  assert.equal(appProcesses(), [], 'no app is left running');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  lf = await startLaunchfit(w.deploy, env());
  await waitFor(async () => /^1\.1 /.test((await get({ port })).body ?? ''), { what: 'the app 1.1 again' });
  assert.is(appProcesses().length, 1);
});

test.run();
