// shipkit backup / backup verify / restore (docs/backup.md) against a running hook-server with
// jobs done and a fleet host enrolled: the copy restores on a fresh folder in one command and the
// new hook-server shows the same jobs and fleet, takes deliveries signed with the same secret,
// and the host's credential; secrets are never in clear; a damaged, truncated, unsigned-as-told
// or newer backup is refused with nothing written; kill -9 leaves no backup that looks whole.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { deliverGithub, FAKE_BUILD, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { runScript, scriptCommand, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const FLEET = `fleet-${randomUUID()}`;
const env = { SHIPKIT_BUILD_COMMAND: FAKE_BUILD, SHIPKIT_RELEASE_COMMAND: FAKE_BUILD, FLEET_WEB: FLEET };

/** A first-start layout: .shipkit/ holding shipkit.yml, webhook-secret, token and DATA. */
async function firstStart(dir: string): Promise<{ config: string; secret: string; token: string }> {
  const first = await startScript('hook-server', ['--listen', '127.0.0.1:0'], { cwd: dir, env });
  assert.is(await first.stop(), 0);
  const config = path.join(dir, '.shipkit', 'shipkit.yml');
  const text = readFileSync(config, 'utf8').replace(/repos: \{\}\n?/, '');
  writeFileSync(config, `${text}repos:\n  octo/site:\n    branch: main\nfleet:\n  web:\n    secret: env:FLEET_WEB\n`);
  const read = (name: string) => readFileSync(path.join(dir, '.shipkit', name), 'utf8').trim();
  return { config, secret: read('webhook-secret'), token: read('token') };
}

const start = (config: string) => startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });

async function jobsOf(server: Server, token: string): Promise<string[]> {
  const res = await fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${token}` } });
  return ((await res.json()) as { jobs: Array<{ id: string; state: string }> }).jobs
    .map((j) => `${j.id} ${j.state}`)
    .sort();
}

async function report(server: Server, host: string, key: string) {
  const body = JSON.stringify({
    app: 'web',
    host,
    version: '1.0',
    seq: 1,
    bucket: rolloutBucket(host, '1.0'),
    result: 'updated',
  });
  const res = await fetch(`${server.url}/fleet/reports`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...signRequest(key, 'POST', '/fleet/reports', { body }) },
    body,
  });
  return { status: res.status, json: (await res.json()) as { credential?: string } };
}

/** An OpenPGP key pair made with openpgp, written armored. */
async function keyPair(dir: string): Promise<{ pub: string; sec: string }> {
  const openpgp = await import('openpgp');
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'Backup' }],
    format: 'armored',
  });
  const pub = path.join(dir, 'backup.pub.asc');
  const sec = path.join(dir, 'backup.sec.asc');
  writeFileSync(pub, publicKey);
  writeFileSync(sec, privateKey, { mode: 0o600 });
  return { pub, sec };
}

/** Every byte of every file under dir, for a search. */
function allBytes(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(path.join(e.parentPath, e.name), 'latin1'))
    .join('\n');
}

let world: {
  dir: string;
  config: string;
  secret: string;
  token: string;
  jobs: string[];
  host: string;
  credential: string;
  keys: { pub: string; sec: string };
};

test.before(async () => {
  const dir = tmpDir('shipkit-backup-');
  const made = await firstStart(dir);
  const server = await start(made.config);
  try {
    const ids: string[] = [];
    for (const sha of ['a', 'b']) {
      const answer = await deliverGithub(
        server.url,
        'push',
        pushPayload('octo/site', { sha: sha.repeat(40) }),
        made.secret,
      );
      assert.is(answer.status, 202, JSON.stringify(answer.json));
      ids.push(answer.json.job);
    }
    for (const id of ids) await waitForJobState(server.url, made.token, id, ['succeeded', 'failed']);
    const host = randomBytes(16).toString('hex');
    const enrolled = await report(server, host, FLEET);
    assert.is(enrolled.status, 202);
    world = {
      dir,
      ...made,
      jobs: await jobsOf(server, made.token),
      host,
      credential: enrolled.json.credential!,
      keys: await keyPair(dir),
    };
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('backup with --encrypt-to and --sign-key, restore on a fresh folder: the same jobs and fleet; the same secret, token and host credential work', async () => {
  const to = path.join(world.dir, 'backup-1');
  const server = await start(world.config); // backed up while it runs
  let made;
  try {
    made = await runScript('backup', [
      '--config',
      world.config,
      '--to',
      to,
      '--encrypt-to',
      world.keys.pub,
      '--sign-key',
      world.keys.sec,
    ]);
  } finally {
    assert.is(await server.stop(), 0);
  }
  assert.is(made.exitCode, 0, made.stderr);
  assert.match(made.stdout, /Backed up \d+ parts/);
  assert.ok(existsSync(path.join(to, 'MANIFEST.json.sig')));
  const everything = allBytes(to);
  for (const secret of [world.secret, world.token])
    assert.not.ok(everything.includes(secret), 'no secret in clear in the backup');
  assert.not.match(made.stdout + made.stderr, world.token);

  const verified = await runScript('backup', ['verify', to, '--key', world.keys.pub]);
  assert.is(verified.exitCode, 0, verified.stderr);
  assert.match(verified.stdout, /a whole backup of .*: \d+ parts/);

  const fresh = tmpDir('shipkit-restored-');
  const lost = performance.now(); // drill 4: the old machine is gone; from here to a push built
  const restored = await runScript(
    'restore',
    ['--from', to, '--decrypt-key', world.keys.sec, '--key', world.keys.pub],
    { cwd: fresh },
  );
  assert.is(restored.exitCode, 0, restored.stderr);
  const config = path.join(fresh, '.shipkit', 'shipkit.yml');
  assert.match(restored.stdout, `Start it: hook-server --config ${config}`);
  assert.is(readFileSync(path.join(fresh, '.shipkit', 'webhook-secret'), 'utf8').trim(), world.secret);
  const again = await start(config);
  try {
    assert.equal(await jobsOf(again, world.token), world.jobs, 'the same jobs, read with the same token');
    const fleet = await fetch(`${again.url}/fleet/web`, { headers: { Authorization: `Bearer ${world.token}` } });
    assert.equal(
      ((await fleet.json()) as { hosts: Array<{ host: string }> }).hosts.map((h) => h.host),
      [world.host],
    );
    const byCredential = await report(again, world.host, world.credential);
    assert.is(byCredential.status, 202, "the host's credential still works: no host touched");
    assert.is((await report(again, world.host, FLEET)).status, 401, 'and it is still enrolled');
    const push = await deliverGithub(
      again.url,
      'push',
      pushPayload('octo/site', { sha: 'c'.repeat(40) }),
      world.secret,
    );
    assert.is(push.status, 202, 'the forge keeps its webhook secret');
    await waitForJobState(again.url, world.token, push.json.job, ['succeeded']);
    console.log(`drill 4: restore, start, first push built: ${((performance.now() - lost) / 1000).toFixed(1)} s`);
    const runs = readFileSync(path.join(fresh, '.shipkit', 'runs.log'), 'utf8').match(/^start /gm) ?? [];
    assert.is(runs.length, world.jobs.length + 1, 'only the new push ran: no restored job ran again');
  } finally {
    assert.is(await again.stop(), 0);
  }
});

test('without --encrypt-to the secret files are left out with a warning; restore names them to put back', async () => {
  const to = path.join(world.dir, 'backup-2');
  const made = await runScript('backup', ['--config', world.config, '--to', to]);
  assert.is(made.exitCode, 0, made.stderr);
  assert.match(made.stderr, /secret files left out of the backup .*webhook-secret, token/);
  assert.not.ok(allBytes(to).includes(world.secret));
  const fresh = tmpDir('shipkit-restored-');
  const lost = performance.now(); // drill 4: the old machine is gone; from here to a push built
  const restored = await runScript('restore', ['--from', to, '--to', path.join(fresh, 'conf')]);
  assert.is(restored.exitCode, 0, restored.stderr);
  assert.match(restored.stderr, /a secret file to put back by hand .*webhook-secret/);
  assert.not.ok(existsSync(path.join(fresh, 'conf', 'webhook-secret')));
});

test('refused, nothing written: a damaged part, a truncated part, a newer format, a manifest whose signature fails', async () => {
  const base = path.join(world.dir, 'backup-3');
  assert.is(
    (await runScript('backup', ['--config', world.config, '--to', base, '--sign-key', world.keys.sec])).exitCode,
    0,
  );
  const copy = (name: string) => {
    const dir = path.join(world.dir, name);
    mkdirSync(dir);
    for (const e of readdirSync(base, { recursive: true, withFileTypes: true }).filter((x) => x.isFile())) {
      const rel = path.relative(base, path.join(e.parentPath, e.name));
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), readFileSync(path.join(base, rel)));
    }
    return dir;
  };
  const journal = (dir: string) => path.join(dir, 'data', 'journal', 'jobs.journal');
  const damaged = copy('damaged');
  const bytes = readFileSync(journal(damaged));
  bytes[10] ^= 1;
  writeFileSync(journal(damaged), bytes);
  const truncated = copy('truncated');
  writeFileSync(journal(truncated), readFileSync(journal(truncated)).subarray(0, 20));
  const newer = copy('newer');
  const manifest = JSON.parse(readFileSync(path.join(newer, 'MANIFEST.json'), 'utf8'));
  writeFileSync(path.join(newer, 'MANIFEST.json'), JSON.stringify({ ...manifest, format: 99 }));
  const forged = copy('forged');
  writeFileSync(
    path.join(forged, 'MANIFEST.json'),
    JSON.stringify({ ...manifest, created: '2020-01-01T00:00:00.000Z' }),
  );
  const cases: Array<[string, RegExp, string[]]> = [
    [damaged, /data\/journal\/jobs\.journal does not match its sha256/, []],
    [truncated, /data\/journal\/jobs\.journal is 20 bytes, the manifest says \d+/, []],
    [newer, /has format 99, made by shipkit .*; this shipkit reads format 1/, []],
    [forged, /MANIFEST\.json\.sig does not verify/, ['--key', world.keys.pub]],
  ];
  for (const [dir, pattern, extra] of cases) {
    const verify = await runScript('backup', ['verify', dir, ...extra]);
    assert.is(verify.exitCode, 2, `${dir}: ${verify.stderr}`);
    assert.match(verify.stderr, pattern);
    const target = path.join(tmpDir(), 'target');
    const restore = await runScript('restore', ['--from', dir, '--to', target, ...extra]);
    assert.is(restore.exitCode, 2, restore.stderr);
    assert.match(restore.stderr, pattern);
    assert.not.ok(existsSync(target), 'nothing written');
    assert.equal(readdirSync(path.dirname(target)), [], 'no staging folder left');
  }
});

test('restore over an existing folder: refused without --force; with it, the old one is kept aside', async () => {
  const to = path.join(world.dir, 'backup-4');
  assert.is((await runScript('backup', ['--config', world.config, '--to', to])).exitCode, 0);
  const target = path.join(tmpDir(), 'conf');
  mkdirSync(target);
  writeFileSync(path.join(target, 'shipkit.yml'), 'mine\n');
  const refused = await runScript('restore', ['--from', to, '--to', target]);
  assert.is(refused.exitCode, 2);
  assert.match(refused.stderr, /already exists; restore over .* with --force/);
  assert.is(readFileSync(path.join(target, 'shipkit.yml'), 'utf8'), 'mine\n');
  const forced = await runScript('restore', ['--from', to, '--to', target, '--force']);
  assert.is(forced.exitCode, 0, forced.stderr);
  const aside = readdirSync(path.dirname(target)).filter((n) => n.startsWith('conf.before-restore-'));
  assert.is(aside.length, 1);
  assert.is(readFileSync(path.join(path.dirname(target), aside[0], 'shipkit.yml'), 'utf8'), 'mine\n');
  assert.match(readFileSync(path.join(target, 'shipkit.yml'), 'utf8'), /octo\/site/);
});

test('kill -9 during a backup leaves no MANIFEST.json: it never looks whole', async () => {
  const logs = path.join(world.dir, '.shipkit', 'logs', 'octo%2Fsite');
  mkdirSync(logs, { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(path.join(logs, `logs.txt.${i + 1}`), randomBytes(4 * 1024 * 1024));
  const to = path.join(world.dir, 'backup-5');
  const [cmd, ...args] = scriptCommand('backup');
  const child = spawn(cmd, [...args, '--config', world.config, '--to', to], { stdio: 'ignore' });
  await waitFor(() => existsSync(path.join(to, 'data')), { timeoutMs: 20_000, what: 'the backup to start writing' });
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  assert.not.ok(existsSync(path.join(to, 'MANIFEST.json')), 'no manifest: not a backup');
  const verify = await runScript('backup', ['verify', to]);
  assert.is(verify.exitCode, 2);
  assert.match(verify.stderr, /holds no MANIFEST\.json: not a backup, or one that did not finish/);
});

test('--into ROOT --keep 1: a dated folder per run, only the newest whole one kept', async () => {
  const root = path.join(tmpDir(), 'nightly');
  mkdirSync(root);
  mkdirSync(path.join(root, 'shipkit-20200101T000000Z')); // a backup that died long ago
  const made: string[] = [];
  for (let i = 0; i < 2; i++) {
    const run = await runScript('backup', ['--config', world.config, '--into', root, '--keep', '1', '--json']);
    assert.is(run.exitCode, 0, run.stderr);
    made.push(JSON.parse(run.stdout).to);
    await new Promise((r) => setTimeout(r, 1100)); // names are to the second
  }
  assert.match(path.basename(made[0]), /^shipkit-\d{8}T\d{6}Z$/);
  assert.equal(readdirSync(root), [path.basename(made[1])]);
  assert.is((await runScript('backup', ['verify', made[1]])).exitCode, 0);
});

test('bad command lines: exit 2, nothing written', async () => {
  const missing = await runScript('backup', ['--config', world.config]);
  assert.is(missing.exitCode, 2);
  assert.match(missing.stderr, /Missing --to DEST/);
  const full = path.join(tmpDir(), 'full');
  mkdirSync(full);
  writeFileSync(path.join(full, 'x'), 'x');
  const notEmpty = await runScript('backup', ['--config', world.config, '--to', full]);
  assert.is(notEmpty.exitCode, 2);
  assert.match(notEmpty.stderr, /is not empty; give a new or empty folder/);
  assert.equal(readdirSync(full), ['x']);
  const both = await runScript('backup', ['--config', world.config, '--to', full, '--into', full]);
  assert.is(both.exitCode, 2);
  assert.match(both.stderr, /--to DEST or --into ROOT, not both/);
  const keep = await runScript('backup', ['--config', world.config, '--to', path.join(full, 'k'), '--keep', '2']);
  assert.is(keep.exitCode, 2);
  assert.match(keep.stderr, /--keep N goes with --into ROOT/);
  assert.equal(readdirSync(full), ['x']);
  assert.is((await runScript('restore', ['--to', 'x'])).exitCode, 2);
  assert.is((await runScript('backup', ['--to', path.join(tmpDir(), 'y'), '--bogus'])).exitCode, 2);
  assert.ok(statSync(world.config).isFile());
});

test.run();
