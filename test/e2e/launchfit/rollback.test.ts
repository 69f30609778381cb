// `launchfit rollback` under `launchfit run`, without app.listen: like an update, it returns once
// the app it went back to is healthy again — its health check answered and kept answering for
// healthy_after, or (no app.health) it stayed up for healthy_after — and says how long that took. It used to return at the start, so the
// next request a person made still found nothing listening. The app here loads for a while
// before it listens (the release's `slow-start` file).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, waitFor } from '../../_helpers/common.ts';
import { askApp, currentOf, makeWorld, startLaunchfit, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const SLOW_MS = 1200;

/** 1.0 (slow to listen) deployed and running under `launchfit run`, then updated to 1.1. */
async function runningOn11(deployApp: (w: World) => string, healthyAfter: number) {
  const w = await makeWorld();
  const yml = `app:\n  exec: node server.cjs\n  healthy_after: ${healthyAfter}\n  kill_timeout: 2\n`;
  await w.publish('1.0', { files: { 'slow-start': String(SLOW_MS) }, yml });
  w.writeConfig('', deployApp(w));
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  const lf = await startLaunchfit(w.deploy);
  await w.publish('1.1', { yml });
  const updated = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(updated.exitCode, 0, updated.stderr + lf.output());
  assert.is(await askApp(w.appPort), '1.1');
  return { w, lf };
}

async function stop(w: World, lf: Awaited<ReturnType<typeof startLaunchfit>>) {
  const code = await lf.stop('SIGTERM');
  w.server.close();
  assert.is(code, 0, lf.output());
}

test('with app.health: rollback returns once the old release answered its health check and kept answering healthy_after, and says after how long', async () => {
  // The app has healthy_after to answer at all: SLOW_MS, plus starting node on a loaded machine
  // (CI once took over 0.8 s for that, and a 2 s healthy_after failed the rollback).
  const HEALTHY_AFTER = 3.5;
  const { w, lf } = await runningOn11(
    (world) => `  health:\n    http: http://127.0.0.1:${world.appPort}/\n    interval: 0.1\n    timeout: 1\n`,
    HEALTHY_AFTER,
  );
  try {
    const t0 = Date.now();
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    const took = Date.now() - t0;
    assert.is(back.exitCode, 0, back.stderr + lf.output());
    // Asked the moment the command returns, without waiting: the app answers.
    assert.is(await askApp(w.appPort, 500), '1.0', lf.output());
    const m =
      /^Rolled back to my-app-gnu-linux-1\.0 from my-app-gnu-linux-1\.1 \(now marked bad\); the app was up again (\d+\.\d) s after the old one was told to stop\.\n$/.exec(
        back.stdout,
      );
    assert.ok(m, back.stdout);
    console.log(`with app.health: ${back.stdout.trim()}`);
    // The app listens after SLOW_MS, then must keep answering for healthy_after.
    const seconds = Number(m![1]);
    assert.ok(
      seconds * 1000 + 50 >= SLOW_MS + HEALTHY_AFTER * 1000,
      `${seconds} s (the app listens after ${SLOW_MS} ms; healthy_after is ${HEALTHY_AFTER} s)`,
    );
    assert.ok(took >= SLOW_MS + HEALTHY_AFTER * 1000, `the command took ${took} ms`);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.match(lf.output(), /rolled back; the app is up again.*upAfterMs/);
  } finally {
    await stop(w, lf);
  }
});

test('without app.health: rollback waits for healthy_after, as an update does; --json has upAfterMs', async () => {
  const { w, lf } = await runningOn11(() => '', 1.5);
  try {
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy, '--json']);
    assert.is(back.exitCode, 0, back.stderr + lf.output());
    // Without a health check, "up" is "alive for healthy_after"; it may still be starting to listen.
    await waitFor(async () => (await askApp(w.appPort, 500)) === '1.0', { what: 'release 1.0 to answer' });
    const result = JSON.parse(back.stdout);
    console.log(`without app.health: ${result.message}`);
    assert.is(result.action, 'rolled-back');
    assert.is(result.release, 'my-app-gnu-linux-1.0');
    assert.ok(result.upAfterMs >= 1500 && result.upAfterMs < 6000, `upAfterMs ${result.upAfterMs}`);
    assert.match(result.message, /the app was up again \d+\.\d s after the old one was told to stop\.$/);
  } finally {
    await stop(w, lf);
  }
});

test('a release gone back to that no longer starts: exit 1 says so and why; status keeps its output', async () => {
  const { w, lf } = await runningOn11(() => '', 1.5);
  try {
    // Something the old release needs has gone since it ran (here: it now crashes at once).
    writeFileSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0', 'crash'), '');
    rmSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0', 'slow-start'));
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 1, back.stdout + back.stderr);
    assert.match(
      back.stderr,
      /Rolled back to my-app-gnu-linux-1\.0 from my-app-gnu-linux-1\.1 \(now marked bad\), but it did not stay up for 1\.5 s; `launchfit status` shows its last output\./,
    );
    const status = await statusOf(w.deploy);
    assert.is(status.lastFailure.release, 'my-app-gnu-linux-1.0');
    assert.ok(
      status.lastFailure.output.some((line: string) => /crashing on purpose/.test(line)),
      JSON.stringify(status.lastFailure),
    );
  } finally {
    await stop(w, lf);
  }
});

test('without launchfit run: rollback --to a version marked bad is refused (exit 2, naming --force) and changes nothing; with --force it goes back', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.writeConfig();
    assert.is((await runScript('launchfit', ['deploy', '--dir', w.deploy])).exitCode, 0);
    await w.publish('1.1');
    const updated = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(updated.exitCode, 0, updated.stderr);
    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 0, back.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    const stateFile = path.join(w.deploy, '.launchfit/state.json');
    const before = readFileSync(stateFile, 'utf8');
    assert.equal(JSON.parse(before).bad, ['1.1']);

    const refused = await runScript('launchfit', ['rollback', '--to', '1.1', '--dir', w.deploy]);
    assert.is(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /Version 1\.1 is marked bad .*`launchfit rollback --to 1\.1 --force`/);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.is(readFileSync(stateFile, 'utf8'), before);

    const forced = await runScript('launchfit', ['rollback', '--to', '1.1', '--force', '--dir', w.deploy]);
    assert.is(forced.exitCode, 0, forced.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
    assert.equal(JSON.parse(readFileSync(stateFile, 'utf8')).bad, ['1.0']);
  } finally {
    w.server.close();
  }
});

test.run();
