// A crash loop after a successful switch goes back (docs/design.md): a release
// that passes its probation and then keeps exiting a few seconds later is restarted once, and
// its second exit before any run lasted app.stable_after rolls back through the same path as
// failed health checks: the version is marked bad, its folder removed, `status` names the
// previous version, and the previous release serves. Without it, the supervisor's backoff went
// on restarting the new release until it gave up, with nothing serving.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { get } from '../../fixtures/launchfit/load.ts';
import {
  currentOf,
  makeWorld,
  startLaunchfit,
  statusOf,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

const SOCKET_APP = readFileSync(path.join(import.meta.dirname, '../../fixtures/launchfit/socket-app.cjs'), 'utf8');
// healthy_after 1: probation ends ~1-2 s after the start; the app exits 4 s after each start.
const YML =
  'app:\n  exec: node server.cjs\n  healthy_after: 1\n  kill_timeout: 2\n  forever: true\n  stable_after: 30\n';
const HEALTH = (port: number) =>
  `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n    failures: 3\n`;

async function run(listen: boolean): Promise<void> {
  const w: World = await makeWorld();
  const port = w.appPort;
  let lf: Launchfit | undefined;
  try {
    await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
    w.writeConfig('', listen ? `  listen: [127.0.0.1:${port}]\n${HEALTH(port)}` : '');
    const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(r.exitCode, 0, r.stderr);
    lf = await startLaunchfit(w.deploy);
    await waitFor(async () => /^1\.0 /.test((await get({ port })).body ?? ''), {
      what: '1.0 serving',
      timeoutMs: 30_000,
    });

    await w.publish('1.1', { files: { 'server.cjs': SOCKET_APP, 'exit-after': '4000' }, yml: YML });
    const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
    const result = answer?.body.result as { action: string; message: string } | undefined;
    assert.is(result?.action, 'installed', JSON.stringify(answer?.body));
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');

    const out = () => lf!.output();
    await waitFor(() => currentOf(w.deploy) === 'releases/my-app-gnu-linux-1.0', {
      what: 'the rollback after the crash loop',
      timeoutMs: 60_000,
    });
    await waitFor(async () => /^1\.0 /.test((await get({ port })).body ?? ''), {
      what: '1.0 serving again',
      timeoutMs: 30_000,
    });
    // Restarted once after its first exit, gone back at the second.
    assert.is((out().match(/^app 1\.1: exiting on purpose after 4000 ms$/gm) ?? []).length, 2, out().slice(-4000));
    assert.match(
      out(),
      /release my-app-gnu-linux-1\.1 exited 2 times after the switch before it stayed up 30 s \(app\.stable_after\); marking it bad and going back to my-app-gnu-linux-1\.0/,
    );
    for (let i = 0; i < 5; i++) assert.match((await get({ port })).body ?? '', /^1\.0 \d+ /);
    const s = await statusOf(w.deploy);
    assert.is(s.version, '1.0');
    assert.is(s.current, 'my-app-gnu-linux-1.0');
    assert.is(s.app.release, 'my-app-gnu-linux-1.0');
    assert.is(s.app.state, 'running');
    assert.ok(s.bad.includes('1.1'), JSON.stringify(s.bad));
    assert.is(s.lastFailure.release, 'my-app-gnu-linux-1.1');
    assert.ok(
      s.lastFailure.output.some((l: string) => /exiting on purpose after 4000 ms/.test(l)),
      JSON.stringify(s.lastFailure),
    );
    assert.not.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1')));
    // 1.1 is bad: the next check does not install it again.
    const again = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
    assert.is.not((again?.body.result as { action: string }).action, 'installed', JSON.stringify(again?.body));
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  } finally {
    await lf?.stop('SIGKILL');
    await w.server.close();
  }
}

test('app.listen with app.health: a release that passes probation and then exits every 4 s is rolled back at its second exit', async () => {
  await run(true);
});

test('without app.listen or app.health: the same crash loop is rolled back, and the previous release serves', async () => {
  await run(false);
});

test('a release gone back to by `launchfit rollback` that then crash-loops is started again, never switched to the bad one', async () => {
  const w: World = await makeWorld();
  const port = w.appPort;
  let lf: Launchfit | undefined;
  try {
    await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
    w.writeConfig('', '');
    assert.is((await runScript('launchfit', ['deploy', '--dir', w.deploy])).exitCode, 0);
    lf = await startLaunchfit(w.deploy);
    await waitFor(async () => /^1\.0 /.test((await get({ port })).body ?? ''), {
      what: '1.0 serving',
      timeoutMs: 30_000,
    });
    await w.publish('1.1', { files: { 'server.cjs': SOCKET_APP }, yml: YML });
    const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
    assert.is((answer?.body.result as { action: string }).action, 'installed', JSON.stringify(answer?.body));
    // 1.0 exits 4 s after each start from now on; the rollback leaves 1.1 marked bad as the previous release.
    writeFileSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/exit-after'), '4000');
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 0, back.stderr + back.stdout);
    const out = () => lf!.output();
    await waitFor(
      () => /the previous release my-app-gnu-linux-1\.1 is marked bad, so it is started again/.test(out()),
      {
        what: "the crash loop's end",
        timeoutMs: 60_000,
      },
    );
    assert.match(out(), /release my-app-gnu-linux-1\.0 exited 2 times after the switch before it stayed up 30 s/);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.ok((await statusOf(w.deploy)).bad.includes('1.1'));
  } finally {
    await lf?.stop('SIGKILL');
    await w.server.close();
  }
});

test.run();
