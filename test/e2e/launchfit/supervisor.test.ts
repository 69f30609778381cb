// The supervised app: an app that crashes at once is rolled back, one that ignores SIGTERM is
// killed after kill_timeout, forked children are stopped with it, and `forever` restarts it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import {
  askApp,
  currentOf,
  isRunning,
  deployedWorld,
  startLaunchfit,
  statusOf,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

let w: World;
let lf: Launchfit | undefined;

test.before(async () => {
  w = await deployedWorld('1.0');
});

test.after(async () => {
  await lf?.stop('SIGKILL');
  await w.server.close();
});

const alive = isRunning;
const statusJson = () => statusOf(w.deploy);
const updateNow = async () => {
  const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
  assert.ok(answer?.body.ok, JSON.stringify(answer?.body));
};
const version = (v: string) =>
  waitFor(async () => (await askApp(w.appPort, 1000)) === v, { timeoutMs: 20_000, what: `app ${v}` });

test('forever: an app killed from outside is restarted', async () => {
  lf = await startLaunchfit(w.deploy, { CHILD_PID_FILE: path.join(w.base, 'child.pid') });
  await version('1.0');
  const pid = (await statusJson()).app.pid;
  process.kill(-pid, 'SIGKILL');
  await waitFor(
    async () => {
      const s = await statusJson();
      return s.app.state === 'running' && s.app.pid !== pid;
    },
    { what: 'a restart', timeoutMs: 20_000 },
  );
  await version('1.0');
  assert.ok((await statusJson()).app.restarts >= 1);
});

test('an app that crashes at once is rolled back; the old one runs again', async () => {
  await w.publish('1.1', { files: { crash: '' } });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /did not stay up for 1\.5 s; marked bad and went back to my-app-gnu-linux-1\.0/);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  await version('1.0');
  const s = await statusJson();
  assert.equal(s.bad, ['1.1']);
  assert.not.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1')));
});

test('an app that ignores SIGTERM is killed after kill_timeout when it is replaced', async () => {
  await w.publish('1.2', { files: { 'ignore-term': '' } });
  await updateNow();
  await version('1.2');
  const stubborn = (await statusJson()).app.pid;
  await w.publish('1.3');
  const t0 = Date.now();
  await updateNow();
  assert.ok(Date.now() - t0 >= 2000, 'waited for kill_timeout');
  assert.not.ok(alive(stubborn));
  assert.match(lf!.output(), /did not stop within \d+ s; killing its process group/, lf!.output());
  await version('1.3');
});

test('an app that forks children: all are stopped when launchfit stops', async () => {
  await w.publish('1.4', { files: { fork: '' } });
  await updateNow();
  await version('1.4');
  const childPid = Number(
    await waitFor(() => {
      try {
        return readFileSync(path.join(w.base, 'child.pid'), 'utf8');
      } catch {
        return '';
      }
    }),
  );
  assert.ok(alive(childPid));
  const app = (await statusJson()).app.pid;
  assert.is(await lf!.stop('SIGTERM'), 0, lf!.output());
  lf = undefined;
  assert.not.ok(alive(app));
  await waitFor(() => !alive(childPid), { what: 'the forked child to be gone', timeoutMs: 10_000 });
  assert.is(await askApp(w.appPort, 500), undefined);
});

test.run();
