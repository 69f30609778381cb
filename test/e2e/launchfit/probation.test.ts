// Healthy means healthy: a new release must answer its health probe,
// then stay up and keep answering every probe for healthy_after seconds; one that passes once
// and then exits or fails is rolled back, and the old app keeps serving. After the switch,
// app.health.failures failed probes in a row restart the app, and a restart that is not healthy
// goes back to the previous release (docs/design.md). Every instance runs in its own release folder,
// so an old app that crashes during the new one's probation comes back as the old release, and
// after the rollback `status` names what serves. Unset, healthy_after is 0 with app.health: the
// switch at the first 2xx, and a release that fails after it goes back by the crash counting.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
const ymlAfter = (sec: number) =>
  `app:\n  exec: node server.cjs\n  healthy_after: ${sec}\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n`;
const HEALTH = (port: number) =>
  `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.2\n    timeout: 1\n    failures: 3\n`;

interface Host {
  w: World;
  lf: Launchfit;
  port: number;
}

/** 1.0 deployed and served by `launchfit run`, with app.health (and app.listen when `listen`). */
async function host(listen: boolean, healthyAfter: number): Promise<Host> {
  const w = await makeWorld();
  const port = w.appPort;
  await w.publish('1.0', { files: { 'server.cjs': SOCKET_APP }, yml: ymlAfter(healthyAfter) });
  w.writeConfig('', `${listen ? `  listen: [127.0.0.1:${port}]\n` : ''}${HEALTH(port)}`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  const lf = await startLaunchfit(w.deploy);
  await waitFor(async () => (await get({ port })).status === 200, { what: 'the app', timeoutMs: 30_000 });
  return { w, lf, port };
}

const publish = (h: Host, version: string, files: Record<string, string>, healthyAfter: number) =>
  h.w.publish(version, { files: { 'server.cjs': SOCKET_APP, ...files }, yml: ymlAfter(healthyAfter) });

async function update(h: Host): Promise<{ action: string; message: string }> {
  const answer = await requestOverSocket(path.join(h.w.deploy, '.launchfit/control.sock'), 'POST', '/update');
  assert.ok(answer?.body.ok, JSON.stringify(answer?.body));
  return answer!.body.result as { action: string; message: string };
}

/** Several answers in a row, each from `version`. */
async function answers(h: Host, version: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const a = await get({ port: h.port }, '/', 10_000);
    assert.match(
      a.body ?? JSON.stringify(a),
      new RegExp(`^${version.replace('.', '\\.')} \\d+ `),
      h.lf.output().slice(-3000),
    );
  }
}

/** Answers from `version` only, and `status` says that version serves. */
async function servesOnly(h: Host, version: string): Promise<void> {
  await answers(h, version);
  const s = await statusOf(h.w.deploy);
  assert.is(s.version, version);
  assert.is(s.current, `my-app-gnu-linux-${version}`);
  assert.is(s.app.release, `my-app-gnu-linux-${version}`, 'status names the release that serves');
  assert.is(s.instances.length, 1);
  const text = await runScript('launchfit', ['status', '--dir', h.w.deploy]);
  assert.match(
    text.stdout,
    new RegExp(`app:      running pid ${s.app.pid} \\(my-app-gnu-linux-${version.replace('.', '\\.')}\\)`),
  );
}

async function done(h: Host): Promise<void> {
  await h.lf.stop('SIGKILL');
  await h.w.server.close();
}

let L: Host;

test.before(async () => {
  L = await host(true, 3);
});

test.after(async () => {
  if (L) await done(L);
});

test('(a) app.listen: a release that answers its probe, then exits 1.5 s later (healthy_after 5): rolled back, the old app never stopped', async () => {
  const old = (await statusOf(L.w.deploy)).app.pid;
  await publish(L, '1.1', { 'exit-after': '1500' }, 5);
  const result = await update(L);
  assert.is(result.action, 'unhealthy', result.message);
  assert.match(
    result.message,
    /Release my-app-gnu-linux-1\.1 did not stay up for 5 s after its health check first passed; marked bad and went back to my-app-gnu-linux-1\.0/,
    result.message,
  );
  assert.is((await statusOf(L.w.deploy)).app.pid, old, 'the old app kept serving');
  assert.ok(isRunning(old));
  await servesOnly(L, '1.0');
  const s = await statusOf(L.w.deploy);
  assert.ok(s.bad.includes('1.1'));
  assert.ok(
    s.lastFailure.output.some((l: string) => /exiting on purpose after 1500 ms/.test(l)),
    JSON.stringify(s.lastFailure),
  );
  assert.not.ok(existsSync(path.join(L.w.deploy, 'releases/my-app-gnu-linux-1.1')));
});

test('(c) app.listen: a probe that passes once and then fails forever: rolled back, the old app never stopped', async () => {
  const old = (await statusOf(L.w.deploy)).app.pid;
  await publish(L, '1.2', { 'pass-once': '' }, 3);
  // On a loaded machine the failing probe that ends probation may be one that timed out rather
  // than one answered 503: either is a failure after the first pass. And the one pass itself may
  // have gone unanswered in time: then it never passed, and it is marked bad all the same.
  const result = await update(L);
  assert.is(result.action, 'unhealthy', result.message);
  assert.match(
    result.message,
    /Release my-app-gnu-linux-1\.2 (failed its health check http:\/\/127\.0\.0\.1:\d+\/up within 3 s after its health check first passed|did not answer its health check http:\/\/127\.0\.0\.1:\d+\/up with a 2xx within 3 s) \(last: (HTTP 503 in \d+ ms: app 1\.2: passed once|no answer within [\d.]+ s)\); marked bad/,
    result.message,
  );
  assert.is((await statusOf(L.w.deploy)).app.pid, old);
  await servesOnly(L, '1.0');
  assert.ok((await statusOf(L.w.deploy)).bad.includes('1.2'));
});

test("(e) the old app killed during the new one's probation is restarted from the old release; after the rollback status and answers agree", async () => {
  const old = (await statusOf(L.w.deploy)).app.pid;
  await publish(L, '1.3', { fail500: '' }, 3);
  const pending = update(L);
  const pids = async () => ((await statusOf(L.w.deploy)).instances as Array<{ pid?: number }>).map((i) => i.pid);
  const both = (await waitFor(
    async () => {
      const p = await pids();
      return p.length === 2 && p.every(Boolean) ? p : undefined;
    },
    { what: 'the new app beside the old one', timeoutMs: 30_000 },
  ))!;
  assert.is(currentOf(L.w.deploy), 'releases/my-app-gnu-linux-1.3', 'current already points at the new release');
  process.kill(-old, 'SIGKILL');
  await waitFor(async () => (await pids()).some((p) => p && !both.includes(p)), {
    what: 'the old app restarted',
    timeoutMs: 20_000,
  });
  const result = await pending;
  assert.is(result.action, 'unhealthy', result.message);
  await answers(L, '1.0');
  const s = await statusOf(L.w.deploy);
  assert.is.not(s.app.pid, old);
  assert.ok(s.app.restarts >= 1);
  assert.match(readFileSync(`/proc/${s.app.pid}/cmdline`, 'latin1'), /server\.cjs/);
  assert.is(readFileSync(`/proc/${s.app.pid}/cwd/version.txt`, 'utf8').trim(), '1.0');
  await servesOnly(L, '1.0');
});

test('(d) after a switch, failures in a row restart the app; a restart that is not healthy goes back to the previous release', async () => {
  const sick = path.join(L.w.base, 'sick');
  await publish(L, '1.4', { 'sick-after': sick }, 3);
  assert.is((await update(L)).action, 'installed');
  await answers(L, '1.4');
  const pid = (await statusOf(L.w.deploy)).app.pid;
  writeFileSync(sick, '');
  await waitFor(() => /the app failed 3 health checks in a row; restarting it/.test(L.lf.output()), {
    what: 'the failed checks',
    timeoutMs: 20_000,
  });
  await waitFor(() => currentOf(L.w.deploy) === 'releases/my-app-gnu-linux-1.0', {
    what: 'the rollback',
    timeoutMs: 30_000,
  });
  await waitFor(async () => (await statusOf(L.w.deploy)).app.state === 'running', {
    what: 'the old release running',
    timeoutMs: 20_000,
  });
  assert.not.ok(isRunning(pid));
  assert.match(
    L.lf.output(),
    /release my-app-gnu-linux-1\.4 did not answer its health check .* after a restart for failed health checks; marking it bad and going back to my-app-gnu-linux-1\.0/,
  );
  await servesOnly(L, '1.0');
  const s = await statusOf(L.w.deploy);
  assert.ok(s.bad.includes('1.4'));
  assert.is(s.lastFailure.release, 'my-app-gnu-linux-1.4');
  assert.not.ok(existsSync(path.join(L.w.deploy, 'releases/my-app-gnu-linux-1.4')));
});

test('(f) app.listen, healthy_after unset: the old app is told to stop at the first 2xx, and the update answers then', async () => {
  const old = (await statusOf(L.w.deploy)).app.pid;
  await L.w.publish('1.5', {
    files: { 'server.cjs': SOCKET_APP },
    yml: 'app:\n  exec: node server.cjs\n  kill_timeout: 2\n  forever: true\n  stable_after: 1\n',
  });
  const result = await update(L);
  assert.is(result.action, 'installed', result.message);
  // Logged as the switch happens: how long after the new app's start its first 2xx came. With
  // a hold (the old default, healthy_after 5) it could not be under 5,000 ms.
  const line = L.lf
    .output()
    .split('\n')
    .find((l) => l.includes('the new app is healthy; stopping the old one') && l.includes('1.5'));
  assert.ok(line, L.lf.output().slice(-3000));
  const healthyMs = Number(/healthyMs=(\d+)/.exec(line!)?.[1]);
  assert.ok(healthyMs < 5000, `switched ${healthyMs} ms after the start: ${line}`);
  await waitFor(() => !isRunning(old), { what: 'the old app drained and gone', timeoutMs: 20_000 });
  await servesOnly(L, '1.5');
});

/**
 * `version`, which exits 2.5 s after each start, is installed (its verdict at the first 2xx), then
 * goes back to 1.5 once it exited as `yml` lets it (with or without forever); 1.5 runs again.
 */
async function installedThenBack(version: string, yml: string): Promise<void> {
  await L.w.publish(version, { files: { 'server.cjs': SOCKET_APP, 'exit-after': '2500' }, yml });
  const result = await update(L);
  assert.is(result.action, 'installed', `its verdict comes at the first 2xx: ${result.message}`);
  await waitFor(() => currentOf(L.w.deploy) === 'releases/my-app-gnu-linux-1.5', {
    what: `${version} going back`,
    timeoutMs: 30_000,
  });
  await waitFor(async () => (await statusOf(L.w.deploy)).app.state === 'running', {
    what: 'the old release running again',
    timeoutMs: 20_000,
  });
}

test('(g) healthy_after unset: a release that exits twice after the switch goes back, and the old release is started again', async () => {
  const old = (await statusOf(L.w.deploy)).app.pid;
  await installedThenBack(
    '1.6',
    'app:\n  exec: node server.cjs\n  kill_timeout: 2\n  forever: true\n  stable_after: 10\n',
  );
  assert.match(L.lf.output(), /release my-app-gnu-linux-1\.6 exited 2 times after the switch/);
  assert.not.ok(isRunning(old), 'the old process was stopped at the switch; a new one serves 1.5');
  await servesOnly(L, '1.5');
  assert.ok((await statusOf(L.w.deploy)).bad.includes('1.6'));
});

test('(h) healthy_after unset, app.forever off: a release that exits once after the switch goes back at once', async () => {
  await installedThenBack('1.7', 'app:\n  exec: node server.cjs\n  kill_timeout: 2\n  stable_after: 10\n');
  assert.match(
    L.lf.output(),
    /release my-app-gnu-linux-1\.7 exited [\d.]+ s after it started, before it stayed up 10 s \(app\.stable_after\), and app\.forever is off; going back/,
  );
  await servesOnly(L, '1.5');
  assert.ok((await statusOf(L.w.deploy)).bad.includes('1.7'));
});

test('(b) without app.listen: a release that answers its probe, then exits 1.5 s later: rolled back, the old release serves again', async () => {
  const h = await host(false, 5);
  try {
    await publish(h, '1.1', { 'exit-after': '1500' }, 5);
    const result = await update(h);
    assert.is(result.action, 'unhealthy', result.message);
    assert.match(
      result.message,
      /Release my-app-gnu-linux-1\.1 did not stay up for 5 s after its health check first passed; marked bad and went back to my-app-gnu-linux-1\.0/,
      result.message,
    );
    await waitFor(async () => /^1\.0 /.test((await get({ port: h.port })).body ?? ''), {
      what: '1.0 serving again',
      timeoutMs: 20_000,
    });
    await servesOnly(h, '1.0');
    assert.ok((await statusOf(h.w.deploy)).bad.includes('1.1'));
  } finally {
    await done(h);
  }
});

test.run();
