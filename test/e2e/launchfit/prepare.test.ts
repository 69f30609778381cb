// launchfit's `GET /prepare?repo=APP` (the fleet master's prepare before a host's wave): the
// offered release is downloaded, verified and unpacked, nothing switched and no hook run; the
// update that follows for the same VERSION installs it without downloading again, and a VERSION
// that changed meanwhile is downloaded as usual. A prepare repeated for the same release takes
// the staged copy (one download); staging another release, or installing one, drops it.
import { readdirSync, writeFileSync } from 'node:fs';
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

test.before(async () => {
  w = await makeWorld();
  await w.publish('1.0');
  const secretFile = path.join(w.base, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  w.writeConfig(`control:\n  listen: 127.0.0.1:${await freePort()}\n  secret: file:${secretFile}\n`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(w.deploy, { LAUNCHFIT_INTERVAL_MS: '3600000' });
  base = (await waitFor(() => /control listening on (http:\/\/\S+)/.exec(lf.output()), {
    what: 'the control listener',
  }))![1];
  await waitFor(async () => (await askApp(w.appPort)) === '1.0', { what: 'app 1.0', timeoutMs: 20_000 });
});

test.after(async () => {
  await lf.stop();
  await w.server.close();
});

const signed = (pathAndQuery: string) =>
  fetch(`${base}${pathAndQuery}`, {
    headers: signRequest(SECRET, 'GET', pathAndQuery),
    signal: AbortSignal.timeout(120_000),
  });
/** The release's files fetched: its tarball, or a patch to it (delta updates). */
const downloads = (version: string) =>
  w.server.requests.filter((r) => r.path.endsWith(`-${version}.tar.gz`) || r.path.includes(`-${version}.from-`)).length;

test('prepare stages the release without switching; the update then installs it without a second download', async () => {
  await w.publish('1.1');
  const res = await signed('/prepare?repo=my-app');
  assert.is(res.status, 202);
  assert.equal(await res.json(), { repo: 'my-app', state: 'preparing' });
  await waitFor(() => lf.output().includes('release staged: downloaded'), {
    what: 'the release staged',
    timeoutMs: 90_000,
  });
  assert.is(await askApp(w.appPort), '1.0', 'nothing switched');
  const status = await (await signed('/status')).json();
  assert.is(status.result.version, '1.0');
  assert.is(downloads('1.1'), 1);
  const update = await signed('/?repo=my-app&wait=1');
  const body = await update.json();
  assert.is(update.status, 200, JSON.stringify(body));
  assert.is(body.result.action, 'installed');
  assert.is(downloads('1.1'), 1, 'not downloaded again');
  assert.match(lf.output(), /installing the release staged before/);
  await waitFor(async () => (await askApp(w.appPort)) === '1.1', { what: 'app 1.1', timeoutMs: 20_000 });
});

test('a release staged for a VERSION that changed since is not used: the offered one is downloaded', async () => {
  await w.publish('1.2');
  assert.is((await signed('/prepare?repo=my-app')).status, 202);
  await waitFor(() => lf.output().split('release staged: downloaded').length === 3, {
    what: '1.2 staged',
    timeoutMs: 90_000,
  });
  assert.is(downloads('1.2'), 1);
  await w.publish('1.3');
  const update = await signed('/?repo=my-app&wait=1');
  assert.is(update.status, 200, await update.clone().text());
  assert.is((await update.json()).result.version, '1.3');
  assert.is(downloads('1.3'), 1);
  await waitFor(async () => (await askApp(w.appPort)) === '1.3', { what: 'app 1.3', timeoutMs: 20_000 });
});

const staged = () =>
  readdirSync(path.join(w.deploy, '.launchfit', 'tmp'))
    .filter((n) => n.startsWith('staged-'))
    .sort();
/** Prepares that have ended, by their log line: a new download or the staged copy taken. */
const prepared = () => lf.output().match(/release staged: downloaded|release already staged/g)?.length ?? 0;

test('prepare repeated 5 times downloads the release once; staging another drops it; the update takes the staged one', async () => {
  await w.publish('1.4');
  for (let i = 1; i <= 5; i++) {
    const before = prepared();
    assert.is((await signed('/prepare?repo=my-app')).status, 202);
    await waitFor(() => prepared() === before + 1, { what: `prepare ${i}`, timeoutMs: 90_000 });
  }
  assert.is(downloads('1.4'), 1, 'downloaded once for 5 prepares');
  assert.is(lf.output().match(/release already staged/g)?.length, 4);
  assert.equal(staged(), ['staged-my-app-gnu-linux-1.4', 'staged-my-app-gnu-linux-1.4.json']);
  assert.is(await askApp(w.appPort), '1.3', 'nothing switched');

  await w.publish('1.5');
  const before = prepared();
  assert.is((await signed('/prepare?repo=my-app')).status, 202);
  await waitFor(() => prepared() === before + 1, { what: 'prepare 1.5', timeoutMs: 90_000 });
  assert.equal(staged(), ['staged-my-app-gnu-linux-1.5', 'staged-my-app-gnu-linux-1.5.json'], '1.4 dropped');
  const update = await signed('/?repo=my-app&wait=1');
  assert.is(update.status, 200, await update.clone().text());
  assert.is((await update.json()).result.version, '1.5');
  assert.is(downloads('1.5'), 1, 'the update took the staged copy');
  assert.equal(staged(), [], 'nothing staged is left once it is installed');
  await waitFor(async () => (await askApp(w.appPort)) === '1.5', { what: 'app 1.5', timeoutMs: 20_000 });
});

test('a listener without prepare (a slave) answers 404 to it, never an update', async () => {
  const { readControlRequest } = await import('../../../lib/http/control-request.ts');
  const req = { method: 'GET', url: '/prepare?repo=my-app', headers: {} } as never;
  assert.equal(readControlRequest(req, {}), {
    kind: 'refused',
    status: 404,
    error: 'not found',
    reason: 'not found',
    headers: undefined,
  });
  assert.equal(readControlRequest(req, { prepare: true }), { kind: 'prepare', repo: 'my-app' });
});

test.run();
