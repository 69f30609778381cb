// lib/launchfit/deploy-folder/app-env.ts: what the app is told (no LAUNCHFIT_DIR; its user's HOME/USER), how
// launchfit recognises its own app processes after a crash, who may start the app as app.user,
// and app.user in launchify.yml (the deploy folder's file only).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../../lib/core/errors.ts';
import {
  MARK_VARIABLE,
  appEnvironment,
  checkCanRunAs,
  isAppOf,
  processMarkOf,
  resolveAppUser,
  secretVariables,
  spawnIdentity,
} from '../../../../lib/launchfit/deploy-folder/app-env.ts';
import { loadLaunchConfig, parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const account = { name: 'site', uid: 1234, gid: 1235, home: '/srv/site' };

test("the app inherits launchfit's environment less LAUNCHFIT_DIR; app.env and LISTEN_* win; the mark and LAUNCHFIT_PID are last", () => {
  const env = appEnvironment({
    inherited: { PATH: '/bin', LAUNCHFIT_DIR: '/srv/app', HOME: '/root', UNSET: undefined },
    env: { PORT: '8080', PATH: '/opt/bin' },
    extra: { LISTEN_FDS: '1', GONE: undefined },
    dir: '/srv/app',
    launchfitPid: 42,
  });
  assert.equal(env, {
    PATH: '/opt/bin',
    HOME: '/root',
    PORT: '8080',
    LISTEN_FDS: '1',
    [MARK_VARIABLE]: processMarkOf('/srv/app'),
    LAUNCHFIT_PID: '42',
  });
  assert.not.ok(
    Object.values(env).some((v) => v.includes('/srv/app')),
    'nothing names the deploy folder',
  );
});

test("launchfit's own secrets (the env: sources of control.secret and updates.report_secret) are withheld; app.env may still set one", () => {
  const withheld = secretVariables(['env:SHIPKIT_SECRET', 'file:/etc/secret', undefined, 'env:REPORT_KEY']);
  assert.equal(withheld, ['SHIPKIT_SECRET', 'REPORT_KEY']);
  const env = appEnvironment({
    inherited: { PATH: '/bin', SHIPKIT_SECRET: 's1', REPORT_KEY: 'r1' },
    env: {},
    dir: '/d',
    launchfitPid: 1,
    withheld,
  });
  assert.equal(env, { PATH: '/bin', [MARK_VARIABLE]: processMarkOf('/d'), LAUNCHFIT_PID: '1' });
  const chosen = appEnvironment({
    inherited: { SHIPKIT_SECRET: 's1' },
    env: { SHIPKIT_SECRET: "the app's own" },
    dir: '/d',
    launchfitPid: 1,
    withheld,
  });
  assert.is(chosen.SHIPKIT_SECRET, "the app's own");
});

test("with app.user: that user's HOME, USER and LOGNAME (app.env may still set them), and its uid/gid for spawn", () => {
  const env = appEnvironment({
    inherited: { HOME: '/root', USER: 'root' },
    env: { LOGNAME: 'chosen' },
    dir: '/d',
    account,
  });
  assert.is(env.HOME, '/srv/site');
  assert.is(env.USER, 'site');
  assert.is(env.LOGNAME, 'chosen');
  assert.equal(spawnIdentity(account), { uid: 1234, gid: 1235 });
  assert.equal(spawnIdentity(undefined), {});
});

test("an app process is recognised by its deploy folder's mark, or by LAUNCHFIT_DIR (started by an older launchfit); not another folder's", () => {
  assert.is(processMarkOf('/srv/a'), processMarkOf('/srv/a'));
  assert.is.not(processMarkOf('/srv/a'), processMarkOf('/srv/b'));
  assert.match(processMarkOf('/srv/a'), /^[0-9a-f]{32}$/);
  assert.ok(isAppOf(['A=1', `${MARK_VARIABLE}=${processMarkOf('/srv/a')}`], '/srv/a'));
  assert.ok(isAppOf(['LAUNCHFIT_DIR=/srv/a'], '/srv/a'));
  assert.not.ok(isAppOf([`${MARK_VARIABLE}=${processMarkOf('/srv/b')}`, 'LAUNCHFIT_DIR=/srv/b'], '/srv/a'));
  assert.not.ok(isAppOf([], '/srv/a'));
});

test('starting the app as another user needs root and Node; as oneself, or without app.user, anything goes', () => {
  checkCanRunAs(undefined, { uid: 1000, deno: true });
  checkCanRunAs(account, { uid: 1234, deno: true });
  checkCanRunAs(account, { uid: 0, deno: false });
  assert.throws(
    () => checkCanRunAs(account, { uid: 1000, deno: false }),
    (e: Error) => e instanceof ConfigError && /needs launchfit to run as root/.test(e.message),
  );
  assert.throws(
    () => checkCanRunAs(account, { uid: 0, deno: true }),
    (e: Error) => e instanceof ConfigError && /Deno cannot start a process as another user/.test(e.message),
  );
});

test('resolveAppUser: a real account; an unknown name is a ConfigError naming the key', async () => {
  const root = await resolveAppUser('root', 'launchify.yml: app.user');
  assert.equal({ uid: root.uid, gid: root.gid, name: root.name }, { uid: 0, gid: 0, name: 'root' });
  try {
    await resolveAppUser('no-such-user-shipkit', 'launchify.yml: app.user');
    assert.unreachable('an unknown user was accepted');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match(
      (error as Error).message,
      /launchify\.yml: app\.user: user no-such-user-shipkit does not exist on this machine/,
    );
  }
});

test("app.user in launchify.yml: a user name; a release's own launchify.yml cannot set it; loading looks the account up", async () => {
  assert.is(parseLaunchConfigText('app:\n  exec: x\n  user: site\n', '/d/launchify.yml').app.user, 'site');
  for (const bad of ['"a b"', '"-rf"', '12', '""']) {
    assert.throws(() => parseLaunchConfigText(`app:\n  user: ${bad}\n`, '/d/launchify.yml'), /app\.user/, bad);
  }
  const dir = tmpDir('shipkit-app-user-');
  writeFileSync(path.join(dir, 'launchify.yml'), 'app:\n  exec: node server.js\n');
  const fromRelease = await loadLaunchConfig(dir, { user: 'root' });
  assert.is(fromRelease.app.user, undefined, 'a release does not choose who it runs as');
  writeFileSync(path.join(dir, 'launchify.yml'), 'app:\n  exec: node server.js\n  user: root\n');
  const loaded = await loadLaunchConfig(dir);
  assert.equal({ name: loaded.app.account?.name, uid: loaded.app.account?.uid }, { name: 'root', uid: 0 });
});

test.run();
