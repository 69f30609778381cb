// The fleet simulator (test/fixtures/fleet-sim) against a real update server: Debian's nginx serving
// the folder the real `release publish` wrote. An idle fleet costs 304s of headers only (nginx's
// own ETag answered to launchfit's If-None-Match); ROLLOUT P brings in exactly the hosts whose
// rolloutBucket is below P, each downloading the tarball once; the update server down for a while
// costs failed polls and nothing else, and the hosts come back to it.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inRollout } from '../../../lib/release/format/bucket.ts';
import { runScript, tmpDir, waitFor } from '../../_helpers/common.ts';
import { startFleetSim, type FleetSim, type SimStats } from '../../fixtures/fleet-sim/index.ts';
import { nginxMissing, startUpdateNginx, type UpdateNginx } from '../../fixtures/fleet-sim/nginx.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';

const APP = 'my-app';
const HOSTS = 2000;
let base: string;
let dest: string;
let pub: Publisher;
let nginx: UpdateNginx;

async function publish(version: string, extra: string[] = []): Promise<void> {
  const src = path.join(base, `src-${version}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(src);
  writeFileSync(path.join(src, 'app.txt'), `version ${version}\n`);
  const r = await runScript('release', [
    'publish',
    src,
    '--name',
    APP,
    '--platform',
    'gnu-linux',
    '--version',
    version,
    '--key',
    pub.secret,
    '--passphrase-file',
    pub.passFile,
    '--to',
    dest,
    ...extra,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
}

const skip = nginxMissing();

/** The simulator's counters once `ready` holds for them. */
async function until(
  sim: FleetSim,
  ready: (s: SimStats) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<SimStats> {
  let last!: SimStats;
  await waitFor(async () => ready((last = await sim.fresh())), { timeoutMs, what });
  return last;
}

test.before(async () => {
  if (skip) return;
  base = tmpDir('shipkit-fleet-sim-');
  dest = path.join(base, 'updates');
  pub = await makePublisher(base, 'sim pass');
  await publish('1.0');
  nginx = await startUpdateNginx(dest);
});

test.after(async () => {
  await nginx?.stop();
});

test('idle: every poll after the first is a 304 of headers only; ROLLOUT 10 takes exactly the hosts bucketed below 10; nginx down and back', async () => {
  if (skip) {
    console.log(`skipped: ${skip}`);
    return;
  }
  const sim = startFleetSim({
    url: nginx.url,
    app: APP,
    hosts: HOSTS,
    processes: 2,
    intervalMs: 400,
    running: '1.0',
    seq: 1,
  });
  try {
    // Idle: each host has polled at least three times; the first poll of each is a 200, the rest 304.
    let s = await until(sim, (now) => now.polls >= HOSTS * 3, 'three polls per host');
    assert.is(s.pollErrors, 0);
    assert.is(s.changed, HOSTS, 'one full VERSION per host: its first poll');
    assert.is(s.notModified, s.polls - HOSTS, 'every later poll was answered 304');
    await waitFor(() => nginx.requests().filter((r) => r.path === '/VERSION').length >= s.polls, {
      what: 'nginx to log the polls',
    });
    const polls = nginx.requests().filter((r) => r.path === '/VERSION' && r.status === 304);
    assert.ok(polls.length >= HOSTS * 2, `${polls.length} 304s logged`);
    assert.ok(
      polls.every((r) => r.ifNoneMatch !== ''),
      'every 304 answered a conditional request',
    );
    const perPoll = polls.reduce((n, r) => n + r.sent + r.received, 0) / polls.length;
    assert.ok(perPoll < 1024, `an idle poll costs ${perPoll.toFixed(0)} bytes both ways, under 1 KB`);
    assert.ok(
      nginx.requests().every((r) => r.path !== `/${APP}-gnu-linux-1.0.tar.gz`),
      'nobody downloaded the release it runs',
    );

    // ROLLOUT 10: exactly the hosts whose bucket for 1.1 is below 10 take it, one download each.
    await publish('1.1', ['--rollout', '10']);
    const expected = sim.ids.filter((id) => inRollout(id, '1.1', 10)).length;
    assert.ok(expected > HOSTS * 0.06 && expected < HOSTS * 0.14, `${expected} hosts bucketed below 10`);
    const after = (await until(sim, (now) => now.versions['1.1'] === expected, `${expected} hosts on 1.1`)).polls;
    s = await until(sim, (now) => now.polls >= after + HOSTS * 2, 'two more polls per host');
    assert.equal(
      s.versions,
      { '1.0': HOSTS - expected, '1.1': expected },
      JSON.stringify({ ...s, reportMs: undefined }),
    );
    assert.is(s.downloads, expected);
    assert.equal(s.results, { updated: expected });
    await waitFor(() => nginx.requests().filter((r) => r.path === `/${APP}-gnu-linux-1.1.tar.gz`).length === expected, {
      what: 'nginx to log the downloads',
    });

    // The update server down: polls fail (the hosts keep their version), then it is back and they carry on.
    await nginx.stop();
    const down = await until(sim, (now) => now.pollErrors >= HOSTS, 'failed polls while nginx is down');
    assert.equal(down.versions, s.versions, 'nobody changed version while the server was down');
    await nginx.start();
    await publish('1.1.1');
    s = await until(
      sim,
      (now) => now.versions['1.1.1'] === HOSTS,
      'every host on 1.1.1 after the server came back',
      90_000,
    );
    assert.is(s.downloads, expected + HOSTS);
  } finally {
    await sim.stop();
  }
});

test.run();
