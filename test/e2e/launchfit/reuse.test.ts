// Going back to a release the host still keeps (docs/launchfit.md "Going back to a release the
// host still has"), with real processes, gpg keys and the loopback update server that counts
// requests: a host updates 1.0 → 1.1, the publisher rolls back to 1.0 through a rollout's steps
// (`release rollback --steps`, the fleet answered by test/fixtures/fleet-pull.ts, the host's report
// given to it as hook-server would keep it), and the host switches to its kept releases/…-1.0
// without a single request for the 1.0 tarball: `"way": "reuse"` in status and in the log. A kept
// folder whose files were changed on the host is not trusted: downloaded in full, and said so.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { hostsIn, startPullFleet } from '../../fixtures/fleet-pull.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const TARBALL_10 = 'my-app-gnu-linux-1.0.tar.gz';
const SECRET = 'fleet-secret-for-the-reuse-test';
const tarballRequests = (w: World, file: string) =>
  w.server.requests.filter((r) => r.path === file || r.path === `${file}.sig`).length;
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);
const versionAt = (w: World) => parseVersionFile(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'));

/** A host deployed with 1.0 (its host id in the first half of 1.0's buckets), then updated to 1.1. */
async function hostOn11(): Promise<World> {
  const w = await makeWorld();
  await w.publish('1.0');
  w.writeConfig();
  const [id] = hostsIn('1.0', 0, 50, 1);
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  writeFileSync(path.join(w.deploy, '.launchfit/host-id'), `${id}\n`, { mode: 0o600 });
  await w.publish('1.1');
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  const status = await statusOf(w.deploy);
  // 1.1 comes as a patch from 1.0 (docs/launchfit.md "Delta updates"); 1.0 stays kept.
  if (status.lastInstall.way !== 'patch' || !(status.lastInstall.bytes > 0)) {
    await w.server.close(); // or this file would wait on it until the runner kills it
    assert.unreachable(`1.1 was not installed from a patch: ${JSON.stringify(status)}`);
  }
  return w;
}

test('a rollback through the rollout: the host switches to its kept 1.0 without downloading it', async () => {
  const w = await hostOn11();
  const fleet = await startPullFleet('my-app', SECRET);
  try {
    const secretFile = path.join(w.base, 'fleet.secret');
    writeFileSync(secretFile, `${SECRET}\n`);
    const hostId = readFileSync(path.join(w.deploy, '.launchfit/host-id'), 'utf8').trim();
    fleet.hosts.set(hostId, { host: hostId, version: '1.1', result: 'running', seq: 2 } as never);
    const before = tarballRequests(w, TARBALL_10);
    assert.is(before, 2, 'the deploy fetched 1.0 and its .sig once');
    const [cmd, ...pre] = scriptCommand('release');
    const rollback = spawn(
      cmd,
      [
        ...pre,
        ...['rollback', 'my-app', '--to', w.updates, '--version', '1.0', '--key', w.secretKey],
        ...['--passphrase-file', w.passFile, '--fleet', fleet.url, '--fleet-secret', `file:${secretFile}`],
        ...['--steps', '50,100', '--wait', '60', '--poll', '0.1'],
      ],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    rollback.stdout!.on('data', (d) => (out += d));
    rollback.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => rollback.on('exit', resolve));
    await waitFor(() => out.includes('step 1/2 (ROLLOUT 50)') || rollback.exitCode !== null, {
      timeoutMs: 60_000,
      what: 'the rollback to sign its first step',
    });
    assert.equal([versionAt(w).version, versionAt(w).rollout], ['1.0', 50], out);
    // The host's bucket for 1.0 is below 50: it takes the rollback at the first step.
    const u = await update(w);
    assert.is(u.exitCode, 0, u.stdout + u.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.is(tarballRequests(w, TARBALL_10), before, 'no request for the 1.0 tarball or its .sig');
    assert.match(u.stdout + u.stderr, /switching to the release kept in releases\/.*way=reuse/);
    const status = await statusOf(w.deploy);
    assert.equal(
      [status.lastInstall.release, status.lastInstall.way, status.lastInstall.bytes],
      ['my-app-gnu-linux-1.0', 'reuse', 0],
    );
    assert.equal(status.bad, []);
    // Its report, as hook-server keeps it, lets the rollout go on to 100 and end.
    fleet.hosts.set(hostId, {
      host: hostId,
      version: '1.0',
      result: 'updated',
      seq: versionAt(w).seq,
    } as never);
    assert.is(await exited, 0, out);
    assert.match(out, /done: my-app 1\.0 is at ROLLOUT 100/);
    // At ROLLOUT 100 the host is up to date: still nothing fetched.
    assert.is((await update(w)).exitCode, 0);
    assert.is(tarballRequests(w, TARBALL_10), before);
  } finally {
    await fleet.close();
    await w.server.close();
  }
});

test('a kept folder whose files were changed on the host is downloaded in full, and the log says why', async () => {
  const w = await hostOn11();
  try {
    const kept = path.join(w.deploy, 'releases/my-app-gnu-linux-1.0');
    writeFileSync(path.join(kept, 'version.txt'), '6.6.6\n');
    const before = tarballRequests(w, TARBALL_10);
    const back = await runScript('release', [
      ...['rollback', 'my-app', '--to', w.updates, '--version', '1.0'],
      ...['--key', w.secretKey, '--passphrase-file', w.passFile],
    ]);
    assert.is(back.exitCode, 0, back.stderr);
    const u = await update(w);
    assert.is(u.exitCode, 0, u.stdout + u.stderr);
    assert.match(
      u.stdout + u.stderr,
      /releases\/my-app-gnu-linux-1\.0 is kept here, but its files were changed since it was installed.*downloading it in full/,
    );
    assert.is(tarballRequests(w, TARBALL_10), before + 2, 'the tarball and its .sig fetched again');
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    assert.is(readFileSync(path.join(kept, 'version.txt'), 'utf8'), '1.0\n', 'the changed folder was replaced');
    const status = await statusOf(w.deploy);
    assert.equal([status.lastInstall.way, status.lastInstall.bytes > 0], ['full', true]);
  } finally {
    await w.server.close();
  }
});

test.run();
