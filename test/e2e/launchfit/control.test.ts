// @deno
// launchfit's TCP control listener speaks the signed slave protocol: unsigned, wrongly signed
// and replayed requests get 401, bad names 400, other apps 404; a signed `GET /?repo=APP` checks
// for updates (202 queued; with &wait=1 the verdict: 200 installed or already current, 500 rolled
// back or marked bad), and the real `server-update` reaches it.
// Polling runs on its own with conditional requests: an idle poll is a 304.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { freePort, runScript, waitFor } from '../../_helpers/common.ts';
import { askApp, makeWorld, startLaunchfit, type Launchfit, type World } from '../../fixtures/launchfit/world.ts';

const SECRET = 'a-long-shared-secret-for-the-fleet';
let w: World;
let lf: Launchfit;
let base: string;
let secretFile: string;

test.before(async () => {
  w = await makeWorld();
  await w.publish('1.0');
  const port = await freePort();
  secretFile = path.join(w.base, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  w.writeConfig(`control:\n  listen: 127.0.0.1:${port}\n  secret: file:${secretFile}\n`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(w.deploy, { LAUNCHFIT_INTERVAL_MS: '400' });
  const m = await waitFor(() => /control listening on (http:\/\/\S+)/.exec(lf.output()), {
    what: 'the control listener',
  });
  base = m![1];
  await waitFor(async () => (await askApp(w.appPort)) === '1.0', { what: 'app 1.0', timeoutMs: 20_000 });
});

test.after(async () => {
  await lf.stop();
  await w.server.close();
});

const get = (pathAndQuery: string, headers: Record<string, string> = {}) =>
  fetch(`${base}${pathAndQuery}`, { headers, signal: AbortSignal.timeout(30_000) });
const signed = (pathAndQuery: string, secret = SECRET) => get(pathAndQuery, signRequest(secret, 'GET', pathAndQuery));

test('unsigned, wrongly signed and replayed requests are refused with 401', async () => {
  assert.is((await get('/?repo=my-app')).status, 401);
  assert.is((await signed('/?repo=my-app', 'not-the-secret')).status, 401);
  const headers = signRequest(SECRET, 'GET', '/status');
  assert.is((await get('/status', headers)).status, 200);
  assert.is((await get('/status', headers)).status, 401, 'a replayed nonce');
  assert.is((await get('/?repo=my-app', headers)).status, 401, 'a signature for another path');
});

test('bad names are 400, other apps 404, status is signed JSON', async () => {
  assert.is((await signed('/?repo=..%2Fetc')).status, 400);
  assert.is((await signed('/')).status, 400);
  assert.is((await signed('/?repo=someone-else')).status, 404);
  const status = await signed('/status');
  assert.is(status.status, 200);
  const body = await status.json();
  assert.is(body.result.version, '1.0');
});

test('idle polls are conditional GETs answered 304', async () => {
  const from = w.server.requests.length;
  await waitFor(
    () => w.server.requests.slice(from).filter((r) => r.path === 'VERSION' && r.status === 304).length >= 2,
    { what: 'two idle polls', timeoutMs: 20_000 },
  );
  const polls = w.server.requests.slice(from);
  assert.ok(
    polls.every((r) => r.path === 'VERSION' && r.status === 304),
    JSON.stringify(polls),
  );
});

test('signed GET /?repo=APP&wait=1 updates and answers with the result', async () => {
  await w.publish('1.1');
  const res = await signed('/?repo=my-app&wait=1');
  const body = await res.json();
  // The poller may have got there first; either way 1.1 is what runs now.
  assert.is(res.status, 200, JSON.stringify(body));
  assert.is(body.ok, true);
  assert.ok(['installed', 'up-to-date', 'not-modified'].includes(body.result.action), JSON.stringify(body));
  await waitFor(async () => (await askApp(w.appPort)) === '1.1', { what: 'app 1.1', timeoutMs: 20_000 });
});

test('the real server-update reaches launchfit (202 queued), by app name and by folder name', async () => {
  await lf.stop();
  // Restart without fast polling, so the update is the one server-update asked for.
  lf = await startLaunchfit(w.deploy);
  const m = await waitFor(() => /control listening on (http:\/\/\S+)/.exec(lf.output()), {
    what: 'the control listener',
  });
  base = m![1];
  await w.publish('1.2');
  const list = path.join(w.base, 'slavelist.txt');
  writeFileSync(list, `# launchfit hosts\n${base}\n`);
  const r = await runScript('server-update', ['my-app', '--list', list, '--secret-file', secretFile, '--json']);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const [result] = JSON.parse(r.stdout);
  assert.is(result.ok, true);
  assert.is(result.status, 202);
  await waitFor(async () => (await askApp(w.appPort)) === '1.2', { what: 'app 1.2', timeoutMs: 30_000 });
  const byFolder = await runScript('server-update', ['deploy', '--list', list, '--secret-file', secretFile]);
  assert.is(byFolder.exitCode, 0, byFolder.stderr);
});

test("&wait=1 answers the host's verdict: 500 for a release that rolled back (and again while it is offered), 200 installed, 200 already current", async () => {
  // The check the test before started (server-update deploy, not waited for) is over first: one
  // still queued would find 1.3 below and mark it bad before this test asks.
  const settled = await signed('/?repo=my-app&wait=1');
  assert.is(settled.status, 200, await settled.text());
  await w.publish('1.3', { files: { crash: '' } });
  const rolledBack = await signed('/?repo=my-app&wait=1');
  const rb = await rolledBack.json();
  assert.is(rolledBack.status, 500, JSON.stringify(rb));
  assert.is(rb.ok, false);
  assert.match(
    rb.error,
    /my-app-gnu-linux-1\.3 did not stay up for 1\.5 s; marked bad and went back to my-app-gnu-linux-1\.2/,
    rb.error,
  );
  await waitFor(async () => (await askApp(w.appPort)) === '1.2', { what: 'app 1.2 again', timeoutMs: 20_000 });
  // Asked again while VERSION still offers 1.3 (unchanged, so a conditional GET would be a 304):
  // still a failure, not "nothing new".
  const again = await signed('/?repo=my-app&wait=1');
  const ag = await again.json();
  assert.is(again.status, 500, JSON.stringify(ag));
  assert.match(ag.error, /Version 1\.3 is marked bad/);
  await w.publish('1.4');
  const installed = await signed('/?repo=my-app&wait=1');
  assert.is(installed.status, 200);
  assert.is((await installed.json()).result.action, 'installed');
  const current = await signed('/?repo=my-app&wait=1');
  const cur = await current.json();
  assert.is(current.status, 200, JSON.stringify(cur));
  assert.is(cur.result.action, 'up-to-date', 'already current');
  await waitFor(async () => (await askApp(w.appPort)) === '1.4', { what: 'app 1.4', timeoutMs: 20_000 });
});

test.run();
