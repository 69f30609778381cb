// @deno
// release rollout and release publish --rollout (docs/design.md) end to end: the real `release`
// script, real gpg keys (gpgv checks every VERSION it leaves), DEST a real folder, and the fleet
// answered over HTTP on loopback by a receiver that speaks the contract of hook-server's
// /fleet routes (signed GET /fleet/APP, signed POST /fleet/rollouts). Light hosts in this
// process read VERSION at DEST, bucket themselves with the real rolloutBucket and report:
// healthy ones, ones that fail the new release, ones that never report, one that lies about its bucket.
// The examples of docs/release.md ("Pull rollout by percent") are the commands run here.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runCommand, runScript, scriptCommand, tmpDir, waitFor, fileDigests } from '../../_helpers/common.ts';
import {
  hostsIn,
  startLightHosts,
  startPullFleet,
  type Behaviour,
  type PullFleet as Fleet,
} from '../../fixtures/fleet-pull.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';

const APP = 'my-app';
const SECRET = 'fleet-secret-for-my-app-0123456789';
let base: string;
let pub: Publisher;
let secretFile: string;

test.before(async () => {
  base = tmpDir();
  pub = await makePublisher(base, 'rollout pass');
  secretFile = path.join(base, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
});

/** DEST with 1.0 published (SEQ 1, no ROLLOUT) and 1.1 published with --rollout 1 (SEQ 2). */
async function makeDest(name: string, { keep = 5 } = {}): Promise<string> {
  const dest = path.join(base, name);
  for (const version of ['1.0', '1.1']) {
    const src = path.join(base, `${name}-src-${version}`);
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'app.txt'), `version ${version}\n`);
    const r = await runScript(
      'release',
      publishArgs(src, dest, version, version === '1.1' ? ['--rollout', '1', '--keep', String(keep)] : []),
    );
    assert.is(r.exitCode, 0, r.stderr);
  }
  return dest;
}

const publishArgs = (src: string, dest: string, version: string, extra: string[] = []) => [
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
];
const rolloutArgs = (
  fleet: Fleet,
  dest: string,
  extra: string[],
  { url = fleet.url, secret = `file:${secretFile}` } = {},
) => [
  'rollout',
  APP,
  '--to',
  dest,
  '--fleet',
  url,
  '--fleet-secret',
  secret,
  '--key',
  pub.secret,
  '--passphrase-file',
  pub.passFile,
  '--poll',
  '0.1',
  ...extra,
];
const versionAt = (dest: string) => parseVersionFile(readFileSync(path.join(dest, 'VERSION'), 'utf8'));

async function gpgvVerifies(dest: string): Promise<boolean> {
  const r = await runCommand('gpgv', [
    '--keyring',
    pub.keyring,
    path.join(dest, 'VERSION.sig'),
    path.join(dest, 'VERSION'),
  ]);
  return r.exitCode === 0;
}

test('release publish --rollout: 0, 101, abc and -5 are refused with exit 2 before anything is written; 1 writes ROLLOUT 1 under the signature', async () => {
  const dest = await makeDest('publish-refusals');
  const before = fileDigests(dest);
  const src = path.join(base, 'publish-refusals-src-1.2');
  mkdirSync(src);
  writeFileSync(path.join(src, 'app.txt'), 'version 1.2\n');
  for (const [bad, message] of [
    ['0', /Invalid --rollout "0": it must be above 0/],
    ['101', /Invalid --rollout "101": it must be at most 100/],
    ['abc', /Invalid --rollout "abc": it must be a percent/],
    ['-5', /Invalid --rollout "-5"/],
    ['0.125', /at most 2 fraction digits/],
  ] as const) {
    const r = await runScript('release', publishArgs(src, dest, '1.2', [`--rollout=${bad}`]));
    assert.is(r.exitCode, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(fileDigests(dest), before, `nothing written for --rollout ${bad}`);
  }
  const info = versionAt(dest);
  assert.is(info.version, '1.1');
  assert.is(info.rollout, 1);
  assert.is(info.seq, 2);
  assert.match(readFileSync(path.join(dest, 'VERSION'), 'utf8'), /\nSEQ 2\nROLLOUT 1\n/);
  assert.ok(await gpgvVerifies(dest), 'gpgv accepts VERSION with its ROLLOUT line');
});

test('release rollout: steps progress as the hosts in each step report; ROLLOUT 100 at the end, one SEQ per step signed', async () => {
  const dest = await makeDest('happy');
  const fleet = await startPullFleet(APP, SECRET);
  const roles: Record<string, Behaviour> = Object.fromEntries(
    [...hostsIn('1.1', 0, 10, 3), ...hostsIn('1.1', 10, 50, 5), ...hostsIn('1.1', 50, 100, 6)].map((h) => [
      h,
      'ok' as const,
    ]),
  );
  const hosts = startLightHosts(fleet, dest, roles);
  try {
    const r = await runScript('release', rolloutArgs(fleet, dest, ['--steps', '1,10,50,100', '--wait', '30']));
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /my-app 1\.1 at .*: ROLLOUT 1 \(SEQ 2\); steps 1, 10, 50, 100 to go/);
    assert.match(
      r.stdout,
      /step 1\/4 \(ROLLOUT 1\): VERSION at DEST is at this step already \(SEQ 2\); not signed again/,
    );
    assert.match(r.stdout, /step 2\/4 \(ROLLOUT 10\): signed VERSION SEQ 3/);
    assert.match(r.stdout, /step 2\/4 \(ROLLOUT 10\): expected 3, reported 3, updated 3, failed 0, pending 0/);
    assert.match(r.stdout, /step 3\/4 \(ROLLOUT 50\): expected 8, reported 8, updated 8, failed 0, pending 0/);
    assert.match(r.stdout, /step 4\/4 \(ROLLOUT 100\): signed VERSION SEQ 5/);
    assert.match(r.stdout, /step 4\/4 \(ROLLOUT 100\): expected 14, reported 14, updated 14, failed 0, pending 0/);
    assert.match(r.stdout, /done: my-app 1\.1 is at ROLLOUT 100/);
    const info = versionAt(dest);
    assert.equal([info.version, info.seq, info.rollout], ['1.1', 5, 100]);
    assert.ok(await gpgvVerifies(dest));
    assert.ok(
      [...hosts.seen.values()].every((v) => v === '1.1'),
      'every host took 1.1',
    );
    assert.equal(
      fleet.rollouts.map((s) => `${s.percent} ${s.state}`),
      ['1 running', '10 running', '50 running', '100 running', '100 done'],
    );
    assert.equal(fleet.rollouts[1], {
      ...fleet.rollouts[1],
      app: APP,
      version: '1.1',
      seq: 3,
      step: 2,
      steps: [1, 10, 50, 100],
    });
    assert.equal(fleet.refused, [], 'every request was signed right');
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('release rollout: a failure over --max-failures halts with exit 1; with --rollback a higher SEQ names 1.0 for every host', async () => {
  const dest = await makeDest('failing');
  const fleet = await startPullFleet(APP, SECRET);
  const [bad] = hostsIn('1.1', 10, 50, 1);
  const roles: Record<string, Behaviour> = {
    [bad]: 'fail',
    ...Object.fromEntries([...hostsIn('1.1', 0, 10, 2), ...hostsIn('1.1', 10, 100, 6)].map((h) => [h, 'ok' as const])),
  };
  const hosts = startLightHosts(fleet, dest, roles);
  try {
    const halted = await runScript(
      'release',
      rolloutArgs(fleet, dest, ['--steps', '1,10,50,100', '--wait', '30', '--max-failures', '0']),
    );
    assert.is(halted.exitCode, 1, halted.stdout + halted.stderr);
    assert.match(
      halted.stdout,
      /step 3\/4 \(ROLLOUT 50\): halted: 1 of \d+ hosts? failed at 50%, more than --max-failures 0: [0-9a-f]{12} rolled_back \(health check \/healthz answered 500\)/,
    );
    assert.match(halted.stdout, /halted at ROLLOUT 50; hosts not yet in keep their release/);
    assert.equal(
      [versionAt(dest).version, versionAt(dest).rollout, versionAt(dest).seq],
      ['1.1', 50, 4],
      'halted: VERSION stays at the step',
    );
    assert.ok(await gpgvVerifies(dest));
    assert.ok(
      [...hosts.seen.entries()].every(([h, v]) => rolloutBucket(h, '1.1') < 50 === (v === '1.1')),
      'no host above the step took 1.1',
    );
    assert.is(fleet.rollouts.at(-1)?.state, 'halted');

    // Allowing one failure in percent of the step's hosts: 1 of the step's hosts is within 50%.
    const lenient = await runScript(
      'release',
      rolloutArgs(fleet, dest, ['--steps', '1,10,50,100', '--wait', '30', '--max-failures', '50%']),
    );
    assert.is(lenient.exitCode, 0, lenient.stdout + lenient.stderr);
    assert.match(lenient.stdout, /step 3\/4 \(ROLLOUT 50\): VERSION at DEST is at this step already \(SEQ 4\)/);
    assert.match(lenient.stdout, /step 4\/4 \(ROLLOUT 100\): expected 9, reported 9, updated 8, failed 1, pending 0/);
  } finally {
    hosts.stop();
    await fleet.close();
  }

  const dest2 = await makeDest('failing-rollback');
  const fleet2 = await startPullFleet(APP, SECRET);
  const hosts2 = startLightHosts(fleet2, dest2, roles);
  try {
    const r = await runScript(
      'release',
      rolloutArgs(fleet2, dest2, ['--steps', '1,10,50,100', '--wait', '30', '--rollback']),
    );
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /halted: 1 of \d+ hosts? failed at 50%/);
    assert.match(r.stdout, /rolled back: VERSION SEQ 5 names 1\.0 for every host/);
    const info = versionAt(dest2);
    assert.equal(
      [info.version, info.file, info.seq, info.rollout],
      ['1.0', 'my-app-gnu-linux-1.0.tar.gz', 5, undefined],
      'SEQ 5 > 4: hosts that took 1.1 go back',
    );
    assert.ok(await gpgvVerifies(dest2));
    const tarball = readFileSync(path.join(dest2, info.file));
    assert.is(createHash('sha256').update(tarball).digest('hex'), info.sha256);
    await waitFor(() => [...hosts2.seen.values()].every((v) => v === '1.0'), { what: 'every host back on 1.0' });
    assert.is(fleet2.rollouts.at(-1)?.state, 'rolled_back');
  } finally {
    hosts2.stop();
    await fleet2.close();
  }
});

test('release rollout --rollback with no release before at DEST (pruned): still a halt, exit 1, VERSION left at the step', async () => {
  const dest = await makeDest('no-previous', { keep: 1 });
  const fleet = await startPullFleet(APP, SECRET);
  const [bad] = hostsIn('1.1', 0, 50, 1);
  const hosts = startLightHosts(fleet, dest, {
    [bad]: 'fail',
    ...Object.fromEntries(hostsIn('1.1', 0, 100, 3).map((h) => [h, 'ok' as const])),
  });
  try {
    const r = await runScript('release', rolloutArgs(fleet, dest, ['--steps', '50,100', '--wait', '30', '--rollback']));
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /halted at ROLLOUT 50, and could not roll back: .* holds no release of my-app on gnu-linux older than 1\.1/,
    );
    assert.equal([versionAt(dest).version, versionAt(dest).rollout, versionAt(dest).seq], ['1.1', 50, 3]);
    assert.is(fleet.rollouts.at(-1)?.state, 'halted');
    assert.match(String(fleet.rollouts.at(-1)?.reason), /--rollback failed/);
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('release rollout: hosts that never report halt the step after --wait unless --allow-missing; a liar does not stand in for them', async () => {
  const dest = await makeDest('silent');
  const fleet = await startPullFleet(APP, SECRET);
  const [silent] = hostsIn('1.1', 0, 10, 1);
  const [liar] = hostsIn('1.1', 60, 100, 1);
  const roles: Record<string, Behaviour> = {
    [silent]: 'silent',
    [liar]: 'liar',
    ...Object.fromEntries(hostsIn('1.1', 0, 100, 6).map((h) => [h, 'ok' as const])),
  };
  const hosts = startLightHosts(fleet, dest, roles);
  try {
    const started = Date.now();
    const r = await runScript('release', rolloutArgs(fleet, dest, ['--steps', '10,100', '--wait', '2']));
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.ok(Date.now() - started >= 2000, 'it waited --wait');
    assert.match(
      r.stdout,
      /step 1\/2 \(ROLLOUT 10\): expected \d+, reported \d+, updated \d+, failed 0, pending 1, 1 more claim a bucket in this step \(not counted as expected\)/,
    );
    assert.match(r.stdout, /halted: 1 of \d+ hosts? did not report 10% within --wait, more than --allow-missing 0/);
    assert.is(versionAt(dest).rollout, 10);

    const allowed = await runScript(
      'release',
      rolloutArgs(fleet, dest, ['--steps', '10,100', '--wait', '2', '--allow-missing', '1']),
    );
    assert.is(allowed.exitCode, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /step 2\/2 \(ROLLOUT 100\): expected 8, reported 7, updated 7, failed 0, pending 1/);
    assert.equal([versionAt(dest).rollout, versionAt(dest).seq], [100, 4]);
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('release rollout: a publish between two steps stops it; the step is not signed over the publish', async () => {
  const dest = await makeDest('raced');
  const fleet = await startPullFleet(APP, SECRET);
  const [silent] = hostsIn('1.1', 0, 10, 1);
  const hosts = startLightHosts(fleet, dest, { [silent]: 'silent' });
  try {
    const rollout = runScript(
      'release',
      rolloutArgs(fleet, dest, ['--steps', '10,100', '--wait', '3', '--allow-missing', '1']),
    );
    await waitFor(() => versionAt(dest).rollout === 10, { timeoutMs: 20_000, what: 'step 1 signed' });
    const src = path.join(base, 'raced-src-1.2');
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'app.txt'), 'version 1.2\n');
    const published = await runScript('release', publishArgs(src, dest, '1.2'));
    assert.is(published.exitCode, 0, published.stderr);
    const r = await rollout;
    assert.is(r.exitCode, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /VERSION at .* changed since the last step of this rollout \(it names 1\.2, SEQ 4\)/);
    assert.equal([versionAt(dest).version, versionAt(dest).seq], ['1.2', 4], 'the publish stands');
    assert.ok(await gpgvVerifies(dest));
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('release rollout killed with -9 after signing a step: running it again continues from the ROLLOUT at DEST', async () => {
  const dest = await makeDest('killed');
  const fleet = await startPullFleet(APP, SECRET);
  const roles: Record<string, Behaviour> = Object.fromEntries(hostsIn('1.1', 0, 100, 8).map((h) => [h, 'ok' as const]));
  const hosts = startLightHosts(fleet, dest, roles);
  try {
    const [cmd, ...pre] = scriptCommand('release');
    const child = spawn(cmd, [...pre, ...rolloutArgs(fleet, dest, ['--steps', '1,50,100', '--wait', '30'])], {
      env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: 'step:50:signed' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await waitFor(() => out.includes('paused at step:50:signed'), {
      timeoutMs: 60_000,
      what: 'the rollout to pause after signing step 50',
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    assert.equal([versionAt(dest).rollout, versionAt(dest).seq], [50, 3]);
    assert.ok(await gpgvVerifies(dest), 'the pair at DEST verifies after kill -9');

    const again = await runScript('release', rolloutArgs(fleet, dest, ['--steps', '1,50,100', '--wait', '30']));
    assert.is(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /ROLLOUT 50 \(SEQ 3\); steps 50, 100 to go/);
    assert.match(
      again.stdout,
      /step 2\/3 \(ROLLOUT 50\): VERSION at DEST is at this step already \(SEQ 3\); not signed again/,
    );
    assert.match(again.stdout, /step 3\/3 \(ROLLOUT 100\): signed VERSION SEQ 4/);
    assert.equal([versionAt(dest).rollout, versionAt(dest).seq], [100, 4]);
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test("release rollout tells hook-server a step's SEQ before any host can read it in VERSION", async () => {
  const dest = await makeDest('announce');
  const fleet = await startPullFleet(APP, SECRET);
  try {
    const [cmd, ...pre] = scriptCommand('release');
    // Paused at the first write of step 50's VERSION pair: no host can have read SEQ 3 yet.
    const child = spawn(cmd, [...pre, ...rolloutArgs(fleet, dest, ['--steps', '1,50,100', '--wait', '30'])], {
      env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: 'VERSION.sig(both):temp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await waitFor(() => out.includes('paused at VERSION.sig(both):temp'), {
      timeoutMs: 60_000,
      what: "the rollout to pause before placing step 50's VERSION",
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    assert.equal([versionAt(dest).rollout, versionAt(dest).seq], [1, 2], 'VERSION is still step 1');
    const told = fleet.rollouts.at(-1)!;
    assert.equal([told.seq, told.percent, told.step, told.state], [3, 50, 2, 'running'], out);
  } finally {
    await fleet.close();
  }
});

test('release rollout refuses bad flags and a wrong secret with exit 2, writing nothing', async () => {
  const dest = await makeDest('refusals');
  const fleet = await startPullFleet(APP, SECRET);
  const before = fileDigests(dest);
  const cases: Array<[string[], RegExp]> = [
    [['--steps', '0,100'], /Invalid step in --steps "0": it must be above 0/],
    [['--steps', '10,5,100'], /--steps must grow/],
    [['--steps', '1,50'], /--steps must end at 100/],
    [['--max-failures', 'lots'], /Invalid --max-failures "lots"/],
    [['--allow-missing', '200%'], /Invalid --allow-missing "200%"/],
  ];
  for (const [extra, message] of cases) {
    const r = await runScript('release', rolloutArgs(fleet, dest, extra));
    assert.is(r.exitCode, 2, `${extra.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const ftp = await runScript('release', rolloutArgs(fleet, dest, [], { url: 'ftp://x' }));
  assert.is(ftp.exitCode, 2);
  assert.match(ftp.stderr, /Invalid --fleet ftp:\/\/x: it must be an http or https URL/);
  const literal = await runScript('release', rolloutArgs(fleet, dest, [], { secret: SECRET }));
  assert.is(literal.exitCode, 2);
  assert.match(literal.stderr, /--fleet-secret takes file:PATH or env:NAME/);
  assert.not.match(literal.stderr, new RegExp(SECRET), 'the secret is not echoed');
  const wrongFile = path.join(base, 'wrong.secret');
  writeFileSync(wrongFile, 'not-the-secret-of-my-app\n');
  const wrong = await runScript('release', rolloutArgs(fleet, dest, ['--wait', '5'], { secret: `file:${wrongFile}` }));
  assert.is(wrong.exitCode, 2, wrong.stdout + wrong.stderr);
  assert.match(
    wrong.stderr,
    /hook-server refused GET \/fleet\/my-app \(401\): --fleet-secret is not the secret of app my-app/,
  );
  assert.is(fleet.refused.length > 0, true, 'the receiver refused the wrongly signed requests');
  await fleet.close();
  // DEST was at ROLLOUT 1, the first step, which is not signed again: nothing changed.
  assert.equal(fileDigests(dest), before);
});

test.run();
