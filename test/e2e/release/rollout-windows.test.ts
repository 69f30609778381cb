// `release rollout --env` and deploy windows (docs/environments.md), real processes and gpg keys,
// the light fleet of test/fixtures/fleet-pull.ts: a rollout started one second before a deny window
// holds its next step until the window ends (hook-server told `waiting`), then signs it; killed -9
// while held, the next run holds again and signs that step once, never twice.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readLedger } from '../../../lib/release/format/ledger.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';
import {
  hostsIn,
  productionYaml,
  publishedPair,
  startLightHosts,
  startPullFleet,
  type PullFleet,
} from '../../fixtures/fleet-pull.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';

const APP = 'my-app';
const SECRET = 'fleet-secret-for-my-app-0123456789';
let base: string;
let pub: Publisher;

test.before(async () => {
  base = tmpDir();
  pub = await makePublisher(base, 'windows pass');
  writeFileSync(path.join(base, 'fleet.secret'), `${SECRET}\n`);
});

/** DEST with 1.0 (every host) and 1.1 at ROLLOUT 50 (steps 50, 100). */
const makeDest = (name: string) =>
  publishedPair(base, name, { app: APP, key: pub.secret, passFile: pub.passFile, rollout: 50 });

const utc = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/** shipkit.yml: production at `dest`, steps 50 and 100, denied from `from` to `to` (ms). */
function writeConfig(name: string, fleet: PullFleet, dest: string, from: number, to: number): string {
  const file = path.join(base, `${name}.yml`);
  const production = [
    'rollout: { steps: [50, 100], wait: 60 }',
    `windows: [{ deny: "${utc(from)} - ${utc(to)}", tz: UTC }]`,
  ];
  const common = { app: APP, secretFile: path.join(base, 'fleet.secret'), key: pub.secret, passFile: pub.passFile };
  writeFileSync(file, productionYaml({ ...common, fleetUrl: fleet.url, dest, production }));
  return file;
}

function startRollout(config: string) {
  const [cmd, ...pre] = scriptCommand('release');
  const args = [
    'rollout',
    APP,
    '--env',
    'production',
    '--config',
    config,
    '--poll',
    '0.1',
    '--state',
    path.join(base, 'st'),
  ];
  const child = spawn(cmd, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { out: '', code: undefined as number | null | undefined };
  child.stdout.on('data', (c: Buffer) => (run.out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (run.out += c.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve((run.code = code))));
  return { child, run, closed };
}

const versionAt = (dest: string) => parseVersionFile(readFileSync(path.join(dest, 'VERSION'), 'utf8'));
const entries = (dest: string) => readLedger(readFileSync(path.join(dest, 'ledger.jsonl'))).entries;
const hostsOf = () => Object.fromEntries(hostsIn('1.1', 0, 100, 6).map((h) => [h, 'ok' as const]));

test('started one second before a deny window: the next step holds until it ends, then is signed', async () => {
  const dest = await makeDest('before');
  const fleet = await startPullFleet(APP, SECRET);
  const start = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  // Long enough for step 1 to finish inside it on a loaded CI machine (15 s was not, once).
  const windowEnd = start + 22_000;
  const config = writeConfig('before', fleet, dest, start + 1000, windowEnd);
  await waitFor(async () => Date.now() >= start, { timeoutMs: 5000 });
  // The step's hosts are known but silent until the window has begun (a step with no hosts at all
  // would pass at once): the next step is then due inside the window, however fast the rollout starts.
  const roles: Record<string, 'ok' | 'silent'> = Object.fromEntries(Object.keys(hostsOf()).map((h) => [h, 'silent']));
  const hosts = startLightHosts(fleet, dest, roles);
  const rollout = startRollout(config);
  await waitFor(async () => Date.now() >= start + 1500, { timeoutMs: 5000 });
  for (const host of Object.keys(roles)) roles[host] = 'ok';
  try {
    const held = () => /held by deny window/.test(rollout.run.out);
    await waitFor(async () => held() || rollout.run.code !== undefined, { timeoutMs: 30_000 }).catch(() => {});
    assert.ok(held(), `not held by the window (exit ${rollout.run.code}); it printed:\n${rollout.run.out}`);
    assert.is(versionAt(dest).rollout, 50, 'held: VERSION stays at the step before the window');
    const code = await rollout.closed;
    assert.is(code, 0, rollout.run.out);
    assert.match(rollout.run.out, /step 2\/2 \(ROLLOUT 100\): held by deny window "20.*" \(UTC\) until 20/);
    assert.is(versionAt(dest).rollout, 100);
    const signed = entries(dest).filter((e) => e.action === 'rollout' && e.rollout === 100);
    assert.is(signed.length, 1);
    assert.ok(Date.parse(signed[0].at) >= windowEnd, `signed at ${signed[0].at}, after the window`);
    const waiting = fleet.rollouts.find((r) => r.state === 'waiting');
    assert.ok(waiting, JSON.stringify(fleet.rollouts));
    assert.match(String(waiting.reason), /held by deny window/);
  } finally {
    hosts.stop();
    rollout.child.kill('SIGKILL');
    await fleet.close();
  }
});

test('killed -9 while held by a window: the next run holds again, and signs the step once', async () => {
  const dest = await makeDest('killed');
  const fleet = await startPullFleet(APP, SECRET);
  const windowEnd = Date.now() + 12_000;
  const config = writeConfig('killed', fleet, dest, Date.now() - 60_000, windowEnd);
  const hosts = startLightHosts(fleet, dest, hostsOf());
  try {
    const first = startRollout(config);
    await waitFor(async () => /held by deny window/.test(first.run.out), { timeoutMs: 20_000 });
    const before = entries(dest).length;
    first.child.kill('SIGKILL');
    await first.closed;
    assert.equal([versionAt(dest).version, versionAt(dest).rollout], ['1.1', 50]);
    assert.is(entries(dest).length, before, 'nothing written while held');
    const second = startRollout(config);
    assert.is(await second.closed, 0, second.run.out);
    assert.match(second.run.out, /held by deny window/);
    assert.is(versionAt(dest).rollout, 100);
    assert.is(entries(dest).filter((e) => e.action === 'rollout' && e.rollout === 100).length, 1);
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

test.run();
