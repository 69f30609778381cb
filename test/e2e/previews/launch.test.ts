// A pull request's preview under the real launchfit (lib/previews/launch.ts): a built folder
// published as a signed release and launched on its own port; a second build switched to with no
// failed request under load; the app sees only the variables it was given (never the parent's
// SECRET_TOKEN); an app that never answers health is refused and leaves nothing running; a
// teardown leaves no process in /proc and no folder. Node only: launchfit's app.listen needs Node.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError, messageOf } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import {
  ensurePreviewKey,
  freePort,
  launchOrUpdate,
  publishBuild,
  repointPreview,
  runningLaunchfit,
  stopPreview,
  type LaunchSpec,
  type PreviewKey,
} from '../../../lib/previews/launch.ts';
import { startUpdateFiles, type UpdateFilesServer } from '../../../lib/previews/update-files.ts';
import { tmpDir } from '../../_helpers/common.ts';
import { get, startLoad } from '../../fixtures/launchfit/load.ts';
import { processesOf } from '../../fixtures/previews/processes.ts';

const APP = path.join(import.meta.dirname, '../../fixtures/previews/app.cjs');
const SHA1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const SHA2 = 'b2c3d4e5f60718293a4b5c6d7e8f901234567890';

let base: string;
let previews: string;
let key: PreviewKey;
let files: UpdateFilesServer;
let live: LaunchSpec;

/** A built folder: the app and its VERSION.txt (and UNHEALTHY, for an app that never gets well). */
function build(version: string, { unhealthy = false } = {}): string {
  const dir = path.join(base, `build-${version}-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir);
  cpSync(APP, path.join(dir, 'app.cjs'));
  writeFileSync(path.join(dir, 'VERSION.txt'), `${version}\n`);
  if (unhealthy) writeFileSync(path.join(dir, 'UNHEALTHY'), '');
  return dir;
}

async function specFor(pr: number, env: Record<string, string> = {}): Promise<LaunchSpec> {
  const name = `pr-${pr}`;
  return {
    folder: path.join(previews, 'octo__site', name),
    name,
    start: 'exec node app.cjs',
    health: '/health',
    env,
    port: await freePort(),
    key,
    updatesUrl: files.urlFor('octo__site', name),
    log: silentLogger,
  };
}

test.before(async () => {
  base = tmpDir('shipkit-preview-');
  previews = path.join(base, 'previews');
  process.env.SECRET_TOKEN = 'hook-server-only'; // the parent's secret: it must never reach a preview
  key = await ensurePreviewKey(previews);
  files = await startUpdateFiles(previews);
});

test.after(async () => {
  for (const folder of [live?.folder, path.join(previews, 'octo__site', 'pr-2')])
    if (folder) await stopPreview(folder, { graceMs: 2_000 }).catch(() => {});
  await files?.close();
});

test('the preview key is made once, 0600, and reused', async () => {
  for (const file of [key.secretFile, key.passphraseFile]) assert.is(statSync(file).mode & 0o777, 0o600, file);
  assert.match(readFileSync(key.publicFile, 'utf8'), 'BEGIN PGP PUBLIC KEY BLOCK');
  const again = await ensurePreviewKey(previews);
  assert.equal(again, key);
  assert.is(readFileSync(again.publicFile, 'utf8'), readFileSync(key.publicFile, 'utf8'));
});

test('a built folder is published and launched: its port answers v1, with only the variables given', async () => {
  live = await specFor(1, { API_URL: 'https://staging.example.com', SHIPKIT_PR: '1' });
  const { version } = await publishBuild(live, build('v1'), SHA1);
  assert.match(version, /^1\.\d{10}\.a1b2c3d$/);
  const started = Date.now();
  const launched = await launchOrUpdate(live, { timeoutMs: 30_000 });
  console.log(`  first launch took ${Date.now() - started} ms`);
  assert.ok(launched.switched);
  assert.equal(await runningLaunchfit(live.folder), { pid: launched.pid });
  assert.equal(await get({ port: live.port }), { status: 200, body: 'v1' });
  const names = JSON.parse((await get({ port: live.port }, '/env')).body!) as string[];
  assert.ok(names.includes('API_URL') && names.includes('SHIPKIT_PR') && names.includes('PORT'), names.join(' '));
  assert.not.ok(names.includes('SECRET_TOKEN'), 'the parent environment stays out');
  const allowed = /^(API_URL|SHIPKIT_PR|PORT|LISTEN_\w+|LAUNCHFIT_PID|LAUNCHFIT_MARK|PATH|HOME|LANG|TZ|PWD|SHLVL|_)$/;
  assert.equal(
    names.filter((n) => !allowed.test(n)),
    [],
    'nothing but what was given, PORT, launchfit own and PATH/HOME/LANG',
  );
  const yml = readFileSync(path.join(live.folder, 'host', 'launchify.yml'), 'utf8');
  // It holds the app's secrets: launchfit's alone.
  assert.is(statSync(path.join(live.folder, 'host', 'launchify.yml')).mode & 0o777, 0o600);
  assert.match(yml, `listen: ["127.0.0.1:${live.port}"]`);
  assert.match(yml, 'interval: 86400');
});

test('a second build is switched to while a loop GETs it: v2, and no request fails', async () => {
  const load = startLoad({ port: live.port }, { concurrency: 3 });
  await new Promise((r) => setTimeout(r, 300));
  const { version } = await publishBuild(live, build('v2'), SHA2);
  assert.match(version, /\.b2c3d4e$/);
  const started = Date.now();
  const updated = await launchOrUpdate(live, { timeoutMs: 30_000 });
  console.log(`  update took ${Date.now() - started} ms`);
  await new Promise((r) => setTimeout(r, 300));
  const { ok, failed, bodies } = await load.stop();
  assert.ok(updated.switched);
  assert.equal(failed, [], `failed requests: ${JSON.stringify(failed.slice(0, 3))}`);
  assert.ok(ok > 20, `${ok} requests answered`);
  assert.ok(bodies.has('v1') && bodies.has('v2'), [...bodies].join(' '));
  assert.equal(await get({ port: live.port }), { status: 200, body: 'v2' });
  // Nothing new: launchfit answers, nothing switches.
  assert.is((await launchOrUpdate(live, { timeoutMs: 30_000 })).switched, false);
});

test('repointPreview: the update server moved; the same launchfit takes the new URL, the app keeps serving', async () => {
  const before = (await runningLaunchfit(live.folder))!;
  const oldPort = files.port;
  await files.close();
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(oldPort, '127.0.0.1', () => resolve()));
  try {
    files = await startUpdateFiles(previews);
  } finally {
    squatter.close();
  }
  assert.is(files.movedFrom, oldPort);
  const load = startLoad({ port: live.port }, { concurrency: 2 });
  live = { ...live, updatesUrl: files.urlFor('octo__site', live.name) };
  const { pid } = await repointPreview(live.folder, live.updatesUrl);
  const { failed, bodies } = await load.stop();
  assert.equal(failed, [], `failed requests: ${JSON.stringify(failed.slice(0, 3))}`);
  assert.equal([...bodies], ['v2']);
  assert.is(pid, before.pid, 'the same launchfit host: its launcher reads launchify.yml again at each check');
  assert.equal(await runningLaunchfit(live.folder), { pid });
  assert.match(readFileSync(path.join(live.folder, 'host', 'launchify.yml'), 'utf8'), live.updatesUrl);
  await publishBuild(live, build('v3'), SHA1);
  assert.ok((await launchOrUpdate(live, { timeoutMs: 30_000 })).switched);
  assert.equal(await get({ port: live.port }), { status: 200, body: 'v3' });
});

test('an app that never answers health 2xx: a clear error once launchfit gives up, nothing left after stopPreview', async () => {
  const spec = await specFor(2);
  await publishBuild(spec, build('sick', { unhealthy: true }), SHA1);
  const started = Date.now();
  try {
    await launchOrUpdate(spec, { timeoutMs: 60_000 });
    assert.unreachable('an unhealthy app was taken');
  } catch (error) {
    console.log(`  failed after ${Date.now() - started} ms (the wait allowed 60,000)`);
    assert.instance(error, WorkError, messageOf(error));
    assert.match(messageOf(error), /with a 2xx \(its last answer: 500\): it answered 500 for 20 s/);
    assert.match(messageOf(error), `pr-2 did not answer GET http://127.0.0.1:${spec.port}/health with a 2xx`);
    assert.match(messageOf(error), 'app sick pid');
  }
  assert.is(await runningLaunchfit(spec.folder), undefined, 'a first launch that failed is stopped');
  assert.equal(processesOf(spec.folder), []);
  await stopPreview(spec.folder, { graceMs: 2_000 });
  assert.not.ok(existsSync(spec.folder));
  assert.equal(processesOf(spec.folder), []);
});

test('binds: app: the app binds $PORT itself (no LISTEN_FDS); a push stops it, then starts the new build', async () => {
  const own = { ...(await specFor(3)), handOverSocket: false };
  try {
    await publishBuild(own, build('p1'), SHA1);
    await launchOrUpdate(own, { timeoutMs: 30_000 });
    assert.equal(await get({ port: own.port }), { status: 200, body: 'p1' });
    const names = JSON.parse((await get({ port: own.port }, '/env')).body!) as string[];
    assert.ok(names.includes('PORT') && !names.includes('LISTEN_FDS'), names.join(' '));
    assert.not.match(readFileSync(path.join(own.folder, 'host', 'launchify.yml'), 'utf8'), /listen:/);
    await publishBuild(own, build('p2'), SHA2);
    assert.ok((await launchOrUpdate(own, { timeoutMs: 30_000 })).switched);
    assert.equal(await get({ port: own.port }), { status: 200, body: 'p2' });
  } finally {
    await stopPreview(own.folder, { graceMs: 2_000 });
  }
  assert.equal(processesOf(own.folder), []);
});

test('stopPreview ends launchfit and the app, removes the folder, and may be called again', async () => {
  assert.ok(processesOf(live.folder).length >= 2, processesOf(live.folder).join('\n'));
  await stopPreview(live.folder, { graceMs: 5_000 });
  assert.equal(processesOf(live.folder), [], 'no process left');
  assert.not.ok(existsSync(live.folder));
  assert.ok((await get({ port: live.port }, '/', 1000)).error, 'the port no longer answers');
  assert.is(await runningLaunchfit(live.folder), undefined);
  await stopPreview(live.folder);
});

test.run();
