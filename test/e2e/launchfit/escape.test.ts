// An app that escapes supervision (audit N02). The app kills its instance's wrapper with SIGKILL
// and goes on serving: with app.user the wrapper is launchfit's (root's), so the kill is refused
// (EPERM); as launchfit's own user it succeeds, and launchfit ends the escaped app (it carries
// the folder's mark outside any instance) before it starts the next, which binds the port. A
// restarted `launchfit run` ends a marked process a previous one left outside its instances.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MARK_VARIABLE, processMarkOf } from '../../../lib/launchfit/deploy-folder/app-env.ts';
import { rootBuildUser, runScript, waitFor } from '../../_helpers/common.ts';
import {
  askApp,
  appYml,
  deployedWorld,
  isRunning,
  makeWorld,
  startLaunchfit,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

/**
 * The first start of this app kills its wrapper (its parent) and records how that went; every
 * start serves its pid. The outcome says 'killing' first: once the wrapper is gone, launchfit may
 * end the app before it writes 'killed' (each write is a rename, never read half-written).
 */
const escapingApp = (report: string) => `
const fs = require('node:fs'), http = require('node:http'), path = require('node:path');
const report = ${JSON.stringify(report)};
const first = path.join(report, 'first');
const record = (outcome) => {
  fs.writeFileSync(path.join(report, 'outcome.new'), JSON.stringify({ outcome, uid: process.getuid() }));
  fs.renameSync(path.join(report, 'outcome.new'), path.join(report, 'outcome'));
};
if (!fs.existsSync(first)) {
  fs.writeFileSync(first, String(process.pid));
  record('killing');
  let outcome = 'killed';
  try { process.kill(process.ppid, 'SIGKILL'); } catch (e) { outcome = e.code; }
  record(outcome);
}
http.createServer((q, s) => s.end(process.pid + '\\n')).listen(Number(process.env.PORT), '127.0.0.1');
`;

async function escapingWorld(user?: { name: string; uid: number }): Promise<{ w: World; report: string }> {
  const w = await makeWorld();
  chmodSync(w.base, 0o755);
  chmodSync(w.deploy, 0o755);
  const report = path.join(w.base, 'report');
  mkdirSync(report);
  if (user) chownSync(report, user.uid, 0);
  await w.publish('1.0', {
    files: { 'server.cjs': escapingApp(report) },
    yml: appYml('  forever: true\n  stable_after: 1\n'),
  });
  w.writeConfig('', user ? `  user: ${user.name}\n` : '');
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  return { w, report };
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

test('with app.user the app cannot kill the wrapper that supervises it (EPERM), and keeps being supervised', async () => {
  const as = await rootBuildUser('running the app as another user needs root');
  if (!as) return;
  const { w, report } = await escapingWorld({ name: as.user, uid: as.uid });
  let lf: Launchfit | undefined;
  try {
    lf = await startLaunchfit(w.deploy);
    const outcome = path.join(report, 'outcome');
    await waitFor(() => existsSync(outcome) && readJson(outcome).outcome !== 'killing', {
      timeoutMs: 30_000,
      what: "the app's try",
    });
    assert.equal(readJson(outcome), { outcome: 'EPERM', uid: as.uid }, lf.output());
    const first = Number(readFileSync(path.join(report, 'first'), 'utf8'));
    // The app writes its outcome before it listens: wait for it to serve, then it must be the first.
    const served = await waitFor(() => askApp(w.appPort), { timeoutMs: 15_000, what: 'the app to serve' });
    assert.is(served, String(first), 'the app serves, under its wrapper');
  } finally {
    const code = await lf?.stop('SIGTERM');
    await w.server.close();
    assert.is(code, 0, lf?.output());
  }
});

test('an app that kills its wrapper is ended by launchfit, and the next one serves on its port; none outlives launchfit', async () => {
  const { w, report } = await escapingWorld();
  let lf: Launchfit | undefined;
  try {
    lf = await startLaunchfit(w.deploy);
    await waitFor(() => existsSync(path.join(report, 'outcome')), { timeoutMs: 30_000, what: "the app's kill" });
    // 'killing' when launchfit ended the app before it could write 'killed' (the waits below say it did).
    assert.ok(['killing', 'killed'].includes(readJson(path.join(report, 'outcome')).outcome), lf.output());
    const escaped = Number(readFileSync(path.join(report, 'first'), 'utf8'));
    await waitFor(() => !isRunning(escaped), { timeoutMs: 15_000, what: 'the escaped app to be ended' });
    await waitFor(() => /escaped its instance/.test(lf!.output()), { what: 'launchfit to say so' });
    const answer = await waitFor(
      async () => {
        const pid = await askApp(w.appPort);
        return pid && pid !== String(escaped) ? pid : undefined;
      },
      { timeoutMs: 20_000, what: 'the restarted app to serve' },
    );
    assert.not.match(lf.output(), /EADDRINUSE/, 'the restarted app found its port free');
    const code = await lf.stop('SIGTERM');
    assert.is(code, 0, lf.output());
    assert.not.ok(isRunning(Number(answer)), 'the app stopped with launchfit');
  } finally {
    await lf?.stop('SIGKILL');
    await w.server.close();
  }
});

test('a restarted `launchfit run` ends a process with the folder mark that no instance holds', async () => {
  const w = await deployedWorld('1.0');
  // As an app that escaped under a previous launchfit: marked, re-parented away from any instance.
  const stray = spawn('sleep', ['300'], {
    env: { ...process.env, [MARK_VARIABLE]: processMarkOf(w.deploy) },
    detached: true,
    stdio: 'ignore',
  });
  stray.unref();
  const unrelated = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  unrelated.unref();
  let lf: Launchfit | undefined;
  try {
    assert.ok(isRunning(stray.pid!));
    lf = await startLaunchfit(w.deploy);
    await waitFor(() => !isRunning(stray.pid!), { timeoutMs: 10_000, what: 'the stray to be ended' });
    assert.match(lf.output(), /ended 1 processes of the app a previous launchfit left/);
    assert.ok(isRunning(unrelated.pid!), 'a process without the mark is left alone');
  } finally {
    unrelated.kill('SIGKILL');
    stray.kill('SIGKILL');
    await lf?.stop('SIGTERM');
    await w.server.close();
  }
});

test.run();
