// @deno
// launchfit end to end: `release publish` makes the releases, a loopback HTTP server serves
// them, `launchfit URL` deploys into an empty folder, `launchfit run` supervises a real app that
// is asked for its version before, during and after an update; then rollback and status.
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript } from '../../_helpers/common.ts';
import { askApp, currentOf, makeWorld, startLaunchfit, type World } from '../../fixtures/launchfit/world.ts';

let w: World;

test.before(async () => {
  w = await makeWorld();
});

test.after(async () => {
  await w.server.close();
});

test('launchfit --help and a bad command', async () => {
  const help = await runScript('launchfit', ['--help']);
  assert.is(help.exitCode, 0);
  assert.match(help.stdout, /launchfit rollback/);
  const bad = await runScript('launchfit', ['frobnicate']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /Unknown command "frobnicate"/);
});

test('deploy refuses to run without a trusted key and writes nothing', async () => {
  await w.publish('1.0');
  const r = await runScript('launchfit', [w.server.url], { cwd: w.deploy });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /--keyfile/);
  assert.equal(
    readdirSync(w.deploy).filter((n) => n !== '.launchfit'),
    [],
  );
});

test('publish, deploy into an empty folder, run, update during traffic, rollback, status', async () => {
  const deployed = await runScript('launchfit', [w.server.url, '--keyfile', w.pubAsc], { cwd: w.deploy });
  assert.is(deployed.exitCode, 0, deployed.stderr);
  assert.match(deployed.stdout, /Installed my-app-gnu-linux-1\.0/);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  assert.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/server.cjs')));
  assert.match(readFileSync(path.join(w.deploy, 'launchify.yml'), 'utf8'), /keyfile: trusted.asc/);
  appendFileSync(path.join(w.deploy, 'launchify.yml'), `app:\n  env:\n    PORT: "${w.appPort}"\n`);

  const lf = await startLaunchfit(w.deploy);
  const socket = path.join(w.deploy, '.launchfit/control.sock');
  try {
    const first = await waitForVersion(w.appPort, '1.0');
    assert.is(first, '1.0');
    // The start line names the release, not a bare `app=true`.
    assert.match(lf.output(), /app started: release my-app-gnu-linux-1\.0 .*pid=\d+/);
    assert.not.match(lf.output(), /app=true/);

    // Ask the app every 5 ms while the update runs.
    await w.publish('1.1');
    const answers: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const v = await askApp(w.appPort, 1000);
        answers.push(v ?? '-');
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const updated = await runScript('launchfit', ['update', '--dir', w.deploy]);
    polling = false;
    await poller;
    assert.is(updated.exitCode, 0, updated.stderr + lf.output());
    assert.match(updated.stdout, /Installed my-app-gnu-linux-1\.1 \(was my-app-gnu-linux-1\.0\)/);
    assert.is(await askApp(w.appPort), '1.1');
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
    // Never anything but the old then the new version (and a short gap), never back.
    const seen = answers.filter((a) => a !== '-');
    assert.ok(seen.length > 0);
    assert.is(seen[0], '1.0');
    assert.ok(
      seen.indexOf('1.1') === -1 || seen.slice(seen.indexOf('1.1')).every((a) => a === '1.1'),
      answers.join(','),
    );

    const status = await runScript('launchfit', ['status', '--dir', w.deploy, '--json']);
    assert.is(status.exitCode, 0);
    const s = JSON.parse(status.stdout);
    assert.is(s.version, '1.1');
    assert.is(s.previous, 'my-app-gnu-linux-1.0');
    assert.is(s.app.state, 'running');
    assert.is(s.running, true);

    // An idle poll is a conditional GET answered 304.
    const before = w.server.requests.length;
    const idle = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(idle.exitCode, 0);
    const polls = w.server.requests.slice(before);
    assert.equal(
      polls.map((r) => `${r.path} ${r.status}`),
      ['VERSION 304'],
    );

    const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
    assert.is(back.exitCode, 0, back.stderr);
    assert.match(back.stdout, /Rolled back to my-app-gnu-linux-1\.0/);
    assert.is(await waitForVersion(w.appPort, '1.0'), '1.0');
    const after = (await requestOverSocket(socket, 'GET', '/status'))!.body.result as {
      bad: string[];
      version: string;
    };
    assert.equal(after.bad, ['1.1']);
    assert.is(after.version, '1.0');

    // 1.1 is marked bad: a check does not reinstall it.
    const again = await requestOverSocket(socket, 'POST', '/update');
    assert.ok(
      ['skipped-bad', 'not-modified'].includes((again!.body.result as { action: string }).action),
      JSON.stringify(again!.body),
    );
    assert.is(await askApp(w.appPort), '1.0');
    assert.is(await askApp(w.appPort), '1.0');
    // Versions compare as hex numbers: 1.1.0 is the bad 1.1 under another spelling.
    await w.publish('1.1.0');
    const respelled = await requestOverSocket(socket, 'POST', '/update');
    assert.is((respelled!.body.result as { action: string }).action, 'skipped-bad', JSON.stringify(respelled!.body));
    assert.is(await askApp(w.appPort), '1.0');

    // A newer release is taken again.
    await w.publish('1.2');
    const newer = await requestOverSocket(socket, 'POST', '/update');
    assert.is(newer!.body.ok, true, JSON.stringify(newer!.body));
    assert.is(await askApp(w.appPort), '1.2');

    // rollback --to the bad 1.1 without --force: refused (exit 2, naming --force), nothing changes.
    const stateBefore = readFileSync(path.join(w.deploy, '.launchfit/state.json'), 'utf8');
    const refused = await runScript('launchfit', ['rollback', '--to', '1.1', '--dir', w.deploy]);
    assert.is(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /Version 1\.1 is marked bad .*`launchfit rollback --to 1\.1 --force`/);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.2');
    assert.is(readFileSync(path.join(w.deploy, '.launchfit/state.json'), 'utf8'), stateBefore);
    assert.is(await askApp(w.appPort), '1.2');
    // With --force: the operator chose it, so it is no longer marked bad; 1.2, left, is.
    const chosen = await runScript('launchfit', ['rollback', '--to', '1.1', '--force', '--dir', w.deploy]);
    assert.is(chosen.exitCode, 0, chosen.stderr);
    assert.match(chosen.stdout, /Rolled back to my-app-gnu-linux-1\.1/);
    assert.is(await waitForVersion(w.appPort, '1.1'), '1.1');
    const marked = (await requestOverSocket(socket, 'GET', '/status'))!.body.result as {
      bad: string[];
      version: string;
    };
    assert.is(marked.version, '1.1');
    assert.equal(marked.bad, ['1.2']);
    // 1.1 is running and not bad, so the next check keeps it; 1.2 is not reinstalled.
    const kept = await requestOverSocket(socket, 'POST', '/update');
    assert.ok(
      ['skipped-bad', 'not-modified'].includes((kept!.body.result as { action: string }).action),
      JSON.stringify(kept!.body),
    );
    assert.is(await askApp(w.appPort), '1.1');
    await w.publish('1.3');
    const later = await requestOverSocket(socket, 'POST', '/update');
    assert.is(later!.body.ok, true, JSON.stringify(later!.body));
    assert.is(await askApp(w.appPort), '1.3');
  } finally {
    const code = await lf.stop('SIGTERM');
    assert.is(code, 0, lf.output());
  }
  assert.is(await askApp(w.appPort, 500), undefined, 'the app is stopped with launchfit');
  const offline = await runScript('launchfit', ['status', '--dir', w.deploy]);
  assert.match(offline.stdout, /current:  my-app-gnu-linux-1\.3 \(version 1\.3\)/);
  assert.match(offline.stdout, /launchfit run is not active/);
});

test('a second launchfit run on the same folder is refused', async () => {
  const lf = await startLaunchfit(w.deploy);
  try {
    const second = await runScript('launchfit', ['run', '--dir', w.deploy], { timeoutMs: 30_000 });
    assert.is(second.exitCode, 1);
    assert.match(second.stderr, /locked by process/);
  } finally {
    await lf.stop();
  }
});

async function waitForVersion(port: number, version: string): Promise<string | undefined> {
  const deadline = Date.now() + 20_000;
  let v: string | undefined;
  while (Date.now() < deadline) {
    v = await askApp(port, 1000);
    if (v === version) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return v;
}

test.run();
