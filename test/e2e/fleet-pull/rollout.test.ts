// Pull rollout end to end on 20 real launchfit hosts (docs/design.md, docs/fleet.md): each
// host runs the real `launchfit run`, polls Debian's nginx (the folder `release publish` writes)
// and reports to the real hook-server (POST /fleet/reports, signed with the app's fleet secret);
// the real `release rollout` raises ROLLOUT step by step reading GET /fleet/APP. In order: idle,
// a host's poll is one conditional GET of VERSION answered 304 with headers only (launchfit sends
// the ETag it saw as If-None-Match; keys.asc and VERSION.sig are not fetched again); the rollout
// reaches 100 %, each host downloading the tarball once; a release that fails on a host of step 1 halts it there and
// --rollback brings every host that took it back (hosts above the step never downloaded it); the
// update server down during a rollout (hosts keep serving, then take it); `release rollout`
// killed with -9 mid-step continues from the last signed step when run again.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, scriptCommand, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';
import { askApp } from '../../fixtures/launchfit/world.ts';
import { nginxMissing } from '../../fixtures/fleet-sim/nginx.ts';
import { APP, deployRealFleet, makeRealFleet, type RealFleet } from '../../fixtures/fleet-sim/real-fleet.ts';

const HOSTS = 20;
const SECRET = 'fleet-secret-for-my-app-0123456789';
const skip = nginxMissing();
let fleet: RealFleet;
let hook: Awaited<ReturnType<typeof startScript>>;
let secretFile: string;

interface FleetHost {
  host: string;
  version: string;
  result: string;
  reason: string;
  bucket: number;
  claimed_bucket: number;
}

test.before(async () => {
  if (skip) return;
  try {
    await setUp();
  } catch (error) {
    console.error('setting up the fleet failed:', error); // uvu does not say why a before hook failed
    throw error;
  }
});

async function setUp(): Promise<void> {
  const dir = tmpDir('shipkit-fleet-pull-hook-');
  secretFile = path.join(dir, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${path.join(dir, 'data')}`,
      'secret: env:HOOK_SECRET',
      'repos:',
      '  acme/site:',
      '    url: https://example.com/acme/site.git',
      'fleet:',
      `  ${APP}:`,
      `    secret: file:${secretFile}`,
      '',
    ].join('\n'),
  );
  hook = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: 'hook-secret-0123456789abcdef' },
  });
  fleet = await makeRealFleet(HOSTS, { report: { url: `${hook.url}/fleet/reports`, secretFile } });
  await fleet.publish('1.0');
  await deployRealFleet(fleet);
  await fleet.start();
}

test.after(async () => {
  await fleet?.stop();
  await hook?.stop();
});

const versions = () => Promise.all(fleet.hosts.map((h) => askApp(h.appPort)));
const everyHostOn = (version: string, what = `every host on ${version}`) =>
  waitFor(async () => (await versions()).every((v) => v === version), { timeoutMs: 120_000, intervalMs: 250, what });
const hostIds = () => fleet.hosts.map((h) => readFileSync(path.join(h.deploy, '.launchfit/host-id'), 'utf8').trim());
const versionAtDest = () => parseVersionFile(readFileSync(path.join(fleet.dest, 'VERSION'), 'utf8'));
const rolloutArgs = (extra: string[]) => [
  'rollout',
  APP,
  '--to',
  fleet.dest,
  '--fleet',
  hook.url,
  '--fleet-secret',
  `file:${secretFile}`,
  ...fleet.signing,
  '--poll',
  '0.5',
  ...extra,
];

/** `release rollout`'s output, and the launchfit output of every host it names, for a failed assertion. */
function rolloutOutput(r: { stdout: string; stderr: string }): string {
  const ids = hostIds();
  const named = fleet.hosts.filter((_, i) => r.stdout.includes(ids[i]!) || r.stderr.includes(ids[i]!));
  const hosts = named.map(
    (h) => `--- ${h.name} (launchfit output, last 40 lines)\n${h.lf?.output().split('\n').slice(-40).join('\n')}`,
  );
  return [r.stdout + r.stderr, ...hosts].join('\n');
}

async function fleetView(): Promise<{ hosts: FleetHost[]; rollout: Record<string, unknown> | null }> {
  const res = await fetch(`${hook.url}/fleet/${APP}`, { headers: signRequest(SECRET, 'GET', `/fleet/${APP}`) });
  assert.is(res.status, 200);
  return res.json() as Promise<{ hosts: FleetHost[]; rollout: Record<string, unknown> | null }>;
}

/** A host fetching release `version`: its tarball, or a patch to it (docs/launchfit.md "Delta updates"). */
const isReleaseDownload = (p: string, version: string) =>
  p === `/${APP}-gnu-linux-${version}.tar.gz` ||
  (p.startsWith(`/${APP}-gnu-linux-${version}.from-`) && p.endsWith('.patch'));

test("idle, every poll after a host's first is a conditional GET of VERSION answered 304 under 1 KB", async () => {
  if (skip) {
    console.log(`skipped: ${skip}`);
    return;
  }
  await everyHostOn('1.0');
  const mark = fleet.nginx.requests().length;
  await waitFor(
    () =>
      fleet.nginx
        .requests()
        .slice(mark)
        .filter((r) => r.path === '/VERSION').length >=
      HOSTS * 4,
    { timeoutMs: 60_000, what: 'four polls per host' },
  );
  const idle = fleet.nginx.requests().slice(mark);
  const polls = idle.filter((r) => r.path === '/VERSION');
  assert.ok(
    polls.every((r) => r.status === 304 && r.ifNoneMatch !== ''),
    `every idle poll is conditional and answered 304: ${JSON.stringify(polls.filter((r) => r.status !== 304 || !r.ifNoneMatch).slice(0, 3))}`,
  );
  assert.equal(
    [...new Set(idle.map((r) => r.path))],
    ['/VERSION'],
    'an idle host asks for VERSION only (no keys.asc, no VERSION.sig)',
  );
  const perPoll = polls.reduce((n, r) => n + r.sent + r.received, 0) / polls.length;
  console.log(
    `launchfit idle poll: ${(polls.reduce((n, r) => n + r.received, 0) / polls.length).toFixed(0)} B request + ${(polls.reduce((n, r) => n + r.sent, 0) / polls.length).toFixed(0)} B answer`,
  );
  assert.ok(perPoll < 1024, `an idle poll costs ${perPoll.toFixed(0)} B both ways`);
});

test('every host reports running at start; release rollout --steps 10,50,100 reaches ROLLOUT 100 with all 20 on 1.1, each downloading it once', async () => {
  if (skip) return;
  await everyHostOn('1.0');
  const before = fleet.nginx.requests().length;
  const ids = hostIds();
  await waitFor(async () => (await fleetView()).hosts.length === HOSTS, { what: 'hook-server to know all 20 hosts' });
  assert.equal((await fleetView()).hosts.map((h) => h.host).sort(), [...ids].sort());
  await fleet.publish('1.1', { extra: ['--rollout', '10'] });
  const r = await runScript('release', rolloutArgs(['--steps', '10,50,100', '--wait', '90']), { timeoutMs: 300_000 });
  assert.is(r.exitCode, 0, rolloutOutput(r));
  assert.match(r.stdout, /step 3\/3 \(ROLLOUT 100\): expected 20, reported 20, updated 20, failed 0, pending 0/);
  assert.match(r.stdout, /done: my-app 1\.1 is at ROLLOUT 100/);
  await everyHostOn('1.1');
  const tarballs = fleet.nginx
    .requests()
    .slice(before)
    .filter((r) => isReleaseDownload(r.path, '1.1') && r.status === 200);
  assert.is(tarballs.length, HOSTS, 'one download per host');
  const view = await fleetView();
  assert.ok(
    view.hosts.every((h) => h.version === '1.1' && h.result === 'updated' && h.bucket === h.claimed_bucket),
    JSON.stringify(view.hosts),
  );
  assert.equal([versionAtDest().version, versionAtDest().rollout], ['1.1', 100]);
});

test('a release that fails on a host of step 1 halts there; --rollback brings every host that took it back to 1.1; hosts above the step never downloaded it', async () => {
  if (skip) return;
  const ids = hostIds();
  // A first step with three hosts in: the lowest-bucket one cannot run 1.2, the other two can.
  const order = ids.map((id, i) => ({ i, bucket: rolloutBucket(id, '1.2') })).sort((a, b) => a.bucket - b.bucket);
  const step = Math.min(99, Math.ceil(order[2].bucket * 100 + 1) / 100);
  const inStep = order.filter((o) => o.bucket < step).map((o) => o.i);
  assert.ok(inStep.length >= 3 && inStep.length < HOSTS, `${inStep.length} hosts in the first step (${step})`);
  writeFileSync(path.join(fleet.hosts[order[0].i].deploy, 'crash-here'), '1.2\n'); // 1.2 fails there, 1.1 still runs
  const mark = fleet.nginx.requests().length;
  await fleet.publish('1.2', { extra: ['--rollout', String(step)] });
  const r = await runScript(
    'release',
    rolloutArgs(['--steps', `${step},100`, '--wait', '90', '--max-failures', '0', '--rollback']),
    { timeoutMs: 300_000 },
  );
  assert.is(r.exitCode, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`step 1/2 \\(ROLLOUT ${step}\\): halted: 1 of ${inStep.length} hosts? failed`));
  assert.match(r.stdout, /rolled back: VERSION SEQ \d+ names 1\.1 for every host/);
  assert.equal([versionAtDest().version, versionAtDest().rollout ?? 100], ['1.1', 100]);
  await everyHostOn('1.1', 'every host back on 1.1');
  const downloads = fleet.nginx
    .requests()
    .slice(mark)
    .filter((q) => isReleaseDownload(q.path, '1.2') && q.status === 200).length;
  // Only hosts of the first step downloaded 1.2 (one may have polled only after the rollback).
  assert.ok(
    downloads >= 1 && downloads <= inStep.length,
    `${downloads} downloads of 1.2 for ${inStep.length} hosts in the step`,
  );
  const view = await fleetView();
  const failed = view.hosts.filter((h) => h.result === 'rolled_back' || h.result === 'failed');
  assert.equal(
    failed.map((h) => h.host),
    [ids[order[0].i]],
    'the host that could not run 1.2 reported it',
  );
  assert.equal(view.rollout?.state, 'rolled_back');
});

test('the update server down during a rollout: hosts keep serving 1.1 and take 1.3 once it is back', async () => {
  if (skip) return;
  for (const h of fleet.hosts) rmSync(path.join(h.deploy, 'crash-here'), { force: true });
  await fleet.nginx.stop();
  await fleet.publish('1.3', { extra: ['--rollout', '50'] });
  const [cmd, ...pre] = scriptCommand('release');
  const child = spawn(cmd, [...pre, ...rolloutArgs(['--steps', '50,100', '--wait', '120'])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await new Promise((resolve) => setTimeout(resolve, 3000)); // several polls fail meanwhile
    assert.equal(await versions(), Array(HOSTS).fill('1.1'), 'every host serves 1.1 while the update server is down');
    await fleet.nginx.start();
    assert.is(await exited, 0, out);
    await everyHostOn('1.3');
  } finally {
    child.kill('SIGKILL');
  }
});

test('release rollout killed with -9 mid-step continues from the last signed step when run again', async () => {
  if (skip) return;
  await fleet.publish('1.4', { extra: ['--rollout', '10'] });
  const [cmd, ...pre] = scriptCommand('release');
  const args = rolloutArgs(['--steps', '10,50,100', '--wait', '90']);
  const child = spawn(cmd, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  try {
    await waitFor(() => /step 2\/3 \(ROLLOUT 50\): signed VERSION SEQ (\d+)/.test(out), {
      timeoutMs: 120_000,
      what: 'step 2 signed',
    });
  } finally {
    child.kill('SIGKILL');
  }
  if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  const seq = versionAtDest().seq;
  assert.equal([versionAtDest().version, versionAtDest().rollout], ['1.4', 50]);
  const again = await runScript('release', args, { timeoutMs: 300_000 });
  assert.is(again.exitCode, 0, again.stdout + again.stderr);
  assert.match(
    again.stdout,
    new RegExp(`step 2/3 \\(ROLLOUT 50\\): VERSION at DEST is at this step already \\(SEQ ${seq}\\); not signed again`),
  );
  assert.match(again.stdout, /done: my-app 1\.4 is at ROLLOUT 100/);
  await everyHostOn('1.4');
});

test.run();
