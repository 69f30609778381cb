// The app cannot steer its host. With `app.user`, the app runs as another Unix
// user; it tries what a compromised app would — `POST /rollback?to=<a bad version>&force=1` on
// the control socket — and the kernel refuses it (the socket's folder is the deploy folder
// owner's, mode 0700). Its environment has no LAUNCHFIT_DIR. The deploy folder's owner (root
// here) still updates, rolls back and asks for status. Without app.user the same app, running as
// launchfit's own user, does reach the socket: that is what app.user is for. Needs root (setuid).
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MARK_VARIABLE, processMarkOf } from '../../../lib/launchfit/deploy-folder/app-env.ts';
import {
  ensureSystemUser,
  rootBuildUser,
  runCommand,
  runScript,
  scriptCommand,
  waitFor,
} from '../../_helpers/common.ts';
import {
  askApp,
  currentOf,
  makeWorld,
  startLaunchfit,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

// A compromised app: it reports who it runs as and its environment, then asks the control
// socket (whose path it is given, as it could guess it) to roll back to the version in TARGET,
// forcing past its bad mark; it retries while nothing listens yet, then reports the answer.
const PROBE_APP = `
const fs = require('node:fs'), http = require('node:http'), path = require('node:path');
const version = fs.readFileSync(path.join(__dirname, 'version.txt'), 'utf8').trim();
const report = (what, data) => fs.writeFileSync(path.join(process.env.REPORT, version + '-' + process.pid + '-' + what + '.json'), JSON.stringify(data));
report('env', { uid: process.getuid(), env: process.env });
function attempt(tries) {
  const req = http.request({ socketPath: process.env.CONTROL_SOCKET, method: 'POST', path: '/rollback?to=' + process.env.TARGET + '&force=1' }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => report('control', { status: res.statusCode, body }));
  });
  req.on('error', (e) => {
    if ((e.code === 'ENOENT' || e.code === 'ECONNREFUSED') && tries > 0) setTimeout(() => attempt(tries - 1), 200);
    else report('control', { error: e.code });
  });
  req.end();
}
attempt(150);
http.createServer((req, res) => res.end(version + '\\n')).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Report {
  file: string;
  version: string;
  pid: number;
  data: any;
} // eslint-disable-line @typescript-eslint/no-explicit-any

/** The app's reports written so far; one still being written (not yet whole JSON) is not there yet. */
function reports(dir: string, what: string): Report[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(`-${what}.json`))
    .flatMap((file) => {
      const [version, pid] = file.split('-');
      try {
        return [{ file, version, pid: Number(pid), data: JSON.parse(readFileSync(path.join(dir, file), 'utf8')) }];
      } catch {
        return [];
      }
    });
}

/** 1.0 (the probe app) deployed; launchify.yml runs it as `user` (or as launchfit's user). */
async function probeWorld(
  user: string | undefined,
  uid: number,
): Promise<{ w: World; reportDir: string; writeConfig: (user?: string) => void }> {
  const w = await makeWorld();
  // The app's user must reach its release: the test folders are made 0700 by mkdtemp.
  chmodSync(w.base, 0o755);
  chmodSync(w.deploy, 0o755);
  const reportDir = path.join(w.base, 'report');
  mkdirSync(reportDir);
  chownSync(reportDir, uid, 0);
  const writeConfig = (who?: string) => {
    w.writeConfig('', who ? `  user: ${who}\n` : '');
    const file = path.join(w.deploy, 'launchify.yml');
    const socket = path.join(w.deploy, '.launchfit/control.sock');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(
        '  env:\n',
        `  env:\n    CONTROL_SOCKET: ${socket}\n    REPORT: ${reportDir}\n    TARGET: "1.1"\n`,
      ),
    );
  };
  await w.publish('1.0', { files: { 'server.cjs': PROBE_APP } });
  writeConfig(user);
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  return { w, reportDir, writeConfig };
}

test('with app.user the app cannot reach the control socket (EACCES), has no LAUNCHFIT_DIR, and cannot roll back; the owner can', async () => {
  const as = await rootBuildUser('running the app as another user needs root');
  if (!as) return;
  const { w, reportDir } = await probeWorld(as.user, as.uid);
  const meta = path.join(w.deploy, '.launchfit');
  chmodSync(meta, 0o755); // as an older launchfit or a hand-made folder may have left it
  let lf: Launchfit | undefined;
  try {
    lf = await startLaunchfit(w.deploy);
    const first = (await waitFor(() => reports(reportDir, 'control').find((r) => r.version === '1.0'), {
      timeoutMs: 60_000,
      what: "the 1.0 app's try at the socket",
    }))!;
    assert.equal(first.data, { error: 'EACCES' }, lf.output());
    assert.is(statSync(meta).mode & 0o777, 0o700, "run makes the socket's folder 0700");
    assert.is(statSync(path.join(meta, 'control.sock')).mode & 0o777, 0o600);
    const env = reports(reportDir, 'env').find((r) => r.pid === first.pid)!;
    assert.is(env.data.uid, as.uid, 'the app runs as app.user');
    assert.is(env.data.env.LAUNCHFIT_DIR, undefined, 'LAUNCHFIT_DIR is not passed to the app');
    assert.is(env.data.env[MARK_VARIABLE], processMarkOf(w.deploy));
    assert.is(env.data.env.USER, as.user);

    // The deploy folder's owner uses update, status and rollback as always.
    await w.publish('1.1', { files: { 'server.cjs': PROBE_APP } });
    const updated = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(updated.exitCode, 0, updated.stderr + lf.output());
    assert.is(await askApp(w.appPort), '1.1');
    const status = await runScript('launchfit', ['status', '--dir', w.deploy, '--json']);
    assert.is(status.exitCode, 0, status.stderr);
    assert.is(JSON.parse(status.stdout).app.state, 'running', status.stdout);
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 0, back.stderr + lf.output());
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');

    // 1.0 started again tries to force its way back to the bad 1.1: refused by the kernel.
    const again = (await waitFor(
      () => reports(reportDir, 'control').find((r) => r.version === '1.0' && r.pid !== first.pid),
      { timeoutMs: 60_000, what: "the restarted 1.0 app's try" },
    ))!;
    assert.equal(again.data, { error: 'EACCES' });
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.equal(JSON.parse(readFileSync(path.join(meta, 'state.json'), 'utf8')).bad, ['1.1']);
    assert.is(await askApp(w.appPort), '1.0');
  } finally {
    const code = await lf?.stop('SIGTERM');
    w.server.close();
    assert.is(code, 0, lf?.output());
  }
});

test("without app.user the same app runs as launchfit's user and does reach the socket: what app.user prevents", async () => {
  const as = await rootBuildUser('the comparison with app.user needs root');
  if (!as) return;
  const { w, reportDir } = await probeWorld(undefined, as.uid);
  chmodSync(reportDir, 0o777);
  let lf: Launchfit | undefined;
  try {
    lf = await startLaunchfit(w.deploy);
    await w.publish('1.1', { files: { 'server.cjs': PROBE_APP } });
    const updated = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(updated.exitCode, 0, updated.stderr + lf.output());
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 0, back.stderr + lf.output());
    // The restarted 1.0 asks for the bad 1.1 with force, and gets it.
    await waitFor(() => currentOf(w.deploy) === 'releases/my-app-gnu-linux-1.1', {
      timeoutMs: 60_000,
      what: "the app's own rollback to 1.1",
    });
    const env = reports(reportDir, 'env').find((r) => r.version === '1.0')!;
    assert.is(env.data.uid, 0);
    assert.is(env.data.env.LAUNCHFIT_DIR, undefined);
  } finally {
    const code = await lf?.stop('SIGTERM');
    w.server.close();
    assert.is(code, 0, lf?.output());
  }
});

test("a deploy folder owned by another user: run (as root) gives .launchfit to that owner, who updates, asks status and rolls back through the socket; the app's user still cannot", async () => {
  const as = await rootBuildUser('a deploy folder owned by another user needs root');
  if (!as) return;
  const owner = 'shipkitdeploy';
  const ownerUid = await ensureSystemUser(owner);
  const { w, reportDir } = await probeWorld(as.user, as.uid);
  chownSync(w.deploy, ownerUid, ownerUid);
  const asOwner = (args: string[]) =>
    runCommand('runuser', ['-u', owner, '--', ...scriptCommand('launchfit'), ...args, '--dir', w.deploy]);
  let lf: Launchfit | undefined;
  try {
    lf = await startLaunchfit(w.deploy);
    const meta = statSync(path.join(w.deploy, '.launchfit'));
    assert.equal({ uid: meta.uid, mode: meta.mode & 0o777 }, { uid: ownerUid, mode: 0o700 }, lf.output());
    assert.is(statSync(path.join(w.deploy, '.launchfit/control.sock')).uid, ownerUid);
    const tried = (await waitFor(() => reports(reportDir, 'control').find((r) => r.version === '1.0'), {
      timeoutMs: 60_000,
      what: "the app's try at the socket",
    }))!;
    assert.equal(tried.data, { error: 'EACCES' });

    await w.publish('1.1', { files: { 'server.cjs': PROBE_APP } });
    const updated = await asOwner(['update']);
    assert.is(updated.exitCode, 0, updated.stdout + updated.stderr + lf.output());
    assert.is(await askApp(w.appPort), '1.1');
    // Only the running launchfit knows the app's state: the answer came over the socket.
    const status = await asOwner(['status', '--json']);
    assert.is(status.exitCode, 0, status.stderr);
    assert.is(JSON.parse(status.stdout).app.state, 'running', status.stdout);
    const back = await asOwner(['rollback']);
    assert.is(back.exitCode, 0, back.stdout + back.stderr + lf.output());
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    const refused = await asOwner(['rollback', '--to', '1.1']);
    assert.is(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /--force/);
  } finally {
    const code = await lf?.stop('SIGTERM');
    w.server.close();
    assert.is(code, 0, lf?.output());
  }
});

test("hooks.before_symlink runs as app.user, without launchfit's control secret", async () => {
  const as = await rootBuildUser('running the hook as another user needs root');
  if (!as) return;
  const w = await makeWorld();
  chmodSync(w.base, 0o755);
  chmodSync(w.deploy, 0o755);
  const reportDir = path.join(w.base, 'report');
  mkdirSync(reportDir);
  chownSync(reportDir, as.uid, 0);
  await w.publish('1.0', {
    files: {
      'server.cjs':
        'require("node:http").createServer((q, s) => s.end("1.0\\n")).listen(Number(process.env.PORT), "127.0.0.1");',
    },
  });
  w.writeConfig(`hooks:\n  before_symlink: id -u > ${reportDir}/uid; env > ${reportDir}/env\n`, `  user: ${as.user}\n`);
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy], {
    env: { SHIPKIT_SECRET: 'launchfits-own-secret' },
  });
  assert.is(deployed.exitCode, 0, deployed.stderr);
  assert.is(readFileSync(path.join(reportDir, 'uid'), 'utf8').trim(), String(as.uid), 'the hook ran as app.user');
  const env = readFileSync(path.join(reportDir, 'env'), 'utf8');
  assert.not.ok(env.includes('launchfits-own-secret'), "the hook got launchfit's control secret");
  assert.ok(env.includes(`USER=${as.user}`), env);
  await w.server.close();
});
test.run();
