// `release rollback APP --to DEST --version V --steps …` (docs/release.md "Rollback in steps") end
// to end: the real `release` script, real keys, DEST a real folder, and the fleet answered on
// loopback by the receiver and light hosts of test/fixtures/fleet-pull.ts (as in rollout.test.ts).
// The rollback signs V at the first step's ROLLOUT, the rollout raises it with a ledger entry per
// step; a host failing V halts it (exit 1, a halt entry); a V the ledger marks bad, bad steps or a
// missing fleet are refused with exit 2 before anything is written; killed after a step, the same
// command continues.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, scriptCommand, tmpDir, waitFor, fileDigests } from '../../_helpers/common.ts';
import { hostsIn, startLightHosts, startPullFleet, type Behaviour, type PullFleet } from '../../fixtures/fleet-pull.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';

const APP = 'my-app';
const SECRET = 'fleet-secret-for-my-app-rollback-steps';
let base: string;
let pub: Publisher;
let secretFile: string;

test.before(async () => {
  base = tmpDir();
  pub = await makePublisher(base, 'rollback steps pass');
  secretFile = path.join(base, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
});

const publish = async (dest: string, version: string) => {
  const src = path.join(base, `${path.basename(dest)}-src-${version}`);
  mkdirSync(src, { recursive: true });
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
  ]);
  assert.is(r.exitCode, 0, r.stderr);
};
/** DEST with 1.0 then 1.1 published (SEQ 2, every host on 1.1). */
async function makeDest(name: string): Promise<string> {
  const dest = path.join(base, name);
  for (const version of ['1.0', '1.1']) await publish(dest, version);
  return dest;
}
const rollbackArgs = (fleet: PullFleet | undefined, dest: string, extra: string[]) => [
  'rollback',
  APP,
  '--to',
  dest,
  '--key',
  pub.secret,
  '--passphrase-file',
  pub.passFile,
  ...(fleet ? ['--fleet', fleet.url, '--fleet-secret', `file:${secretFile}`, '--poll', '0.1'] : []),
  ...extra,
];
const versionAt = (dest: string) => parseVersionFile(readFileSync(path.join(dest, 'VERSION'), 'utf8'));
const entriesOf = (dest: string) => readLedger(readFileSync(path.join(dest, 'ledger.jsonl'))).entries;
/** Hosts on 1.1 spread over the steps of 1,10,50,100 by their bucket for 1.0. */
const fleetOf = (behaviour: (i: number) => Behaviour = () => 'ok') =>
  Object.fromEntries(
    [...hostsIn('1.0', 0, 10, 2), ...hostsIn('1.0', 10, 50, 3), ...hostsIn('1.0', 50, 100, 3)].map((h, i) => [
      h,
      behaviour(i),
    ]),
  );

test('rollback --steps: V signed at ROLLOUT 1, raised step by step as a rollout, one ledger entry per step', async () => {
  const dest = await makeDest('happy');
  const fleet = await startPullFleet(APP, SECRET);
  const hosts = startLightHosts(fleet, dest, fleetOf(), { running: '1.1', badVersion: 'none' });
  try {
    const r = await runScript(
      'release',
      rollbackArgs(fleet, dest, ['--version', '1.0', '--steps', '1,10,50,100', '--wait', '30']),
    );
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /rolled back from 1\.1 to 1\.0: VERSION SEQ 3 at ROLLOUT 1/);
    assert.match(r.stdout, /step 1\/4 \(ROLLOUT 1\): VERSION at DEST is at this step already \(SEQ 3\)/);
    assert.match(r.stdout, /step 3\/4 \(ROLLOUT 50\): expected 5, reported 5, updated 5, failed 0, pending 0/);
    assert.match(r.stdout, /done: my-app 1\.0 is at ROLLOUT 100/);
    assert.equal(
      entriesOf(dest).map((e) => [e.n, e.action, e.version, e.seq, e.rollout, e.from ?? null]),
      [
        [1, 'publish', '1.0', 1, null, null],
        [2, 'publish', '1.1', 2, null, null],
        [3, 'rollback', '1.0', 3, 1, '1.1'],
        [4, 'rollout', '1.0', 4, 10, null],
        [5, 'rollout', '1.0', 5, 50, null],
        [6, 'rollout', '1.0', 6, 100, null],
      ],
    );
    const info = versionAt(dest);
    assert.equal([info.version, info.seq, info.rollout], ['1.0', 6, 100]);
    assert.ok(
      [...hosts.seen.values()].every((v) => v === '1.0'),
      'every host went back to 1.0',
    );
    assert.equal(
      fleet.rollouts.map((s) => `${s.version} ${s.percent} ${s.state}`),
      // The rollback itself first (hook-server's audit trail records it), then the steps.
      ['1.1 1 rolled_back', '1.0 1 running', '1.0 10 running', '1.0 50 running', '1.0 100 running', '1.0 100 done'],
    );
    // The same command again: 1.0 is current, nothing to sign, every step already there.
    const again = await runScript('release', rollbackArgs(fleet, dest, ['--version', '1.0', '--steps', '1,10,50,100']));
    assert.is(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /my-app 1\.0 is at .* already \(SEQ 6\): continuing its steps/);
    assert.is(entriesOf(dest).length, 6, 'nothing appended');
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('rollback --steps: a host failing V halts it with exit 1 and a halt entry; V is then bad for a rollback', async () => {
  const dest = await makeDest('halting');
  const fleet = await startPullFleet(APP, SECRET);
  // Host 3 has its bucket for 1.0 in the 50% step and fails 1.0.
  const hosts = startLightHosts(
    fleet,
    dest,
    fleetOf((i) => (i === 3 ? 'fail' : 'ok')),
    { running: '1.1', badVersion: '1.0' },
  );
  try {
    const r = await runScript(
      'release',
      rollbackArgs(fleet, dest, ['--version', '1.0', '--steps', '1,10,50,100', '--wait', '30']),
    );
    assert.is(r.exitCode, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /step 3\/4 \(ROLLOUT 50\): halted: 1 of 5 hosts failed at 50%, more than --max-failures 0/);
    const entries = entriesOf(dest);
    assert.equal(
      entries.slice(2).map((e) => [e.action, e.version, e.rollout]),
      [
        ['rollback', '1.0', 1],
        ['rollout', '1.0', 10],
        ['rollout', '1.0', 50],
        ['halt', '1.0', 50],
      ],
    );
    assert.equal([versionAt(dest).version, versionAt(dest).rollout], ['1.0', 50], 'hosts above 50 keep 1.1');
    // Run again: the ledger marks 1.0 bad now (the halt), so it is refused, nothing written.
    const before = fileDigests(dest);
    const rollouts = fleet.rollouts.length;
    const again = await runScript('release', rollbackArgs(fleet, dest, ['--version', '1.0', '--steps', '1,10,50,100']));
    assert.is(again.exitCode, 2, again.stdout + again.stderr);
    assert.match(again.stderr, new RegExp(`ledger entry ${entries.length}: marks my-app 1\\.0 bad`));
    assert.equal(fileDigests(dest), before, 'nothing written');
    assert.is(fleet.rollouts.length, rollouts, 'hook-server told nothing');
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test('rollback --steps refuses with exit 2 before writing: a V marked bad, bad steps, no fleet, step flags without --steps', async () => {
  const dest = await makeDest('refusals');
  // 1.1 left by a plain rollback (bad now), then 1.2 published on top.
  const plain = await runScript('release', rollbackArgs(undefined, dest, ['--version', '1.0']));
  assert.is(plain.exitCode, 0, plain.stderr);
  await publish(dest, '1.2');
  const fleet = await startPullFleet(APP, SECRET);
  try {
    const cases: Array<[string, string[], PullFleet | undefined, RegExp]> = [
      [
        'V the ledger marks bad',
        ['--version', '1.1', '--steps', '1,10,100'],
        fleet,
        /ledger entry 3: marks my-app 1\.1 bad/,
      ],
      ['steps that do not grow', ['--version', '1.0', '--steps', '10,5,100'], fleet, /--steps must grow: 5 follows 10/],
      ['steps that do not end at 100', ['--version', '1.0', '--steps', '1,10'], fleet, /--steps must end at 100/],
      ['no --fleet', ['--version', '1.0', '--steps', '1,100'], undefined, /Missing --fleet/],
      ['--wait without --steps', ['--version', '1.0', '--wait', '10'], undefined, /--wait goes with --steps/],
      [
        'a bad --max-failures',
        ['--version', '1.0', '--steps', '1,100', '--max-failures', 'x'],
        fleet,
        /--max-failures/,
      ],
    ];
    const before = fileDigests(dest);
    for (const [label, extra, to, message] of cases) {
      const r = await runScript('release', rollbackArgs(to, dest, extra));
      assert.is(r.exitCode, 2, `${label}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, label);
      assert.equal(fileDigests(dest), before, `${label}: nothing written`);
    }
    assert.equal(fleet.rollouts, [], 'hook-server was told nothing');
  } finally {
    await fleet.close();
  }
});

test('rollback --steps killed -9 after a step: the same command continues from the ROLLOUT at DEST', async () => {
  const dest = await makeDest('killed');
  const fleet = await startPullFleet(APP, SECRET);
  const hosts = startLightHosts(fleet, dest, fleetOf(), { running: '1.1', badVersion: 'none' });
  try {
    const args = rollbackArgs(fleet, dest, ['--version', '1.0', '--steps', '1,10,50,100', '--wait', '30']);
    const [cmd, ...pre] = scriptCommand('release');
    const child = spawn(cmd, [...pre, ...args], {
      env: { ...process.env, SHIPKIT_TEST_PAUSE_AT: 'step:10:signed', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await waitFor(() => err.includes('paused at step:10:signed') || child.exitCode !== null, {
      timeoutMs: 60_000,
      what: 'release rollback --steps to sign step 10',
    });
    assert.is(child.exitCode, null, err);
    child.kill('SIGKILL');
    await exited;
    assert.equal([versionAt(dest).version, versionAt(dest).rollout], ['1.0', 10]);
    const r = await runScript('release', args);
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /my-app 1\.0 is at .* already \(SEQ 4\): continuing its steps/);
    assert.match(r.stdout, /step 2\/4 \(ROLLOUT 10\): VERSION at DEST is at this step already/);
    assert.equal(
      entriesOf(dest)
        .slice(2)
        .map((e) => [e.action, e.rollout]),
      [
        ['rollback', 1],
        ['rollout', 10],
        ['rollout', 50],
        ['rollout', 100],
      ],
    );
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test.run();
